"""The seed plan's cost (plan.py): each file's runs x the pilot's run times, with reuse across files, against the
run's budget. `python -m vlmlab.plan` writes it to cost.csv and PLAN.md's "Planned cost"."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from vlmlab.ablate import launch_defaults, load
from vlmlab.report import aggregate


def _cell_config(abl, cell: str, extra: tuple[str, ...] = ()) -> dict:
    """What a run of `cell` is (contract.run.identity of its composed config, seed 0), to find cells that are one
    experiment in several files (the baseline recurs: reuse.py trains it once)."""
    from dataclasses import asdict

    from vlmlab.config import compose
    from vlmlab.contract.run import identity, parse_cell

    overrides = [*abl.fixed, *(f"{k}={v}" for k, v in parse_cell(cell).items()), "seed=0", *extra]
    return identity(asdict(compose(overrides)))


NOT_TRAINING = ("seed", "eval")  # keys that do not change what a run trains (with contract.run.FILING_KEYS)


def _training(identity: dict) -> str:
    """A run identity without what does not change its training (the seed, the evaluation, the validation split's
    size), as a key: a calibration run and an ablation cell with equal keys train the same model at equal cost."""
    import json

    out = {k: v for k, v in identity.items() if k not in NOT_TRAINING}
    out["data"] = {k: v for k, v in (out.get("data") or {}).items() if k != "validation_size"}
    return json.dumps(out, sort_keys=True)


def calibration_times(runs: str | Path | None) -> dict[str, list[float]]:
    """Wall times of the world calibration's finished runs (<runs>/<sweep>/<cell>/seed<k>: config.yaml and
    summary.json), by training key (_training): the measured cost of a cell the pilot did not run (the large
    F6 split cell was once costed at the file median, 460 s, and took 1,518 s)."""
    import yaml

    from vlmlab.contract.run import identity

    out: dict[str, list[float]] = {}
    for summary in sorted(Path(runs).glob("*/*/seed*/summary.json")) if runs and Path(runs).is_dir() else []:
        cfg, done = summary.parent / "config.yaml", json.loads(summary.read_text())
        wall = done.get("wall_time_s")
        if cfg.is_file() and done.get("status", "finished") == "finished" and wall and not done.get("reused_from"):
            out.setdefault(_training(identity(yaml.safe_load(cfg.read_text()))), []).append(float(wall))
    return out


def cost_table(df: pd.DataFrame, runs: str | Path, folder: str | Path | None = None, jobs: int = 2,
               first_seed: int = 0, calibration_runs: str | Path | None = None) -> pd.DataFrame:
    """Each file's planned cost: every cell of its grid x its planned seeds (file_seeds, else the file's current
    seeds) x a run's wall time in the pilot (the median over the cell's trained pilot runs). A cell the pilot did
    not run takes the median wall time of the world calibration's runs that train the same model
    (`calibration_runs`, calibration_times; counted as `from_calibration`: their evaluation set differs, so the
    figure is approximate), else the median of the file's pilot runs, else of all of them (counted as
    `unmeasured`); over `jobs` runs at a time. A cell whose config another file already runs at the same seed (the
    files run in order; reuse.py) costs nothing (`reused` runs). A file takes at least its longest run (the files
    run one after another, so a file of one run leaves the other jobs idle). The isolated timings are not counted:
    a lower bound there."""
    from vlmlab.contract.run import parse_cell

    rows, every = [], []
    specs = {name: load(name, folder) for name in dict.fromkeys(df["ablation"])}
    per_file = {}
    for name, abl in specs.items():
        seeds = aggregate.seeds_table(runs, name, abl.__dict__)
        col = "wall_time_s" if "wall_time_s" in seeds.columns else None
        trained = seeds[seeds["status"].isin(["finished", "diverged"])] if col else seeds.iloc[0:0]
        if "reused_from" in trained.columns:
            trained = trained[trained["reused_from"].isna() | (trained["reused_from"].astype(str) == "")]
        on_disk = trained.groupby("cell")[col].median().to_dict() if col else {}
        measured = {}
        for cell in abl.cells():  # a cell on disk may carry the file's fixed overrides in its name
            want = parse_cell(cell).items()
            hits = [t for c, t in on_disk.items() if want <= parse_cell(c).items()]
            if hits:
                measured[cell] = float(pd.Series(hits).median())
        per_file[name] = measured
        every += list(trained[col].dropna()) if col else []
    overall = float(pd.Series(every).median()) if every else math.nan
    calibrated = calibration_times(calibration_runs)
    threads = tuple(d for d in launch_defaults([]) if d.startswith("threads="))  # as the sweep will run a cell
    seen: set[tuple[str, int]] = set()
    for name, abl in specs.items():
        if not abl.findings_run:
            rows.append({"ablation": name, "cells": len(abl.cells()), "unmeasured_cells": 0, "from_calibration": 0,
                         "seeds": 0, "runs": 0,
                         "reused": 0, "run_s_median": math.nan, "est_min": 0.0, "note": "cut from the findings run"})
            continue
        g = df[df["ablation"] == name]
        n = g["file_seeds"].iloc[0]
        seeds = list(range(first_seed, first_seed + int(n))) if n == n else list(abl.seeds)
        measured = per_file[name]
        fallback = float(pd.Series(list(measured.values())).median()) if measured else overall
        configs = {cell: _cell_config(abl, cell, threads) for cell in abl.cells()}  # composed once per cell
        from_cal = {}
        for cell, config in configs.items():
            times = calibrated.get(_training(config)) if cell not in measured else None
            if times:
                from_cal[cell] = float(pd.Series(times).median())
        measured = {**measured, **from_cal}
        total, reused, longest = 0.0, 0, 0.0
        for cell, config in configs.items():
            key = json.dumps(config, sort_keys=True)
            for seed in seeds:
                if (key, seed) in seen:
                    reused += 1
                    continue
                seen.add((key, seed))
                total += measured.get(cell, fallback)
                longest = max(longest, measured.get(cell, fallback))
        costs = [measured.get(c, fallback) for c in abl.cells()]
        rows.append({"ablation": name, "cells": len(costs), "unmeasured_cells": sum(c not in measured for c in abl.cells()),
                     "from_calibration": len(from_cal),
                     "seeds": len(seeds), "runs": len(costs) * len(seeds), "reused": reused,
                     "run_s_median": float(pd.Series(costs).median()), "est_min": max(total / jobs, longest) / 60, "note": ""})
    return pd.DataFrame(rows)
