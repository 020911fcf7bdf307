"""What the findings grid costs, with and without the frozen-feature store and run reuse, from per-cell
measurements.

    python -m vlmlab.bench --sweep [--ablations ablations] [--reps 5] [ARGS: overrides for every cell]

Every ablation file's cells are composed as the sweep runner composes them (its fixed overrides, the cell's
values, the command line), each distinct model once. Its training step (timing.py's CellStep: forward,
backward, clip, AdamW on a fixed batch, one thread, as a sweep's job runs) is timed with the store off and
with it warm (the batch's features stored), interleaved. Then, per run of the grid (cells x seeds):
  training seconds = max_steps x grad_accum x step time (store off, or warm)
  store fill       = once per distinct picture set (encoder, image config, data) the store serves: the tower's
                     share of a step per sample, (off - warm) / batch, x the samples the first run encodes
  reuse            = a run whose config (seed included) equals a run of an earlier file, in `all` order, is
                     copied, not trained (reuse.py), unless its file checks a run's own timing (ablate.py)
Evaluation is left out (the same with or without reuse's saving of a whole run; the store also serves the
test pictures, so the store's saving is, if anything, understated). Totals are single-job seconds; the
sweep runs two jobs at a time on 2 cores, so its wall time is about half.
"""
from __future__ import annotations

import json
import statistics
from dataclasses import asdict
from pathlib import Path

import torch

from vlmlab.ablate import reuse_policy
from vlmlab.bench.measure import Trainer, timed
from vlmlab.config import Config, compose
from vlmlab.contract.ablation import load_all
from vlmlab.contract.run import identity, parse_cell


def grid_runs(ablations: str | Path, args: list[str]) -> list[dict]:
    """One row per (ablation, cell, seed): its config, its model's key (identity without the seed), reuse."""
    rows, seen = [], set()
    for name, abl in load_all(ablations).items():
        if abl.follow_up_of:  # a later look is not part of the grid `make ablation NAME=all` runs
            continue
        trains_itself = bool(reuse_policy(abl, []))
        for cell in abl.cells():
            values = [f"{k}={v}" for k, v in parse_cell(cell).items()]
            cfg = compose([*abl.fixed, *values, *args])
            model_key = json.dumps({k: v for k, v in identity(asdict(cfg)).items() if k != "seed"}, sort_keys=True)
            for seed in abl.seeds:
                run_key = (model_key, seed)
                rows.append({"ablation": name, "cell": cell, "seed": seed, "cfg": cfg, "model": model_key,
                             "reused": run_key in seen and not trains_itself})
                seen.add(run_key)
    return rows


def picture_set(cfg: Config) -> str:
    """What decides the store's keys besides the pixels' source: encoder, image pipeline, data."""
    return json.dumps([cfg.vision.name_or_path, asdict(cfg.image), asdict(cfg.data)], sort_keys=True, default=str)


def step_times(cfg: Config, reps: int, warmup: int) -> dict:
    """Median training step seconds of one cell's model with the store off and warm (interleaved)."""
    from vlmlab.timing import CellStep

    off, on = CellStep(cfg), CellStep(cfg, store=True)
    trainers = {"off": Trainer(off), "warm": Trainer(on)}
    for tr in trainers.values():
        for _ in range(warmup):
            tr.step()  # the first warm-up step fills the store with the batch's features
    times = {k: [] for k in trainers}
    for r in range(reps):
        for k in (("off", "warm") if r % 2 == 0 else ("warm", "off")):
            times[k].append(timed(trainers[k].step, torch.device("cpu"))[0])
    return {"off_s": statistics.median(times["off"]), "warm_s": statistics.median(times["warm"]),
            "stored": on.model.feature_store is not None, "batch": cfg.optim.batch_size}


def sweep_cost(ablations: str | Path = "ablations", args: list[str] | None = None, reps: int = 5,
               warmup: int = 2) -> dict:
    """{"cells": per distinct model, "totals": seconds under each of the four policies}."""
    torch.set_num_threads(1)
    runs = grid_runs(ablations, list(args or []))
    models = {}
    for r in runs:
        if r["model"] not in models:
            models[r["model"]] = {"cell": f"{r['ablation']}/{r['cell']}", **step_times(r["cfg"], reps, warmup)}
    fills, totals = {}, dict.fromkeys(("none", "store", "reuse", "store+reuse"), 0.0)
    for r in runs:
        m, cfg = models[r["model"]], r["cfg"]
        steps = cfg.optim.max_steps * cfg.optim.grad_accum
        off, warm = steps * m["off_s"], steps * (m["warm_s"] if m["stored"] else m["off_s"])
        if m["stored"]:
            seen = min(steps * cfg.optim.batch_size, cfg.data.train_size * len(cfg.data.tasks))
            key = picture_set(cfg)
            fills[key] = max(fills.get(key, 0.0), seen * max(m["off_s"] - m["warm_s"], 0.0) / m["batch"])
        totals["none"] += off
        totals["store"] += warm
        if not r["reused"]:
            totals["reuse"] += off
            totals["store+reuse"] += warm
    fill = sum(fills.values())
    totals["store"] += fill
    totals["store+reuse"] += fill
    cells = [{k: v for k, v in m.items()} for m in models.values()]
    return {"cells": cells, "totals": totals, "fill_s": fill, "n_runs": len(runs),
            "n_reused": sum(r["reused"] for r in runs), "n_models": len(models)}


def format_cost(res: dict) -> str:
    t = res["totals"]
    lines = [f"findings grid: {res['n_runs']} runs of {res['n_models']} distinct models; {res['n_reused']} runs "
             "reuse an identical earlier run", f"{'cell (first file to name it)':<58} {'store':>5} {'off ms':>8} "
             f"{'warm ms':>8} {'warm/off':>8}"]
    for c in res["cells"]:
        lines.append(f"{c['cell'][:58]:<58} {'yes' if c['stored'] else 'no':>5} {1000 * c['off_s']:>8.1f} "
                     f"{1000 * c['warm_s']:>8.1f} {c['warm_s'] / c['off_s']:>8.2f}")
    lines.append("estimated training time (single-job minutes; 2 jobs at a time: about half the wall time):")
    for k in ("none", "store", "reuse", "store+reuse"):
        lines.append(f"  {k:<12} {t[k] / 60:>8.1f} min   x{t['none'] / t[k]:.2f} cheaper than none")
    lines.append(f"  (store fill, once per picture set: {res['fill_s'] / 60:.1f} min, included)")
    return "\n".join(lines)
