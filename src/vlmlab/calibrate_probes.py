"""The probes' estimator follow-up: are the probes' misses the encoders' or the probe estimator's?

    python -m vlmlab.calibrate_probes calibration/probe_followup.yaml [--out results/calibration_probes] [--jobs 2]
    make calibrate-probes

The plan file (pre-registered; its comments state the question, the primary and the prediction) names the encoders,
the scene counts and the two estimators, fitted on the same features (world/probes.py's read-outs) and scenes:
  adam  world/vision.py's probe_predict, the zoo's and the calibration's (300 Adam steps, fixed weight decay)
  cv    the field's linear probe (CLIP's protocol): scikit-learn's LogisticRegressionCV (L-BFGS, L2), its C chosen
        by stratified k-fold cross-validation on the train scenes alone, on features standardised as adam's are
Each encoder's fits at one train size are kept as <out>/parts/<scale>_<vision>_<train scenes>.json (accuracy,
chosen C, seconds and every test scene's correctness), the primary's first, so a stopped run resumes with the parts it
lacks and `--no-fit` rebuilds the report from them. The estimators are
compared per probe by McNemar's exact test on the same test scenes (statsmodels), Holm-corrected over each
encoder's probes; the report marks every target met or not (issue 16, world/probes.py's TARGETS).
"""
from __future__ import annotations

import argparse
import json
import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pandas as pd
import yaml

from vlmlab.contract.errors import UserError
from vlmlab.paths import git_commit, repo_root
from vlmlab.report.markup import fmt, fmt_p, to_markdown
from vlmlab.report.stats import holm, mcnemar_exact
from vlmlab.tracking import write_atomic

ESTIMATORS = ("adam", "cv")
KEYS = {"question", "encoders", "train_scenes", "test_scenes", "secondary", "estimators", "cv", "primary", "alpha"}


def load_plan(path: str | Path) -> dict:
    plan = yaml.safe_load(Path(path).read_text())
    missing, unknown = KEYS - set(plan), set(plan) - KEYS
    if missing or unknown:
        raise UserError(f"{path}: missing keys {sorted(missing)}, unknown keys {sorted(unknown)}")
    if set(plan["estimators"]) - set(ESTIMATORS):
        raise UserError(f"{path}: estimators take names from {ESTIMATORS}; got {plan['estimators']}")
    return plan


def cv_predict(train_x, train_y, test_x, cs: list[float], folds: int, max_iter: int) -> tuple[list[int], float]:
    """LogisticRegressionCV on standardised features (the train scenes' mean and SD, as adam's): test predictions
    and the C cross-validation chose."""
    import warnings

    import numpy as np
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    x, t, y = np.asarray(train_x, dtype=np.float64), np.asarray(test_x, dtype=np.float64), np.asarray(train_y)
    mu, sd = x.mean(0), x.std(0, ddof=1) + 1e-6
    model = LogisticRegressionCV(Cs=list(cs), cv=StratifiedKFold(folds, shuffle=True, random_state=0),
                                 max_iter=max_iter, scoring="accuracy")
    with warnings.catch_warnings():  # sklearn 1.9 announces 1.10's changed defaults; this call is plain L2
        warnings.simplefilter("ignore", FutureWarning)
        model.fit((x - mu) / sd, y)
    return model.predict((t - mu) / sd).tolist(), float(np.ravel(model.C_)[0])


def fits(sets: dict, n_train: int, n_test: int, plan: dict) -> list[dict]:
    """Every probe x estimator fit at one train size: train on the first n_train scenes, test on the next n_test."""
    import time

    import torch

    from vlmlab.world.vision import probe_predict

    rows = []
    for probe, (x, labels) in sets.items():
        y = torch.tensor(labels)
        train_x, train_y, test_x, test_y = x[:n_train], y[:n_train], x[n_train:n_train + n_test], y[n_train:n_train + n_test]
        for est in plan["estimators"]:
            c, t0 = None, time.time()
            if est == "adam":
                pred = probe_predict(train_x, train_y, test_x).tolist()
            else:
                pred, c = cv_predict(train_x, train_y, test_x, plan["cv"]["Cs"], plan["cv"]["folds"], plan["cv"]["max_iter"])
            correct = [int(p == t) for p, t in zip(pred, test_y.tolist())]
            rows.append({"probe": probe, "estimator": est, "train_scenes": n_train, "test_scenes": len(correct),
                         "accuracy": 100 * sum(correct) / len(correct), "C": c, "seconds": round(time.time() - t0, 1),
                         "correct": correct})
    return rows


def fit_encoder(scale: str, vision: str, n_train: int, plan: dict, threads: int = 1) -> dict:
    """One part: an encoder's probe features over n_train + test scenes, and every estimator's fit on them."""
    import time

    import torch
    from threadpoolctl import threadpool_limits  # sklearn's BLAS: one job, `threads` threads, as torch's

    from vlmlab.config import compose
    from vlmlab.model.navit import load_vision_encoder
    from vlmlab.world.probes import probe_sets

    torch.set_num_threads(threads)
    t0, commit = time.time(), git_commit(repo_root())
    cfg = compose([f"scale={scale}", f"vision={vision}"])
    encoder = load_vision_encoder(cfg.vision.name_or_path).eval()
    sets = probe_sets(encoder, n_train + plan["test_scenes"], cfg.data)  # the runs' world: canvases, script, grain
    t1 = time.time()
    with threadpool_limits(threads):
        rows = fits(sets, n_train, plan["test_scenes"], plan)
    return {"scale": scale, "vision": vision, "train_scenes": n_train, "encoder": cfg.vision.name_or_path,
            "git_commit": commit, "threads": threads, "features_s": round(t1 - t0, 1),
            "fits_s": round(time.time() - t1, 1), "rows": rows}


def jobs_of(plan: dict) -> list[tuple[str, str, int]]:
    """(scale, vision, train scenes) of every part: the primary's first, the secondary last."""
    pr, sec = plan["primary"], plan["secondary"]
    first = [(pr["scale"], pr["vision"], plan["train_scenes"])]
    rest = [(s, v, plan["train_scenes"]) for s, v in plan["encoders"] if (s, v, plan["train_scenes"]) not in first]
    return first + rest + [(sec["scale"], sec["vision"], sec["train_scenes"])]


def _part(out: Path, scale: str, vision: str, n_train: int) -> Path:
    return out / "parts" / f"{scale}_{vision}_{n_train}.json"


def _fit_and_save(scale: str, vision: str, n_train: int, plan: dict, out: str) -> str:
    part = fit_encoder(scale, vision, n_train, plan)
    path = _part(Path(out), scale, vision, n_train)
    write_atomic(path, json.dumps(part) + "\n")
    return str(path)


def run_fits(plan: dict, out: Path, jobs: int = 1) -> None:
    """Fits every part that is missing, `jobs` at a time (one thread each), in jobs_of's order; each part is saved as
    it ends, so a stopped run resumes with the parts it lacks."""
    todo = [j for j in jobs_of(plan) if not _part(out, *j).exists()]
    (out / "parts").mkdir(parents=True, exist_ok=True)
    if jobs <= 1:
        for j in todo:
            print(f"[calibrate_probes] {' '.join(map(str, j))}: {_fit_and_save(*j, plan, str(out))}", flush=True)
        return
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(_fit_and_save, *j, plan, str(out)): j for j in todo}
        for f, j in futures.items():
            print(f"[calibrate_probes] {' '.join(map(str, j))}: {f.result()}", flush=True)


def tables(parts: list[dict], plan: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(probes: one row per encoder x probe x train size x estimator, with chance, target and met;
    tests: McNemar's exact test of the two estimators per encoder x probe x train size, Holm-corrected; `differ`
    where the corrected p is under the plan's alpha)."""
    from vlmlab.world.probes import CHANCE, TARGETS, meets

    rows = []
    for part in parts:
        for r in part["rows"]:
            op, bound = TARGETS[r["probe"]]
            rows.append({"scale": part["scale"], "vision": part["vision"], **{k: v for k, v in r.items() if k != "correct"},
                         "chance": 100 * CHANCE[r["probe"]], "target": f"{op} {100 * bound:.0f}",
                         "met": meets(r["probe"], r["accuracy"] / 100)})
    probes = pd.DataFrame(rows)
    tests = []
    for part in parts:
        by = {(r["probe"], r["train_scenes"], r["estimator"]): r["correct"] for r in part["rows"]}
        group = []
        for (probe, n, est), adam in by.items():
            if est != "adam" or (probe, n, "cv") not in by:
                continue
            cv = by[(probe, n, "cv")]
            only_adam, only_cv, p = mcnemar_exact(adam, cv)
            group.append({"scale": part["scale"], "vision": part["vision"], "probe": probe, "train_scenes": n,
                          "adam": 100 * sum(adam) / len(adam), "cv": 100 * sum(cv) / len(cv),
                          "only_cv_right": only_cv, "only_adam_right": only_adam, "p": float(p)})
        for n in sorted({g["train_scenes"] for g in group}):  # Holm over the encoder's probes at one train size
            same = [g for g in group if g["train_scenes"] == n]
            for g, ph in zip(same, holm([g["p"] for g in same])):
                g["p_holm"], g["differ"] = ph, bool(ph < plan["alpha"])
        tests += group
    return probes, pd.DataFrame(tests)


def primary(probes: pd.DataFrame, plan: dict) -> tuple[str, pd.DataFrame]:
    pr = plan["primary"]
    sel = probes[(probes.scale == pr["scale"]) & (probes.vision == pr["vision"]) & (probes.train_scenes == pr["train_scenes"])
                 & (probes.estimator == pr["estimator"]) & probes.probe.isin(pr["probes"])]
    if len(sel) != len(pr["probes"]):
        return "not run", sel
    missed = sel[~sel.met].probe.tolist()
    return ("met: every probe reads at its target" if not missed else f"missed: {', '.join(missed)} under target"), sel


def build(parts: list[dict], plan: dict, plan_path: str, out: Path) -> str:
    probes, tests = tables(parts, plan)
    write_atomic(out / "probes.csv", probes.to_csv(index=False))
    write_atomic(out / "tests.csv", tests.to_csv(index=False))
    verdict, sel = primary(probes, plan)
    pr = plan["primary"]
    wide = probes.pivot_table(index=["scale", "vision", "train_scenes", "probe"], columns="estimator",
                              values="accuracy", sort=False).reset_index()
    c = probes[probes.estimator == "cv"].set_index(["scale", "vision", "train_scenes", "probe"])["C"]
    tgt = probes.drop_duplicates("probe").set_index("probe")["target"]
    wide_rows = [[r.scale, r.vision, r.train_scenes, r.probe, tgt[r.probe],
                  *(fmt(getattr(r, e), digits=1) if e in wide.columns else "-" for e in ESTIMATORS),
                  fmt(c.get((r.scale, r.vision, r.train_scenes, r.probe)), digits=4)] for r in wide.itertuples()]
    test_rows = [[t.scale, t.vision, t.train_scenes, t.probe, fmt(t.adam, digits=1), fmt(t.cv, digits=1),
                  t.only_cv_right, t.only_adam_right, fmt_p(t.p), fmt_p(t.p_holm), "yes" if t.differ else "no"]
                 for t in tests.itertuples()]
    blocks = [
        ("h1", "The probes' estimator follow-up", None),
        ("p", f"Plan: `{plan_path}` (pre-registered; its comments give the question, the primary and the prediction). "
              f"{plan['question']}", None),
        ("h2", "Primary", None),
        ("p", f"{pr['vision']} at the {pr['scale']} scale, {pr['train_scenes']:,} train scenes, estimator "
              f"{pr['estimator']}: **{verdict}** ("
              + "; ".join(f"{r.probe} {r.accuracy:.1f} ({r.target})" for r in sel.itertuples()) + ").", None),
        ("h2", "Accuracy by estimator", None),
        ("p", "Test accuracy (%) on the same test scenes (the scenes right after the train scenes); C: the L2 strength "
              "cross-validation chose for cv (sklearn's C, the inverse of the penalty).", None),
        ("table", ["scale", "vision", "train scenes", "probe", "target", "adam", "cv", "cv's C"], wide_rows),
        ("h2", "The estimators compared", None),
        ("p", "McNemar's exact test on the test scenes: scenes only cv reads right against scenes only adam reads right; "
              "p Holm-corrected over each encoder's probes at one train size.", None),
        ("table", ["scale", "vision", "train scenes", "probe", "adam", "cv", "only cv right", "only adam right", "p",
                   "p (Holm)", f"differ (Holm p < {plan['alpha']})"], test_rows),
    ]
    text = to_markdown(blocks, out)
    write_atomic(out / "PROBES.md", text)
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vlmlab.calibrate_probes", description=__doc__.splitlines()[0])
    ap.add_argument("plan", help="the pre-registered plan, e.g. calibration/probe_followup.yaml")
    ap.add_argument("--out", default=str(repo_root() / "results" / "calibration_probes"))
    ap.add_argument("--jobs", type=int, default=1, help="encoders fitted at once, one thread each")
    ap.add_argument("--no-fit", action="store_true", help="only the report, from the parts already in <out>/parts")
    args = ap.parse_args(argv)
    try:
        plan, out = load_plan(args.plan), Path(args.out)
        if not args.no_fit:
            run_fits(plan, out, args.jobs)
        parts = [json.loads(p.read_text()) for j in jobs_of(plan) if (p := _part(out, *j)).exists()]
    except UserError as e:
        raise SystemExit(f"error: {e}") from None
    build(parts, plan, os.path.relpath(args.plan, repo_root()) if Path(args.plan).is_absolute() else args.plan, out)
    print(f"[calibrate_probes] wrote {out / 'PROBES.md'}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
