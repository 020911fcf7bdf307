"""The long tables, one row per question or per step: every run's answer to every question (from predictions.json)
and every seed's training loss (from metrics.jsonl). The per-seed and per-cell tables are aggregate.py's."""
from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pandas as pd

from vlmlab.contract.run import PREDICTIONS


def answers_table(runs: str | Path, name: str, carried: bool = False) -> pd.DataFrame:
    """Every run's answers to every question, one row per question: task, id, the gold answers, then one
    column per run (<cell>/seed<k>) holding its normalised answer. From the predictions.json files under
    <runs>/<name>/ (empty when there are none: results/runs keeps no predictions, this table does); `carried`:
    from a carried runs folder (vlmlab.carry), whose runs keep them gzipped (predictions.json.gz)."""
    rows, gold = {}, {}
    pattern = f"*/seed*/{PREDICTIONS}.gz" if carried else f"*/seed*/{PREDICTIONS}"
    for path in sorted(Path(runs, name).glob(pattern)) if Path(runs, name).is_dir() else []:
        run = f"{path.parent.parent.name}/{path.parent.name}"
        try:
            preds = json.loads(gzip.decompress(path.read_bytes()) if carried else path.read_text())
        except (ValueError, OSError):
            continue
        for task, items in preds.items():
            for it in items:
                key = (task, it["id"])
                gold.setdefault(key, " | ".join(it.get("answers", [])))
                rows.setdefault(key, {})[run] = it.get("normalized", it.get("prediction"))
    if not rows:
        return pd.DataFrame()
    out = pd.DataFrame([{"task": t, "id": i, "answers": gold[(t, i)], **r} for (t, i), r in rows.items()])
    return out[["task", "id", "answers", *sorted(c for c in out.columns if c not in ("task", "id", "answers"))]]


def loss_curves(seeds: pd.DataFrame) -> pd.DataFrame:
    """Long table (cell, seed, status, step, loss) from each seed's metrics.jsonl train/loss entries."""
    rows = []
    for r in seeds.itertuples():
        path = Path(r.run_dir) / "metrics.jsonl"
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash
            if "train/loss" in rec:
                rows.append({"cell": r.cell, "seed": r.seed, "status": r.status, "step": rec["step"],
                             "loss": float(rec["train/loss"]) if rec["train/loss"] is not None else math.nan})
    return pd.DataFrame(rows, columns=["cell", "seed", "status", "step", "loss"])
