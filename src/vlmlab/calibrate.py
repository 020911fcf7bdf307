"""The world's calibration: before any finding is tested, show that the toy world contains its mechanisms.

    python -m vlmlab.calibrate [--runs runs/calibration] [--out results/calibration] [--no-train]
                               [--sweeps controls,curve,ladder] [overrides]
    make calibrate

Four measurements, one report (results/calibration/CALIBRATION.md, with probes.csv, controls.csv, curve.csv,
curve.png):
  probes     linear probes on each zoo encoder's patch features (world/probes.py): colour, shape, count,
             position, and the written word at the base resolution and as splitting gives it
  controls   the baseline recipe against its blind control (image.blind=true), without and with splitting,
             3 seeds each (calibration/controls.yaml), beside the prior baseline (prior.py), with each task's
             seed noise; scored on the validation split, so the test split stays the findings'
  curve      the baseline recipe at 150 / 300 / 600 / 1200 steps (calibration/curve.yaml)
  ladder     F3's mechanism: full unfreezing and LoRA at learning rates 1e-2 .. 1, one seed per rung
             (calibration/ladder.yaml): which rungs diverge, the largest stable rate of each arm
  targets    issue 16's, each marked met or not: vqa, okvqa and caption beat blind by >= 5 seed SDs;
             textvqa beats blind by >= 5 points with splitting and stays within 2 without; no accuracy
             task above 90% (caption's CIDEr is not a percentage); the last doubling of steps adds at most a
             quarter of what 150 -> 600 added; some rung of the ladder diverges; the probes'.
The runs go through the sweep runner (finished runs are skipped: rerunning resumes), so every number comes
from run folders. Their small files are merged into <out>/runs (results/calibration/runs), which the report is
built from; `--sweeps` trains only the named sweeps (the others' finished runs are still reported);
`--no-train` rebuilds it without training, and on a fresh clone
`python -m vlmlab.calibrate --no-train --runs results/calibration/runs` regenerates it from the repository.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from vlmlab.config import compose, repo_root
from vlmlab.contract.ablation import load_ablation
from vlmlab.calibrate_curve import CURVE_SHARE, curve_check, curve_table, plot_curve
from vlmlab.report import aggregate
from vlmlab.report.calibration import runs_world
from vlmlab.report.markup import fmt, to_markdown
from vlmlab.tracking import write_atomic
from vlmlab.world.config import GENERATOR_VERSION

FOLDER = repo_root() / "calibration"
SWEEPS = ("controls", "curve", "ladder")
SD_MARGIN = 5.0          # vqa, okvqa, caption: trained - blind >= 5 seed SDs
TEXT_SPLIT_GAIN = 5.0    # textvqa with splitting: trained - blind >= 5 points
TEXT_BASE_WITHIN = 2.0   # textvqa without splitting: |trained - blind| <= 2 points
CEILING = 90.0           # no accuracy task above 90% (caption's CIDEr is not a percentage: a reference scores ~770)


PRIOR = "prior.json"  # in the runs folder: the prior baseline of the world the runs were made in


def read_prior(runs: str | Path) -> dict[str, float]:
    """The recorded prior baseline of a calibration's runs ({task: score, avg}); {} if none is recorded. A run
    folder of an earlier world keeps its own: today's generator cannot recompute another world's prior."""
    path = Path(runs) / PRIOR
    return json.loads(path.read_text())["scores"] if path.is_file() else {}


def recorded_world(runs: str | Path, ran_in: str | None = None) -> str:
    """The world a calibration's runs were made in (recorded with their prior), else the one their summaries name
    (`ran_in`, world_id: "<version>@large" at the large scale), else today's base world."""
    path = Path(runs) / PRIOR
    fallback = ran_in or GENERATOR_VERSION
    return json.loads(path.read_text()).get("generator_version", fallback) if path.is_file() else fallback


def sweep_files(controls: str | Path | None = None) -> dict[str, Path]:
    """Each sweep's ablation file: calibration/<sweep>.yaml, the controls' replaced by a follow-up's (--controls)."""
    return {n: Path(controls) if n == "controls" and controls else FOLDER / f"{n}.yaml" for n in SWEEPS}


def run_sweeps(runs: str, overrides: list[str], seeds: str | None = None, sweeps: tuple[str, ...] = SWEEPS,
               controls: str | Path | None = None) -> None:
    files = sweep_files(controls)
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
        for probe, acc in probe_table(encoder, n_train, n_test).items():
            op, bound = TARGETS[probe]
            rows.append({"vision": vision, "probe": probe, "accuracy": 100 * acc, "chance": 100 * CHANCE[probe],
                         "target": f"{op} {100 * bound:.0f}", "met": meets(probe, acc), "train_scenes": n_train,
                         "test_scenes": n_test})
    return pd.DataFrame(rows)


def _questions(abl) -> str:
    """The validation questions a task its runs are scored on (eval.max_samples among its fixed overrides)."""
    got = [o.split("=", 1)[1] for o in abl.fixed if o.startswith("eval.max_samples=")]
    return got[0] if got else "all"


def _flag(value) -> str:
    return "met" if value else "NOT met"


def control_rows(seeds: pd.DataFrame, tasks: list[str], prior: dict) -> pd.DataFrame:
    """Per task and splitting: trained and blind mean ± seed SD, the margin in points and in seed SDs."""
    fin = seeds[seeds["status"] == "finished"]
    rows = []
    for split in sorted(fin["image.split"].astype(str).unique()) if not fin.empty else []:
        at = fin[fin["image.split"].astype(str) == split]
        seeing = at[at["image.blind"].astype(str).str.lower() == "false"]
        blind = at[at["image.blind"].astype(str).str.lower() == "true"]
        for task in tasks:
            t, b = seeing[task].dropna(), blind[task].dropna()
            sd = t.std(ddof=1) if len(t) > 1 else float("nan")
            margin = t.mean() - b.mean()
            rows.append({"split": int(split), "task": task, "trained": t.mean(), "trained_sd": sd, "blind": b.mean(),
                         "blind_sd": b.std(ddof=1) if len(b) > 1 else float("nan"), "prior": prior.get(task),
                         "margin": margin, "margin_in_sd": margin / sd if sd and sd > 0 else float("nan"),
                         "seeds": f"{len(t)}/{len(b)}"})
    return pd.DataFrame(rows)


def ladder_rows(seeds: pd.DataFrame) -> pd.DataFrame:
    """Per arm and learning rate: status (finished / diverged at step), final loss, avg."""
    done = seeds[seeds["status"].isin(["finished", "diverged"])] if not seeds.empty else seeds
    if done.empty:
        return pd.DataFrame()
    rows = [{"trainable": r["trainable"], "lr": float(r["lr"]), "status": r["status"],
             "diverged_at_step": r.get("diverged_at_step"), "final_train_loss": r.get("final_train_loss"),
             "avg": r.get("avg")} for r in done.to_dict("records")]
    return pd.DataFrame(rows).sort_values(["trainable", "lr"]).reset_index(drop=True)


def largest_stable(ladder: pd.DataFrame) -> dict[str, float]:
    """Per arm, the largest learning rate below which no rung diverged (nan when the lowest diverged)."""
    out = {}
    for arm, g in ladder.groupby("trainable"):
        stable = float("nan")
        for r in g.sort_values("lr").to_dict("records"):
            if r["status"] != "finished":
                break
            stable = r["lr"]
        out[arm] = stable
    return out


def targets(controls: pd.DataFrame, curve: pd.DataFrame, probes: pd.DataFrame,
            ladder: pd.DataFrame | None = None) -> list[list[str]]:
    out = []

    def row(at: int, task: str) -> dict | None:
        hit = controls[(controls["split"] == at) & (controls["task"] == task)] if not controls.empty else controls
        return hit.iloc[0].to_dict() if len(hit) else None

    for task in ("vqa", "okvqa", "caption"):
        r = row(0, task)
        if r:
            out.append([f"{task} beats blind by >= {SD_MARGIN:g} seed SDs", f"{fmt(r['margin'])} points = "
                        f"{fmt(r['margin_in_sd'], digits=1)} SDs", _flag(r["margin_in_sd"] >= SD_MARGIN)])
    r2, r0 = row(2, "textvqa"), row(0, "textvqa")
    if r2:
        out.append([f"textvqa with splitting beats blind by >= {TEXT_SPLIT_GAIN:g} points", fmt(r2["margin"]),
                    _flag(r2["margin"] >= TEXT_SPLIT_GAIN)])
    if r0:
        out.append([f"textvqa without splitting within {TEXT_BASE_WITHIN:g} points of blind", fmt(r0["margin"]),
                    _flag(abs(r0["margin"]) <= TEXT_BASE_WITHIN)])
    accuracy = controls[controls["task"] != "caption"] if not controls.empty else controls
    if not accuracy.empty:
        top = accuracy.loc[accuracy["trained"].idxmax()]
        out.append([f"no accuracy task above {CEILING:g}% (caption's CIDEr is not a percentage)",
                    f"highest: {top['task']} {fmt(top['trained'])}", _flag(accuracy["trained"].max() <= CEILING)])
    check = curve_check(curve)
    if check:
        late, early, lo, hi = check
        measured = f"{fmt(late)} vs {fmt(early)}"
        if lo == lo:  # seeds at every budget: the 95% interval of late - share x early
            measured += (f"; late - {CURVE_SHARE:g} x early: 95% CI [{fmt(lo)}, {fmt(hi)}]"
                         + (" (spans 0: unresolved)" if lo <= 0 <= hi else ""))
        out.append([f"600 -> 1200 steps adds <= {CURVE_SHARE:g} x the 150 -> 600 gain (avg over seeds)",
                    measured, _flag(late <= CURVE_SHARE * early)])
    if ladder is not None and not ladder.empty:
        n_div = int((ladder["status"] == "diverged").sum())
        stable = ", ".join(f"{arm} {lr:g}" for arm, lr in largest_stable(ladder).items())
        out.append(["some rung of the learning-rate ladder diverges", f"{n_div} of {len(ladder)} rungs; largest "
                    f"stable lr: {stable}", _flag(n_div > 0)])
    for r in probes.to_dict("records"):
        out.append([f"probe {r['probe']} ({r['vision']}) {r['target']}%", fmt(r["accuracy"], digits=1),
                    _flag(r["met"])])
    return out


def build(runs: str, out: Path, probes: pd.DataFrame, controls_file: str | Path | None = None) -> Path:
    controls_abl, curve_abl, ladder_abl = (load_ablation(f) for f in sweep_files(controls_file).values())
    ladder = ladder_rows(aggregate.seeds_table(runs, ladder_abl.name, ladder_abl.__dict__))
    cs = aggregate.seeds_table(runs, controls_abl.name, controls_abl.__dict__)
    tasks = [t for t in aggregate.task_columns(cs) if t != "avg"] if not cs.empty else []
    prior = read_prior(runs)
    ran_in = runs_world(cs) if not cs.empty else None
    if not prior and not cs.empty:  # the prior of the world these runs were made in, recorded beside them
        prior = aggregate.prior_row(cs)
        if prior:
            write_atomic(Path(runs) / PRIOR, json.dumps({"generator_version": ran_in or GENERATOR_VERSION, "scores": prior},
                                                        indent=1))
    controls = control_rows(cs, tasks, prior) if tasks else pd.DataFrame()
    if not controls.empty:  # which world these controls measured: the report matches it to its runs' world
        controls["world"] = recorded_world(runs, ran_in)
    vs = aggregate.seeds_table(runs, curve_abl.name, curve_abl.__dict__)
    fin = vs[vs["status"] == "finished"] if not vs.empty else vs
    curve = pd.DataFrame()
    if not fin.empty:
        cols = [c for c in (*tasks, "avg", "final_train_loss") if c in fin.columns]
        curve = curve_table(fin, cols)
    out.mkdir(parents=True, exist_ok=True)
    for name, table in (("probes", probes), ("controls", controls), ("curve", curve), ("ladder", ladder)):
        if table.empty:  # a part not run (e.g. the ladder stopped for time): no table rather than an empty file
            (out / f"{name}.csv").unlink(missing_ok=True)
        else:
            write_atomic(out / f"{name}.csv", table.to_csv(index=False))
    blocks = [("h1", "World calibration: does the toy world contain the findings' mechanisms?", None),
              ("p", f"World {recorded_world(runs)}. Generated by `python -m vlmlab.calibrate` from the encoders' probes "
                    f"and the run folders under {runs}/ (calibration/*.yaml"
                    f"{'' if controls_file is None else f'; the controls: {Path(controls_file).name}'}); scored on the "
                    f"validation split{'' if controls_file is None else f' ({_questions(controls_abl)} questions a task)'}. "
                    "\"Stable\" in the ladder means not diverged by the stated criterion; a rung can still lose "
                    "what it learned (see its avg).", None),
              ("h2", "Targets", None), ("table", ["target", "measured", ""], targets(controls, curve, probes, ladder))]
    if not probes.empty:
        fit = (f", fit on {int(probes['train_scenes'].iloc[0])} scenes, scored on {int(probes['test_scenes'].iloc[0])}"
               if "train_scenes" in probes else "")  # calibrations before world-v2-rc3 did not record it (600, 400)
        blocks += [("h2", f"Probes on patch features (accuracy %, logistic regression on held-out scenes{fit})", None),
                   ("table", ["vision", "probe", "accuracy", "chance", "target", ""],
                    [[r["vision"], r["probe"], fmt(r["accuracy"], digits=1), fmt(r["chance"], digits=1), r["target"],
                      _flag(r["met"])] for r in probes.to_dict("records")])]
    if not controls.empty:
        blocks += [("h2", "Baseline recipe vs its blind control (mean ± seed SD) and the prior baseline", None),
                   ("table", ["split", "task", "trained", "blind", "prior", "trained - blind", "in seed SDs", "seeds"],
                    [[str(r["split"]), r["task"], fmt(r["trained"], r["trained_sd"]), fmt(r["blind"], r["blind_sd"]),
                      fmt(r["prior"]), fmt(r["margin"]), fmt(r["margin_in_sd"], digits=1), r["seeds"]]
                     for r in controls.to_dict("records")])]
    if not curve.empty:
        cols = [c for c in curve.columns if c != "steps"]
        cols = [c for c in cols if c not in ("seeds", "avg_sd")]
        blocks += [("h2", "Learning curve of the baseline recipe (seed means; each budget its own cosine schedule)",
                    None),
                   ("table", ["steps", "seeds", *cols, "avg seed SD"],
                    [[str(r["steps"]), str(r["seeds"]), *[fmt(r[c]) for c in cols], fmt(r["avg_sd"])]
                     for r in curve.to_dict("records")])]
        plot_curve(curve, out / "curve.png")
        blocks.append(("img", "learning curve", out / "curve.png"))
    if not ladder.empty:
        blocks += [("h2", "Learning-rate ladder (fully autoregressive, one seed per rung; F3's mechanism)", None),
                   ("p", "Diverged: a NaN/inf loss, or a loss over optim.spike_factor (10) x the mean of the previous "
                         "optim.spike_window (20) losses (optim.diverged); a diverged run is not evaluated.", None),
                   ("table", ["trainable", "lr", "status", "diverged at step", "final train loss", "avg"],
                    [[r["trainable"], f"{r['lr']:g}", r["status"], fmt(r["diverged_at_step"], digits=0),
                      fmt(r["final_train_loss"]), fmt(r["avg"])] for r in ladder.to_dict("records")])]
    report = out / "CALIBRATION.md"
    write_atomic(report, to_markdown(blocks, out))
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vlmlab.calibrate", description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs/calibration")
    ap.add_argument("--out", default=str(repo_root() / "results" / "calibration"))
    ap.add_argument("--no-train", action="store_true", help="only probes and the report from existing runs")
    ap.add_argument("--visions", default="toy_weak,toy_strong", help="encoders to probe (conf/vision/)")
    ap.add_argument("--probe-scenes", default="2400,400",
                    help="probe scenes: train,test (600 starved the 512-feature probes: docs/world.md, rc3)")
    ap.add_argument("--seeds", default=None, help="the controls' seeds instead of the file's (e.g. 0,1 for a test)")
    ap.add_argument("--controls", default=None,
                    help="another controls file (a pre-registered follow-up, e.g. calibration/margins.yaml) instead of "
                         "calibration/controls.yaml")
    ap.add_argument("--sweeps", default=",".join(SWEEPS),
                    help="the sweeps to train (the others' finished runs are still reported), e.g. ladder")
    ap.add_argument("overrides", nargs="*", help="overrides for every run (e.g. debug=smoke)")
    args = ap.parse_args(argv)
    sweeps = tuple(s for s in args.sweeps.split(",") if s)
    if set(sweeps) - set(SWEEPS):
        ap.error(f"--sweeps takes names from {', '.join(SWEEPS)}; got {args.sweeps!r}")
    if not args.no_train:
        run_sweeps(args.runs, args.overrides, args.seeds, sweeps, args.controls)
    n_train, n_test = (int(x) for x in args.probe_scenes.split(","))
    probes = probe_rows([v for v in args.visions.split(",") if v], [o for o in args.overrides if o.startswith(("vision", "scale"))],
                        n_train, n_test)
    kept = Path(args.out) / "runs"  # the runs' small files, committed with the calibration
    if kept.resolve() != Path(args.runs).resolve():
        aggregate.snapshot(args.runs, kept, [load_ablation(f).name for f in sweep_files(args.controls).values()])
    report = build(str(kept), Path(args.out), probes, args.controls)
    print(f"[calibrate] wrote {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
