"""The world's calibration: before any finding is tested, show that the toy world contains its mechanisms.

    python -m vlmlab.calibrate [--runs runs/calibration_v3] [--out results/calibration_v3] [--no-train]
                               [--sweeps controls,curve,ladder] [--controls FILE] [--curve FILE] [overrides]
    make calibrate

Four measurements, one report (results/calibration_v3/CALIBRATION.md for world v3, with probes.csv, controls.csv, curve.csv,
curve.png):
  probes     linear probes on each zoo encoder's patch features (world/probes.py): colour, shape, count,
             position, and the written word at the base resolution and as splitting gives it
  controls   the baseline recipe against its blind control (image.blind=true), without and with splitting,
             3 seeds each (calibration/controls.yaml), beside the prior baseline (prior.py), with each task's
             seed noise; scored on the validation split, so the test split stays the findings'
  curve      the baseline recipe at 150 / 300 / 600 / 1200 steps (calibration/curve.yaml); with seeds at every
             budget, the criterion also paired by seed, and the last doubling's gain per task
  ladder     F3's mechanism: full unfreezing and LoRA at learning rates 1e-2 .. 1, one seed per rung
             (calibration/ladder.yaml): which rungs diverge, the largest stable rate of each arm
  targets    issue 16's, each marked met or not: vqa, okvqa and caption beat blind by >= 5 seed SDs;
             textvqa beats blind by >= 5 points with splitting and stays within 2 without; no accuracy
             task above 90% (caption's CIDEr is not a percentage); the last doubling of steps adds at most a
             quarter of what 150 -> 600 added; some rung of the ladder diverges; the probes'.
The runs go through the sweep runner (finished runs are skipped: rerunning resumes), so every number comes
from run folders. Their small files are merged into <out>/runs (results/calibration_v3/runs), which the report is
built from; `--sweeps` trains only the named sweeps (the others' finished runs are still reported);
`--no-train` rebuilds it without training, and on a fresh clone
`python -m vlmlab.calibrate --no-train --runs results/calibration_v3/runs` regenerates it from the repository.
Each world's calibration has its own folder: results/calibration (world v1), results/calibration_v2 (v2, rc3),
results/calibration_v3 (v3, today's default).
A pre-registered follow-up replaces one sweep's file: `--controls calibration/margins.yaml` (make calibrate-margins),
`--curve calibration/curve_followup.yaml` (make calibrate-curve). The report is built in calibrate_report.py.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd

from vlmlab.calibrate_report import SWEEPS, build, sweep_files
from vlmlab.config import compose, repo_root
from vlmlab.contract.ablation import load_ablation
from vlmlab.report import aggregate

DEFAULT_NAME = "calibration_v3"  # today's world's (world-v3-rc1) calibration: runs/<it>, results/<it>


def run_sweeps(runs: str, overrides: list[str], seeds: str | None = None, sweeps: tuple[str, ...] = SWEEPS,
               follow_ups: dict[str, str | Path] | None = None) -> None:
    files = sweep_files(follow_ups)
    for name in sweeps:
        cmd = [sys.executable, "-m", "vlmlab.ablate", str(files[name]), f"runs_root={runs}",
               *(["--seeds", seeds] if seeds and name == "controls" else []), *overrides]
        print(f"[calibrate] {' '.join(cmd[2:])}", flush=True)
        subprocess.run(cmd, cwd=repo_root(), check=False)


def probe_rows(visions: list[str], overrides: list[str], n_train: int = 2400, n_test: int = 400) -> pd.DataFrame:
    from vlmlab.model.navit import load_vision_encoder
    from vlmlab.world.probes import CHANCE, TARGETS, meets, probe_table

    rows = []
    for vision in visions:
        cfg = compose([f"vision={vision}", *overrides])
        encoder = load_vision_encoder(cfg.vision.name_or_path).eval()
        world = cfg.data  # the probes' own scenes in the runs' world: its canvases, script and view grain
        for probe, acc in probe_table(encoder, n_train, n_test, world).items():
            op, bound = TARGETS[probe]
            rows.append({"vision": vision, "probe": probe, "accuracy": 100 * acc, "chance": 100 * CHANCE[probe],
                         "target": f"{op} {100 * bound:.0f}", "met": meets(probe, acc), "train_scenes": n_train,
                         "test_scenes": n_test})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vlmlab.calibrate", description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=f"runs/{DEFAULT_NAME}")
    ap.add_argument("--out", default=str(repo_root() / "results" / DEFAULT_NAME))
    ap.add_argument("--no-train", action="store_true", help="only probes and the report from existing runs")
    ap.add_argument("--visions", default="toy_weak,toy_strong", help="encoders to probe (conf/vision/)")
    ap.add_argument("--probe-scenes", default="2400,400",
                    help="probe scenes: train,test (600 starved the 512-feature probes: docs/world.md, rc3)")
    ap.add_argument("--seeds", default=None, help="the controls' seeds instead of the file's (e.g. 0,1 for a test)")
    ap.add_argument("--controls", default=None,
                    help="another controls file (a pre-registered follow-up, e.g. calibration/margins.yaml) instead of "
                         "calibration/controls.yaml")
    ap.add_argument("--curve", default=None,
                    help="another learning-curve file (a pre-registered follow-up, e.g. calibration/curve_followup.yaml) "
                         "instead of calibration/curve.yaml")
    ap.add_argument("--sweeps", default=",".join(SWEEPS),
                    help="the sweeps to train (the others' finished runs are still reported), e.g. ladder")
    ap.add_argument("overrides", nargs="*", help="overrides for every run (e.g. debug=smoke)")
    args = ap.parse_args(argv)
    sweeps = tuple(s for s in args.sweeps.split(",") if s)
    if set(sweeps) - set(SWEEPS):
        ap.error(f"--sweeps takes names from {', '.join(SWEEPS)}; got {args.sweeps!r}")
    follow_ups = {k: v for k, v in (("controls", args.controls), ("curve", args.curve)) if v}
    if not args.no_train:
        run_sweeps(args.runs, args.overrides, args.seeds, sweeps, follow_ups)
    n_train, n_test = (int(x) for x in args.probe_scenes.split(","))
    probes = probe_rows([v for v in args.visions.split(",") if v], [o for o in args.overrides if o.startswith(("vision", "scale"))],
                        n_train, n_test)
    kept = Path(args.out) / "runs"  # the runs' small files, committed with the calibration
    if kept.resolve() != Path(args.runs).resolve():
        aggregate.snapshot(args.runs, kept, [load_ablation(f).name for f in sweep_files(follow_ups).values()])
    report = build(str(kept), Path(args.out), probes, follow_ups)
    print(f"[calibrate] wrote {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
