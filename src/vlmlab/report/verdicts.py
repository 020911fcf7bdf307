"""Verdicts: each check of an ablation file becomes reproduced / contradicted / inconclusive (or a fact, or
untestable here), and each finding's verdict comes from its primary checks.

Pairing: seed s of the better cell and seed s of the worse cell share the data order and the
initialisation of the parts they share, so d_s = better_s - worse_s is a matched pair. A check names
key=value pairs for each side; every cell whose swept values contain them is on that side, and a
better cell is paired with the worse cell that agrees on every other key (so a check on
`trainable` in a grid over `trainable x optim.lr` pools the pairs of every learning rate).

The statistic fits the metric's kind (contract/metrics.py; the tests are in stats.py):
  quality        paired t test of d in the metric's good direction against 0 (`better`) or -margin
                 (`not_worse`); the exact sign test when d does not vary. Pairs use seeds where both sides
                 finished; seeds that diverged or failed on either side are counted in the note, not hidden.
  event          `diverged`: Fisher's exact test of diverged / not diverged seeds on each side.
  deterministic  a fact: "fact: holds" or "fact: does not hold", never a reproduction.
  timing         isolated timings (source "isolated"): timing.py's interleaved reps pair as seeds do, and the
                 interval must lie beyond |A/A mean| + A/A half-width; a run's own timings: as quality.
Multiplicity: `adjust` applies Holm's correction over the report's tested checks (quality and event checks),
in two families: the primary checks (the confirmatory claims) and the secondary ones, so adding a secondary
check never costs a primary one power; the verdict reads the adjusted p at alpha 0.05: reproduced if significant in the paper's direction,
contradicted if significant against it, else inconclusive. The raw p and the 95% interval are shown.
Power: an inconclusive check gets `seeds_to_decide`, the paired seeds a t test needs for 80% power if the
mean and spread of d hold, and `power_for`: "reproduce" or "contradict", the way its estimate points.
Untestable: a check on a task the calibration of the world its runs ran in (results/calibration*/controls.csv,
matched by world version: calibration.calibration_for) found at blind level, where the trained baseline does not
beat its blind control by 2 seed SDs, is "untestable here"; a check that contrasts image.blind itself (F0) is
that control, and keeps its verdict.
Finding verdict, over the primary checks of its files (`primary: true`; a file that marks none: all its
checks but facts), not-run, not-measured and untestable ones set aside:
  reproduced (all reproduced) | contradicted (some contradicted, none reproduced) | mixed (both) |
  partly reproduced (some reproduced, the rest inconclusive) | inconclusive |
  untestable here (every primary untestable) | not run yet (no pairs anywhere).
"""
from __future__ import annotations

import math

import pandas as pd

from vlmlab.contract.ablation import Check
from vlmlab.contract.metrics import metric as metric_info
from vlmlab.report.aggregate import parse_cell, write_atomic
from vlmlab.report.stats import ALPHA, fisher_p, holm, mean_ci, paired_p, seeds_for_power

FACT_HOLDS, FACT_FAILS = "fact: holds", "fact: does not hold"  # a deterministic check's two verdicts
DECIDED = ("reproduced", "contradicted", FACT_HOLDS, FACT_FAILS)  # a check that settled its question


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


def claim_of(metric: str) -> str:
    """quality (scores, divergence) or efficiency (timing, compute) by the metric's kind."""
    return "efficiency" if metric_info(metric).kind in ("timing", "deterministic") else "quality"


def _event_counts(seeds: pd.DataFrame, cells: list[str]) -> tuple[int, int]:
    """(diverged, finished + diverged) seeds of the cells."""
    g = seeds[seeds["cell"].isin(cells) & seeds["status"].isin(["finished", "diverged"])]
    return int((g["status"] == "diverged").sum()), len(g)


def _excluded(seeds: pd.DataFrame, pairs: list[tuple[str, str]]) -> int:
    """Seeds of the paired cells that ran but left no score (diverged or failed): out of the pairs."""
    cells = {c for pair in pairs for c in pair}
    return int((seeds["cell"].isin(cells) & seeds["status"].isin(["diverged", "failed"])).sum())


def evaluate_check(seeds: pd.DataFrame, check: Check | dict, isolated: pd.DataFrame | None = None,
                   untestable: dict[str, str] | None = None) -> dict:
    """One verdict row for one check of an ablation file, before the report's Holm adjustment (`adjust`).
    `isolated`: aggregate.isolated_table, for checks on isolated timings; `untestable`: task -> reason."""
    check = Check.parse(check)
    metric, kind, margin = check.metric, check.kind, check.margin
    info = metric_info(metric)
    timed = info.source == "isolated"
    noise = aa_bound(isolated) if timed else math.nan
    if timed:
        seeds = isolated if isolated is not None and not isolated.empty else seeds.iloc[0:0]
    cells = list(dict.fromkeys(seeds["cell"])) if not seeds.empty else []
    pairs = cell_pairs(cells, check.better, check.worse)
    d = paired_differences(seeds, pairs, metric) if pairs else paired_differences(seeds.iloc[0:0], [], metric)
    mean, half, n = mean_ci(d["diff"])
    lo, hi = mean - half, mean + half
    sign = direction(metric)
    bound = -abs(margin) if kind == "not_worse" else 0.0
    good = sign * d["diff"]  # differences in the metric's good direction
    test, p, verdict, paper_way = "none", math.nan, "inconclusive", None
    if info.kind == "deterministic":
        test = "fact"
        if n:
            verdict = FACT_HOLDS if float(good.iloc[0]) > bound else FACT_FAILS
    elif info.kind == "event":
        test = "Fisher exact"
        bs, ws = [b for b, _ in pairs], [w for _, w in pairs]
        (eb, nb), (ew, nw) = _event_counts(seeds, list(dict.fromkeys(bs))), _event_counts(seeds, list(dict.fromkeys(ws)))
        p = fisher_p(eb, nb, ew, nw)
        if nb and nw:
            mean = eb / nb - ew / nw  # share of diverged seeds, better minus worse
            paper_way = sign * mean > 0
            verdict = _by_p(p, paper_way)
    elif timed:
        test = "paired t over reps, A/A bound"
        p = paired_p(d["diff"])[0]
        verdict = decide_isolated(lo, hi, n, sign, noise)
    else:
        p, test = paired_p(good, bound)
        paper_way = float(good.mean()) > bound if n else None
        verdict = _by_p(p, paper_way) if n >= 2 else "inconclusive"
    to_decide, power_for = math.nan, ""
    if verdict == "inconclusive" and n >= 2 and test in ("paired t", "sign test"):
        to_decide = seeds_for_power(float(good.std(ddof=1)), abs(float(good.mean()) - bound))
        power_for = "reproduce" if paper_way else "contradict"
    ran = (not seeds.empty) and bool(seeds["status"].ne("missing").any())
    excluded = _excluded(seeds, pairs) if pairs and info.kind not in ("event",) and not timed else 0
    if not pairs and timed:
        note = "not measured: no isolated timing of these cells (python -m vlmlab.timing)"
    elif not pairs:
        note = "no cells match this check"
    elif n == 0 and ran and not timed and not recorded(seeds, pairs, metric):
        note = f"not measured: these runs' summaries have no {metric}"
    elif not ran:
        note = "not run yet"
    elif n < 2 and info.kind != "event":
        note = f"only {n} paired seed(s); needs 2"
    else:
        note = ""
    if timed and not note:
        note = f"reps, not seeds; A/A noise bound ±{noise:.3g} ms"
    if excluded and not note:
        note = f"{excluded} diverged or failed seed(s) of these cells have no score and are out of the pairs"
    if note == "not run yet":
        verdict = "not run yet"
    elif note.startswith("not measured"):
        verdict = "not measured"
    reason = (untestable or {}).get(metric)
    blind_contrast = "image.blind" in {**check.better, **check.worse}  # the check is the blind control itself (F0)
    if reason and not blind_contrast and not verdict.startswith(("fact", "not ")):
        verdict, note = "untestable here", reason
    return {"check": f"{_label(check.better)} vs {_label(check.worse)}", "metric": metric,
            "kind": kind, "margin": margin, "claim": claim_of(metric), "primary": check.primary, "test": test,
            "direction": "higher" if sign > 0 else "lower",
            "better_cells": " | ".join(dict.fromkeys(b for b, _ in pairs)),
            "worse_cells": " | ".join(dict.fromkeys(w for _, w in pairs)),
            "n_pairs": n, "better_mean": d["better"].mean() if n else math.nan,
            "worse_mean": d["worse"].mean() if n else math.nan,
            "diff_mean": mean, "diff_ci95": half, "diff_lo": lo, "diff_hi": hi, "p": p, "p_holm": math.nan,
            "paper_way": paper_way,
            "seeds_to_decide": to_decide, "power_for": power_for, "verdict": verdict, "note": note}


def _by_p(p: float, paper_way: bool) -> str:
    if not math.isfinite(p) or p >= ALPHA:
        return "inconclusive"
    return "reproduced" if paper_way else "contradicted"


def tested(row: dict) -> bool:
    """In the Holm family: a quality or event check (seeds, not reps or facts) with a p-value."""
    return row["test"] in ("paired t", "sign test", "Fisher exact") and math.isfinite(row["p"]) and \
        row["verdict"] in ("reproduced", "contradicted", "inconclusive")


def adjust(v: pd.DataFrame) -> pd.DataFrame:
    """Holm's correction over the report's tested checks, primary and secondary families apart; verdicts
    re-read at the adjusted p."""
    if v.empty:
        return v
    v = v.copy()
    rows = v.to_dict("records")
    pairs = []
    for primary in (True, False):  # two families: the confirmatory (primary) checks, and the secondary ones
        family = [i for i, r in enumerate(rows) if tested(r) and bool(r.get("primary", True)) == primary]
        pairs += list(zip(family, holm([rows[i]["p"] for i in family])))
    for i, q in pairs:
        r = rows[i]
        v.at[v.index[i], "p_holm"] = q
        paper_way = bool(r["paper_way"])  # the estimate's side of the bound, from evaluate_check
        new = _by_p(q, paper_way)
        if new != r["verdict"]:
            v.at[v.index[i], "verdict"] = new
            if new == "inconclusive" and math.isfinite(r["n_pairs"]) and r["n_pairs"] >= 2 and r["test"] != "Fisher exact":
                v.at[v.index[i], "power_for"] = "reproduce" if paper_way else "contradict"
    return v


def verdicts_table(seeds: pd.DataFrame, spec: dict, isolated: pd.DataFrame | None = None,
                   untestable: dict[str, str] | None = None) -> pd.DataFrame:
    """Every check of an ablation file, in file order (before the report-wide `adjust`)."""
    checks = [Check.parse(c) for c in spec.get("checks") or []]
    marked = any(c.primary for c in checks)
    rows = []
    for i, chk in enumerate(checks):
        row = evaluate_check(seeds, chk, isolated, untestable)
        row["primary"] = chk.primary if marked else row["test"] != "fact"
        rows.append({"ablation": spec.get("name", ""), "finding": spec.get("finding", "?"), "index": i, **row})
    return pd.DataFrame(rows)


SET_ASIDE = ("not run yet", "not measured", "untestable here", FACT_HOLDS, FACT_FAILS)


def finding_verdict(verdicts, untestable: int = 0) -> str:
    """Combine primary-check verdicts into one finding-level verdict (rules in the module docstring)."""
    verdicts = list(verdicts)
    v = [x for x in verdicts if x not in SET_ASIDE]
    if not v:
        return "untestable here" if "untestable here" in verdicts else "not run yet"
    rep, con = v.count("reproduced"), v.count("contradicted")
    if rep == len(v):
        return "reproduced"
    if rep and con:
        return "mixed"
    if con:
        return "contradicted"
    return "partly reproduced" if rep else "inconclusive"


def findings_table(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Per finding: counts of its primary checks' verdicts and the finding-level verdict."""
    rows = []
    for finding, g in verdicts.groupby("finding", sort=True) if not verdicts.empty else []:
        primary = g[g["primary"].astype(bool)] if "primary" in g.columns else g
        counts = primary["verdict"].value_counts()
        rows.append({"finding": finding, "ablations": " ".join(dict.fromkeys(g["ablation"])), "n_checks": len(g),
                     "n_primary": len(primary),
                     **{f"n_{k.replace(' ', '_')}": int(counts.get(k, 0))
                        for k in ("reproduced", "contradicted", "inconclusive", "untestable here", "not run yet")},
                     "verdict": finding_verdict(list(primary["verdict"]))})
    return pd.DataFrame(rows)


def write_verdicts(verdicts: pd.DataFrame, out) -> None:
    write_atomic(out, verdicts.to_csv(index=False))
