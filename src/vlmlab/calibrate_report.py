"""The calibration's report (calibrate.py runs its sweeps and probes): the tables built from its run folders (blind
controls, learning curve, learning-rate ladder), issue 16's targets, each marked met or not, and CALIBRATION.md.
A pre-registered follow-up replaces one sweep's file (`follow_ups`: {"controls": calibration/margins.yaml} or
{"curve": calibration/curve_followup.yaml}); the other sweeps' files stay calibration/<sweep>.yaml."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from vlmlab.calibrate_curve import (CURVE_SHARE, RECIPE_STEPS, budgets, curve_check, curve_check_paired, curve_table,
                                    late_gains, plot_curve)
from vlmlab.paths import repo_root
from vlmlab.contract.ablation import load_ablation
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


def sweep_files(follow_ups: dict[str, str | Path] | None = None) -> dict[str, Path]:
    """Each sweep's ablation file: calibration/<sweep>.yaml, or a pre-registered follow-up's in its place
    (`follow_ups`, e.g. {"controls": "calibration/margins.yaml"}: --controls, --curve)."""
    follow_ups = follow_ups or {}
    if set(follow_ups) - set(SWEEPS):
        raise ValueError(f"a follow-up replaces one of {', '.join(SWEEPS)}; got {', '.join(follow_ups)}")
    return {n: Path(follow_ups[n]) if n in follow_ups else FOLDER / f"{n}.yaml" for n in SWEEPS}


def _questions(abl) -> str:
    """The validation questions a task its runs are scored on (eval.max_samples among its fixed overrides)."""
    got = [o.split("=", 1)[1] for o in abl.fixed if o.startswith("eval.max_samples=")]
    return got[0] if got else "all"


def _asked(files: dict[str, Path], follow_ups: dict | None) -> str:
    """' (N questions a task)' from the follow-ups' files (eval.max_samples), '' for the standard calibration."""
    sizes = sorted({_questions(load_ablation(files[k])) for k in (follow_ups or {})})
    return f" ({', '.join(sizes)} questions a task)" if sizes else ""


def _flag(value) -> str:
    return "met" if value else "NOT met"


def control_rows(seeds: pd.DataFrame, tasks: list[str], prior: dict) -> pd.DataFrame:
    """Per task and splitting: trained and blind mean ± seed SD, the margin in points and in seed SDs, and the step
    budget the controls ran at (report.calibration.calibration_for matches it to the runs it judges)."""
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
                         "seeds": f"{len(t)}/{len(b)}",
                         **({"steps": recipe_steps(at)} if "max_steps" in at else {})})
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


def recipe_steps(seeds: pd.DataFrame) -> int:
    """The recipe's step budget B as its controls ran (their optim.max_steps; RECIPE_STEPS without controls): the
    budget the curve criterion judges. Controls that ran at several budgets are not one recipe: an error."""
    got = seeds["max_steps"].dropna().astype(int).unique() if "max_steps" in seeds else []
    if len(got) > 1:
        raise ValueError(f"the controls ran at several step budgets ({sorted(got)}): one recipe has one budget")
    return int(got[0]) if len(got) else RECIPE_STEPS


def targets(controls: pd.DataFrame, curve: pd.DataFrame, probes: pd.DataFrame,
            ladder: pd.DataFrame | None = None, paired: tuple | None = None,
            budget: int = RECIPE_STEPS) -> list[list[str]]:
    """Issue 16's targets as [target, measured, met]; `paired` is calibrate_curve.curve_check_paired's result (the
    curve criterion paired by seed), reported beside the unpaired one when two or more seeds ran every budget;
    `budget` is the recipe's step budget B (the criterion: B -> 2B adds <= CURVE_SHARE x B/4 -> B)."""
    quarter, at, double = budgets(budget)
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
    check = curve_check(curve, budget)
    if check:
        late, early, lo, hi = check
        measured = f"{fmt(late)} vs {fmt(early)}"
        if lo == lo:  # seeds at every budget: the 95% interval of late - share x early
            measured += (f"; late - {CURVE_SHARE:g} x early: 95% CI [{fmt(lo)}, {fmt(hi)}]"
                         + (" (spans 0: unresolved)" if lo <= 0 <= hi else ""))
        out.append([f"{at} -> {double} steps adds <= {CURVE_SHARE:g} x the {quarter} -> {at} gain (avg over seeds)",
                    measured, _flag(late <= CURVE_SHARE * early)])
    if paired and paired[4] >= 2:
        late, early, lo, hi, n = paired
        out.append([f"the same, paired by seed (d = late - {CURVE_SHARE:g} x early per seed; {n} seeds)",
                    f"{fmt(late)} vs {fmt(early)}; mean d 95% t CI [{fmt(lo)}, {fmt(hi)}]"
                    + (" (spans 0: unresolved)" if lo <= 0 <= hi else ""), _flag(late <= CURVE_SHARE * early)])
    if ladder is not None and not ladder.empty:
        n_div = int((ladder["status"] == "diverged").sum())
        stable = ", ".join(f"{arm} {lr:g}" for arm, lr in largest_stable(ladder).items())
        out.append(["some rung of the learning-rate ladder diverges", f"{n_div} of {len(ladder)} rungs; largest "
                    f"stable lr: {stable}", _flag(n_div > 0)])
    for r in probes.to_dict("records"):
        out.append([f"probe {r['probe']} ({r['vision']}) {r['target']}%", fmt(r["accuracy"], digits=1),
                    _flag(r["met"])])
    return out


def build(runs: str, out: Path, probes: pd.DataFrame, follow_ups: dict[str, str | Path] | None = None) -> Path:
    """CALIBRATION.md and its tables under `out` from the run folders under `runs` (each sweep's from its file:
    `follow_ups` names a pre-registered follow-up's in a sweep's place)."""
    files = sweep_files(follow_ups)
    controls_abl, curve_abl, ladder_abl = (load_ablation(f) for f in files.values())
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
    budget = recipe_steps(cs[cs["status"] == "finished"]) if not cs.empty else RECIPE_STEPS
    _, at, double = budgets(budget)
    if not controls.empty:  # which world these controls measured: the report matches it to its runs' world
        controls["world"] = recorded_world(runs, ran_in)
    vs = aggregate.seeds_table(runs, curve_abl.name, curve_abl.__dict__)
    fin = vs[vs["status"] == "finished"] if not vs.empty else vs
    curve, paired, gains = pd.DataFrame(), None, pd.DataFrame()
    if not fin.empty:
        tasks = tasks or [t for t in aggregate.task_columns(fin) if t != "avg"]  # a curve follow-up alone
        cols = [c for c in (*tasks, "avg", "final_train_loss") if c in fin.columns]
        curve = curve_table(fin, cols)
        paired = curve_check_paired(fin, budget)
        gains = (late_gains(fin, [c for c in ("avg", *tasks) if c in fin.columns], budget) if paired and paired[4] >= 2
                 else gains)
    out.mkdir(parents=True, exist_ok=True)
    for name, table in (("probes", probes), ("controls", controls), ("curve", curve), ("curve_gains", gains),
                        ("ladder", ladder)):
        if table.empty:  # a part not run (e.g. the ladder stopped for time): no table rather than an empty file
            (out / f"{name}.csv").unlink(missing_ok=True)
        else:
            write_atomic(out / f"{name}.csv", table.to_csv(index=False))
    blocks = [("h1", "World calibration: does the toy world contain the findings' mechanisms?", None),
              ("p", f"World {recorded_world(runs)}. Generated by `python -m vlmlab.calibrate` from the encoders' probes "
                    f"and the run folders under {runs}/ (calibration/*.yaml"
                    + "".join(f"; the {k}: {Path(v).name}" for k, v in (follow_ups or {}).items()) + "); scored on the "
                    f"validation split{_asked(files, follow_ups)}. "
                    "\"Stable\" in the ladder means not diverged by the stated criterion; a rung can still lose "
                    "what it learned (see its avg).", None),
              ("h2", "Targets", None), ("table", ["target", "measured", ""], targets(controls, curve, probes, ladder,
                                                                                      paired, budget))]
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
    if not gains.empty:
        blocks += [("h2", f"The last doubling ({at} -> {double} steps), paired by seed", None),
                   ("p", f"Per seed the score at {double} steps minus the same seed's at {at} (the same initialisation and "
                         "data order, each budget its own cosine schedule); mean and 95% t interval over the seeds "
                         "that finished every budget.", None),
                   ("table", ["metric", "gain", "95% CI", "seeds"],
                    [[r["metric"], fmt(r["gain"]), f"[{fmt(r['lo'])}, {fmt(r['hi'])}]", str(r["seeds"])]
                     for r in gains.to_dict("records")])]
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


