"""CLI: regenerate every table, figure and the findings report from the run folders (no training).

    python -m vlmlab.report [--runs runs] [--ablations ablations] [--out results] [--calibrations DIR]

The world-v1 archive regenerates with its own ablation files and today's calibrations:
    python -m vlmlab.report --runs results/v1/runs --ablations results/v1/ablations --out results/v1 --calibrations results
"""
from __future__ import annotations

import argparse
import sys

from vlmlab.contract.errors import UserError
from vlmlab.report.render import build


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m vlmlab.report", description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs", help="run folders: <runs>/<ablation>/<cell>/seed<k>/")
    ap.add_argument("--ablations", default="ablations", help="folder of ablation files (<name>.yaml)")
    ap.add_argument("--out", default="results", help="where tables, figures, REPORT.md and report.html go")
    ap.add_argument("--calibrations", help="folder of the worlds' calibration*/ folders (default: --out)")
    args = ap.parse_args(argv)
    try:
        res = build(args.runs, args.ablations, args.out, args.calibrations)
    except UserError as e:  # a bad ablation file: one line naming it
        sys.exit(f"error: {e}")
    for r in res["findings"].to_dict("records"):
        print(f"[vlmlab.report] {r['finding']}: {r['verdict']} ({r['n_checks']} checks; {r['ablations']})")
    print(f"[vlmlab.report] wrote {res['report']} and {res['html']}")


if __name__ == "__main__":
    main()
