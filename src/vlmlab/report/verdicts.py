"""Verdicts from paired seeds: each check of an ablation file becomes reproduced / contradicted / inconclusive.

Pairing: seed s of the better cell and seed s of the worse cell share the data order and the
initialisation of the parts they share, so d_s = better_s - worse_s is a matched pair. A check names
key=value pairs for each side; every cell whose swept values contain them is on that side, and a
better cell is paired with the worse cell that agrees on every other key (so a check on
`trainable` in a grid over `trainable x optim.lr` pools the pairs of every learning rate).
Pairs: `diverged` uses seeds that finished or diverged; every other metric uses seeds where both
sides finished (a diverged run has no evaluation). The 95% t interval of the mean of d decides:
  better     reproduced if the interval lies above 0 in the metric's good direction, contradicted if below
  not_worse  reproduced if the good-direction lower bound > -margin, contradicted if the upper bound < -margin
  otherwise, or with fewer than 2 pairs: inconclusive.
A check on an isolated timing (a metric of source "isolated", e.g. isolated_step_ms) pairs timing.py's
interleaved reps instead of seeds (rep r of both cells was timed in the same round), and must also clear the
A/A control: reproduced (or contradicted) only if its interval lies beyond |A/A mean| + A/A half-width,
the largest difference the same model timed twice admits; with no A/A row it stays inconclusive.
An inconclusive check with 2+ pairs also gets `seeds_to_decide`: the paired seeds with 80% power for the
interval to clear its bound (0, or -margin) if the mean and std of d are as estimated (stats.seeds_needed).
A planning figure for the next run, not a promise: the estimates are from few seeds, and adding seeds
after looking at a result is optional stopping, so choose the number once.
A check whose metric the finished runs never recorded (a compute metric added after they ran) is "not measured".
Finding verdict, over all checks of all ablation files of one finding (not-run and not-measured checks excluded):
  reproduced (all reproduced) | contradicted (some contradicted, none reproduced) | mixed (both) |
  partly reproduced (some reproduced, the rest inconclusive) | inconclusive | not run yet (no pairs anywhere).
"""
from __future__ import annotations

import math

import pandas as pd

from vlmlab.contract.ablation import Check
from vlmlab.contract.metrics import metric as metric_info
from vlmlab.report.aggregate import parse_cell, write_atomic
from vlmlab.report.stats import mean_ci, seeds_needed


def direction(metric: str) -> int:
    """+1 when higher is better (task scores, avg, train_samples_per_s), -1 when lower is better (the metric
    registry's direction, contract/metrics.py)."""
    return metric_info(metric).direction


def _same(a, b) -> bool:
    """Cell values are strings as on the command line; YAML may give 1e-3 as str or 0.001 as float."""
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    except (TypeError, ValueError):
        return str(a).strip().lower() == str(b).strip().lower()


def matches(cell: str, want: dict) -> bool:
    values = parse_cell(cell)
    return all(k in values and _same(values[k], v) for k, v in (want or {}).items())


def cell_pairs(cells: list[str], better: dict, worse: dict) -> list[tuple[str, str]]:
    """(better_cell, worse_cell) pairs that agree on every key the check does not name."""
    named = set(better or {}) | set(worse or {})
    rest = lambda c: {k: v for k, v in parse_cell(c).items() if k not in named}  # noqa: E731
    bs = [c for c in cells if matches(c, better)]
    ws = [c for c in cells if matches(c, worse)]
    return [(b, w) for b in bs for w in ws if b != w and rest(b) == rest(w)]


def paired_differences(seeds: pd.DataFrame, pairs: list[tuple[str, str]], metric: str) -> pd.DataFrame:
    """Rows (better_cell, worse_cell, seed, better, worse, diff = better - worse) over usable matched seeds."""
    col = metric_info(metric).col  # `metric: params` reads the total_params column
    ok = ("finished", "diverged") if metric == "diverged" else ("finished",)
    use = seeds[seeds["status"].isin(ok)] if col in seeds.columns else seeds.iloc[0:0]
    rows = []
    for b, w in pairs:
        left = use[use["cell"] == b].set_index("seed")[col] if col in use.columns else pd.Series(dtype=float)
        right = use[use["cell"] == w].set_index("seed")[col] if col in use.columns else pd.Series(dtype=float)
        for seed in sorted(set(left.index) & set(right.index)):
            x, y = float(left[seed]), float(right[seed])
            if math.isfinite(x) and math.isfinite(y):
                rows.append({"better_cell": b, "worse_cell": w, "seed": seed, "better": x, "worse": y, "diff": x - y})
    return pd.DataFrame(rows, columns=["better_cell", "worse_cell", "seed", "better", "worse", "diff"])


def decide(lo: float, hi: float, n: int, sign: int, kind: str = "better", margin: float = 0.0) -> str:
    """The verdict from the CI [lo, hi] of better - worse, with sign = direction(metric)."""
    if n < 2 or not (math.isfinite(lo) and math.isfinite(hi)):
        return "inconclusive"
    glo, ghi = sorted((sign * lo, sign * hi))  # the interval in the good direction
    floor = -abs(margin) if kind == "not_worse" else 0.0
    if (kind == "not_worse" and glo > floor) or (kind != "not_worse" and glo > 0):
        return "reproduced"
    if ghi < floor:
        return "contradicted"
    return "inconclusive"


def decide_isolated(lo: float, hi: float, n: int, sign: int, noise: float) -> str:
    """A timing check's verdict: its interval must lie beyond +-noise (the A/A bound), not merely beyond 0."""
    if n < 2 or not (math.isfinite(lo) and math.isfinite(hi) and math.isfinite(noise)):
        return "inconclusive"
    glo, ghi = sorted((sign * lo, sign * hi))
    return "reproduced" if glo > noise else "contradicted" if ghi < -noise else "inconclusive"


def bound_distance(mean: float, sign: int, kind: str, margin: float) -> float:
    """How far the mean difference lies from the bound its interval must clear: 0 (better) or -margin
    (not_worse), in the metric's good direction."""
    return abs(sign * mean - (-abs(margin) if kind == "not_worse" else 0.0))


def _label(want: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in (want or {}).items()) or "baseline"


def recorded(seeds: pd.DataFrame, pairs: list[tuple[str, str]], metric: str) -> bool:
    """Whether any finished seed of the paired cells has a value of the metric (runs older than a compute
    metric have none: their check is not measured, not inconclusive)."""
    col = metric_info(metric).col
    cells = {c for pair in pairs for c in pair}
    done = seeds[seeds["cell"].isin(cells) & seeds["status"].eq("finished")]
    return col in done.columns and bool(pd.to_numeric(done[col], errors="coerce").notna().any())


def aa_bound(isolated: pd.DataFrame | None) -> float:
    """|A/A mean| + its 95% half-width: no timing difference inside this is told apart from noise."""
    mean, half, _ = (isolated.attrs.get("aa") if isolated is not None else None) or (math.nan, math.nan, 0)
    return abs(mean) + half if math.isfinite(mean) and math.isfinite(half) else math.nan


def evaluate_check(seeds: pd.DataFrame, check: Check | dict, isolated: pd.DataFrame | None = None) -> dict:
    """One verdict row for one check of an ablation file (`isolated`: aggregate.isolated_table, for checks on
    isolated timings)."""
    check = Check.parse(check)
    metric, kind, margin = check.metric, check.kind, check.margin
    timed = metric_info(metric).source == "isolated"
    noise = aa_bound(isolated) if timed else math.nan
    if timed:
        seeds = isolated if isolated is not None and not isolated.empty else seeds.iloc[0:0]
    cells = list(dict.fromkeys(seeds["cell"])) if not seeds.empty else []
    pairs = cell_pairs(cells, check.better, check.worse)
    d = paired_differences(seeds, pairs, metric) if pairs else paired_differences(seeds.iloc[0:0], [], metric)
    mean, half, n = mean_ci(d["diff"])
    lo, hi = mean - half, mean + half
    sign = direction(metric)
    verdict = decide_isolated(lo, hi, n, sign, noise) if timed else decide(lo, hi, n, sign, kind, margin)
    to_decide = math.nan  # not applicable (or reps, not seeds); inf: no number of seeds up to 200 decides
    if verdict == "inconclusive" and n >= 2 and not timed:
        to_decide = seeds_needed(float(d["diff"].std(ddof=1)), bound_distance(mean, sign, kind, margin)) or math.inf
    ran = (not seeds.empty) and bool(seeds["status"].ne("missing").any())
    if not pairs and timed:
        note = "not measured: no isolated timing of these cells (python -m vlmlab.timing)"
    elif not pairs:
        note = "no cells match this check"
    elif n == 0 and ran and not timed and not recorded(seeds, pairs, metric):
        note = f"not measured: these runs' summaries have no {metric}"
    elif n < 2:
        note = f"only {n} paired seed(s); needs 2" if ran else "not run yet"
    else:
        note = ""
    return {"check": f"{_label(check.better)} vs {_label(check.worse)}", "metric": metric,
            "kind": kind, "margin": margin, "direction": "higher" if sign > 0 else "lower",
            "better_cells": " | ".join(dict.fromkeys(b for b, _ in pairs)),
            "worse_cells": " | ".join(dict.fromkeys(w for _, w in pairs)),
            "n_pairs": n, "better_mean": d["better"].mean() if n else math.nan,
            "worse_mean": d["worse"].mean() if n else math.nan,
            "diff_mean": mean, "diff_ci95": half, "diff_lo": lo, "diff_hi": hi,
            "seeds_to_decide": to_decide,
            "verdict": "not run yet" if note == "not run yet" else "not measured" if note.startswith("not measured")
            else verdict,
            "note": note or (f"reps, not seeds; A/A noise bound ±{noise:.3g} ms" if timed else "")}


def verdicts_table(seeds: pd.DataFrame, spec: dict, isolated: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every check of an ablation file, in file order."""
    rows = [{"ablation": spec.get("name", ""), "finding": spec.get("finding", "?"), "index": i,
             **evaluate_check(seeds, chk, isolated)} for i, chk in enumerate(spec.get("checks") or [])]
    return pd.DataFrame(rows)


def finding_verdict(verdicts) -> str:
    """Combine check verdicts into one finding-level verdict (rules in the module docstring)."""
    v = [x for x in verdicts if x not in ("not run yet", "not measured")]
    if not v:
        return "not run yet"
    rep, con = v.count("reproduced"), v.count("contradicted")
    if rep == len(v):
        return "reproduced"
    if rep and con:
        return "mixed"
    if con:
        return "contradicted"
    return "partly reproduced" if rep else "inconclusive"


def findings_table(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Per finding: counts of check verdicts and the finding-level verdict."""
    rows = []
    for finding, g in verdicts.groupby("finding", sort=True) if not verdicts.empty else []:
        counts = g["verdict"].value_counts()
        rows.append({"finding": finding, "ablations": " ".join(dict.fromkeys(g["ablation"])), "n_checks": len(g),
                     **{f"n_{k.replace(' ', '_')}": int(counts.get(k, 0))
                        for k in ("reproduced", "contradicted", "inconclusive", "not run yet")},
                     "verdict": finding_verdict(list(g["verdict"]))})
    return pd.DataFrame(rows)


def write_verdicts(verdicts: pd.DataFrame, out) -> None:
    write_atomic(out, verdicts.to_csv(index=False))
