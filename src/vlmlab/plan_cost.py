"""The seed plan's cost (plan.py): each file's runs x the pilot's run times, with reuse across files, against the
run's budget. `python -m vlmlab.plan` writes it to cost.csv and PLAN.md's "Planned cost"."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from vlmlab.ablate import load
from vlmlab.report import aggregate


def _cell_config(abl, cell: str) -> dict:
    """What a run of `cell` is (contract.run.identity of its composed config, seed 0), to find cells that are one
    experiment in several files (the baseline recurs: reuse.py trains it once)."""
    from dataclasses import asdict

    from vlmlab.config import compose
    from vlmlab.contract.run import identity, parse_cell

    overrides = [*abl.fixed, *(f"{k}={v}" for k, v in parse_cell(cell).items()), "seed=0"]
    return identity(asdict(compose(overrides)))


def cost_table(df: pd.DataFrame, runs: str | Path, folder: str | Path | None = None, jobs: int = 2,
               first_seed: int = 0) -> pd.DataFrame:
    """Each file's planned cost: every cell of its grid x its planned seeds (file_seeds, else the file's current
    seeds) x a run's wall time in the pilot (the median over the cell's trained pilot runs; a cell the pilot did
    not run takes the median of the file's pilot runs, else of all of them, and is counted as `unmeasured`), over
    `jobs` runs at a time. A cell whose config another file already runs at the same seed (the files run in
    order; reuse.py) costs nothing (`reused` runs). The isolated timings are not counted: a lower bound there."""
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
    seen: set[tuple[str, int]] = set()
    for name, abl in specs.items():
        if not abl.findings_run:
            rows.append({"ablation": name, "cells": len(abl.cells()), "unmeasured_cells": 0, "seeds": 0, "runs": 0,
                         "reused": 0, "run_s_median": math.nan, "est_min": 0.0, "note": "cut from the findings run"})
            continue
        g = df[df["ablation"] == name]
        n = g["file_seeds"].iloc[0]
        seeds = list(range(first_seed, first_seed + int(n))) if n == n else list(abl.seeds)
        measured = per_file[name]
        fallback = float(pd.Series(list(measured.values())).median()) if measured else overall
        total, reused = 0.0, 0
        for cell in abl.cells():
            key = json.dumps(_cell_config(abl, cell), sort_keys=True)
            for seed in seeds:
                if (key, seed) in seen:
                    reused += 1
                    continue
                seen.add((key, seed))
                total += measured.get(cell, fallback)
        costs = [measured.get(c, fallback) for c in abl.cells()]
        rows.append({"ablation": name, "cells": len(costs), "unmeasured_cells": sum(c not in measured for c in abl.cells()),
                     "seeds": len(seeds), "runs": len(costs) * len(seeds), "reused": reused,
                     "run_s_median": float(pd.Series(costs).median()), "est_min": total / jobs / 60, "note": ""})
    return pd.DataFrame(rows)
