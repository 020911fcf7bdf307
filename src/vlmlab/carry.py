"""Carry finished runs from one machine to the next, through the repository.

    python -m vlmlab.carry save RUNS DEST [--ablations DIR]   # e.g. runs/large/pilot -> results/plan_large/pilot_runs
    python -m vlmlab.carry restore DEST RUNS    # on the next machine, before the same command is run again

A sweep of many sessions on machines that are not kept (a CI box, a preemptible node, this project's sessions)
loses every run folder with its machine. `save` copies each finished run (the ones with summary.json) into DEST:
its summary.json, metrics.jsonl and config.yaml, and its predictions.json gzipped (the report's per-question
answers table is built from them), plus the runs root's sweeps.jsonl (merged), prior.json and each ablation's
isolated timing files (`--ablations DIR`: only the runs of that folder's ablation files, as runs/large also
holds the large calibration and pilot). Unfinished runs stay out: their checkpoints are not carried, so they restart anyway.
`restore` puts the saved runs back where the runner looks for them. A finished run is skipped by the runner
(train.py: a run is finished exactly when its summary.json exists), so the command run again trains only what
is missing. A run that is finished here is never overwritten; a saved finished run replaces an unfinished
folder of the same run. Both are merges: nothing is deleted that the other side lacks.
"""
from __future__ import annotations

import argparse
import gzip
import json
import re
import shutil
from pathlib import Path

from vlmlab.contract.ablation import load_all
from vlmlab.contract.run import CONFIG, METRICS, PREDICTIONS, SUMMARY
from vlmlab.report.aggregate import TIMING_FILES, merge_sweeps
from vlmlab.tracking import write_atomic

RUN_FILES = (SUMMARY, METRICS, CONFIG)  # a finished run's small files (a finished run has no failure record)
ROOT_FILES = ("prior.json",)  # copied when missing; sweeps.jsonl is merged line by line
SEED_DIR = re.compile(r"^seed\d+$")


def finished_runs(root: Path) -> list[Path]:
    """Every finished run folder in the runner's layout under root, <ablation>/<cell>/seed<k> holding
    summary.json, sorted. Only that depth: a sweep's report under the runs root (<root>/results/runs/...) holds
    copies of the same runs, which are not runs of their own."""
    return sorted(p.parent for p in root.glob(f"*/*/seed*/{SUMMARY}") if SEED_DIR.match(p.parent.name))


def _root_files(src: Path, dest: Path, names: list[str] | None = None, newer: bool = False) -> None:
    """sweeps.jsonl merged, prior.json copied when missing, the timing files copied when missing or, on a save
    (`newer`: src holds the live runs), refreshed, as timing.py retimes every cell after each sweep."""
    merge_sweeps(src, dest)
    for name in ROOT_FILES:
        if (src / name).is_file() and not (dest / name).is_file():
            write_atomic(dest / name, (src / name).read_bytes())
    tops = [src / n for n in names] if names is not None else [src]
    for timing in (p for top in tops for name in TIMING_FILES for p in top.glob(name if names else f"*/{name}")):
        target = dest / timing.relative_to(src)
        if newer or not target.is_file():
            write_atomic(target, timing.read_bytes())


def save(runs: str | Path, dest: str | Path, names: list[str] | None = None) -> list[str]:
    """Copy every finished run under `runs` (under runs/<name> for the given names) into `dest` (a saved run is
    refreshed whole); returns the saved runs."""
    runs, dest = Path(runs), Path(dest)
    saved = []
    for run in (r for r in finished_runs(runs) if names is None or r.relative_to(runs).parts[0] in names):
        target = dest / run.relative_to(runs)
        for name in RUN_FILES:
            if (run / name).is_file():
                write_atomic(target / name, (run / name).read_bytes())
        if (run / PREDICTIONS).is_file():  # gzip without a timestamp: the same predictions give the same bytes
            write_atomic(target / f"{PREDICTIONS}.gz", gzip.compress((run / PREDICTIONS).read_bytes(), mtime=0))
        saved.append(str(run.relative_to(runs)))
    if runs.is_dir():
        _root_files(runs, dest, names, newer=True)
    return saved


def restore(saved: str | Path, runs: str | Path) -> list[str]:
    """Put the saved finished runs back under `runs`, skipping runs finished there; returns the restored runs."""
    saved, runs = Path(saved), Path(runs)
    restored = []
    for run in finished_runs(saved):
        target = runs / run.relative_to(saved)
        if (target / SUMMARY).is_file():
            continue
        if target.exists():  # an unfinished attempt of the same run: the finished one replaces it
            shutil.rmtree(target)
        for f in run.iterdir():
            if f.name == f"{PREDICTIONS}.gz":
                write_atomic(target / PREDICTIONS, gzip.decompress(f.read_bytes()))
            elif f.is_file():
                write_atomic(target / f.name, f.read_bytes())
        restored.append(str(run.relative_to(saved)))
    if saved.is_dir():
        _root_files(saved, runs)
    return restored


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m vlmlab.carry", description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=("save", "restore"))
    ap.add_argument("src", help="save: the runs root; restore: the saved folder")
    ap.add_argument("dest", help="save: the folder to save into (in the repository); restore: the runs root")
    ap.add_argument("--ablations", help="save only the runs of this folder's ablation files (e.g. ablations/large)")
    args = ap.parse_args(argv)
    if args.action == "save":
        names = sorted(load_all(args.ablations)) if args.ablations else None
        done = save(args.src, args.dest, names)
    else:
        done = restore(args.src, args.dest)
    print(json.dumps({"action": args.action, "from": args.src, "to": args.dest, "runs": len(done)}))


if __name__ == "__main__":
    main()
