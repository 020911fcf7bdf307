"""The power side of the seed plan (plan.py): each primary check's seeds for 80% power from a pilot's seeds table.

quality checks: the paired t test's seeds (report/stats.seeds_for_power) at the pilot's mean and SD of paired
differences (pooled over the pilot's comparisons, or from the world's calibration, when the pilot has one seed);
`diverged`: seeds per arm for the power of Fisher's exact test at the pilot's shares."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from vlmlab.contract.ablation import Check
from vlmlab.contract.metrics import metric as metric_info
from vlmlab.report.stats import seeds_for_power
from vlmlab.report.verdicts import _event_counts, _label, cell_pairs, direction, paired_differences

POWER = 0.8


def event_seeds(p_better: float, p_worse: float, alpha: float, limit: int) -> float:
    """Seeds per arm for 80% power of the test the report runs on divergence counts: two-sided Fisher's exact test
    (stats.fisher_p), its power summed exactly over both arms' binomial outcomes at the pilot's shares. (A z test's
    power, which this once used, planned 3 seeds per arm at shares 1 vs 0, where Fisher's smallest p is 0.1.)"""
    from scipy.stats import binom

    from vlmlab.report.stats import fisher_p

    if p_better == p_worse:
        return math.inf
    for n in range(2, limit + 1):
        pb, pw = binom.pmf(range(n + 1), n, p_better), binom.pmf(range(n + 1), n, p_worse)
        power = sum(pb[a] * pw[b] for a in range(n + 1) for b in range(n + 1)
                    if pb[a] * pw[b] > 0 and fisher_p(a, n, b, n) < alpha)
        if power >= POWER:
            return float(n)
    return math.inf


def calibration_sd(metric: str, controls_csv: str | Path | None) -> tuple[float, str]:
    """The seed SD of `metric` for the baseline recipe in the world's calibration (controls.csv's trained_sd for a
    task, without splitting; curve.csv's avg_sd at the baseline's step budget for avg), with where it came from;
    (nan, "") when the calibration lacks it."""
    from vlmlab.config import compose

    if not controls_csv or not Path(controls_csv).exists():
        return math.nan, ""
    folder = Path(controls_csv).parent
    if metric == "avg":
        curve = folder / "curve.csv"
        c = pd.read_csv(curve) if curve.exists() else pd.DataFrame()
        row = c[c["steps"] == compose([]).optim.max_steps] if {"steps", "avg_sd"} <= set(c.columns) else c.iloc[0:0]
        if row.empty:
            return _controls_avg_sd(folder)
        r = row.iloc[0]
        return float(r["avg_sd"]), f"{folder.name}/curve.csv, {int(r['seeds'])} seeds at {int(r['steps'])} steps"
    c = pd.read_csv(controls_csv)
    row = c[(c["task"] == metric) & (c["split"].astype(str) == "0")] if "split" in c.columns else c.iloc[0:0]
    if row.empty or not math.isfinite(float(row.iloc[0]["trained_sd"])):
        return math.nan, ""
    return float(row.iloc[0]["trained_sd"]), f"{folder.name}/controls.csv, {row.iloc[0]['seeds']} seeds"


def _controls_avg_sd(folder: Path) -> tuple[float, str]:
    """avg's seed SD from the calibration's sighted, unsplit control runs, for a calibration with no learning curve
    (the large world's); (nan, "") with fewer than two."""
    import json

    runs = sorted(folder.glob("runs/controls/*image.blind=False,image.split=0/seed*/summary.json"))
    avgs = [json.loads(p.read_text()).get("metrics", {}).get("avg", math.nan) for p in runs]
    avgs = [float(a) for a in avgs if a == a]
    if len(avgs) < 2:
        return math.nan, ""
    return float(pd.Series(avgs).std(ddof=1)), f"{folder.name}/runs/controls, {len(avgs)} seeds of the sighted recipe"


def pooled_sds(tables: list[tuple[pd.DataFrame, list[Check]]]) -> dict[str, tuple[float, int, int]]:
    """Per metric, the pilot's pooled SD of paired differences over every check (primary or not, any file) with
    at least two: sqrt(sum (n_i - 1) var_i / sum (n_i - 1)). {metric: (sd, degrees of freedom, checks)}."""
    acc: dict[str, list[tuple[float, int]]] = {}
    for seeds, checks in tables:
        cells = list(dict.fromkeys(seeds["cell"])) if not seeds.empty else []
        for c in checks:
            info = metric_info(c.metric)
            if info.kind in ("deterministic", "event") or info.source == "isolated":
                continue
            pairs = cell_pairs(cells, c.better, c.worse)
            d = paired_differences(seeds, pairs, c.metric) if pairs else pd.DataFrame(columns=["diff"])
            for _, g in d.groupby(["better_cell", "worse_cell"]) if not d.empty else []:
                if len(g) >= 2:
                    acc.setdefault(c.metric, []).append((float(g["diff"].var(ddof=1)), len(g) - 1))
    return {m: (math.sqrt(sum(v * k for v, k in xs) / sum(k for _, k in xs)), sum(k for _, k in xs), len(xs))
            for m, xs in acc.items()}


SD_FLOORS = ("none", "pooled", "calibration")


def sd_floor(metric: str, how: str, pooled: dict[str, tuple[float, int, int]] | None,
             controls_csv: str | Path | None) -> tuple[float, str]:
    """The least SD a pilot of few seeds may claim for a paired `metric` difference (`how`, SD_FLOORS): the pilot's
    pooled SD over all its comparisons of the metric ("pooled"), or sqrt(2) x the calibration's seed SD
    ("calibration"); (nan, "") for "none" or when the source lacks the metric. Two seeds give one SD from two
    differences, which can be far too small (F7 at the large scale: 0.23 in the pilot, ~4.8 in the real run)."""
    if how == "pooled" and metric in (pooled or {}):
        sd, df, k = pooled[metric]
        return sd, f"the pilot's pooled SD of paired {metric} differences ({k} comparisons, {df} df)"
    if how == "calibration":
        seed_sd, where = calibration_sd(metric, controls_csv)
        if math.isfinite(seed_sd):
            return math.sqrt(2) * seed_sd, f"sqrt(2) x the calibration's seed SD {seed_sd:.2f} ({where})"
    if how not in SD_FLOORS:
        raise ValueError(f"sd floor {how!r}: one of {', '.join(SD_FLOORS)}")
    return math.nan, ""


def plan_check(seeds: pd.DataFrame, check: Check, alpha: float, limit: int = 200,
               untestable: dict[str, str] | None = None, controls_csv: str | Path | None = None,
               pooled: dict[str, tuple[float, int, int]] | None = None, floor: str = "none") -> dict:
    """One primary check's planned seeds from a pilot's seeds table (aggregate.seeds_table); a check on a task the
    world's calibration found at blind level (`untestable`, calibration.blind_level_tasks) gets no seeds. A pilot of
    one seed gives the effect but no spread: the SD of a paired difference is then the pilot's pooled SD of paired
    differences of the same metric over its other comparisons (`pooled`, pooled_sds), else sqrt(2) x the
    calibration's seed SD of the metric (`controls_csv`; exact for independent arms, an upper bound when a seed's
    two arms agree, as paired seeds do). `floor` (SD_FLOORS, sd_floor): a pilot's own SD below that floor is
    raised to it, and the note says so."""
    info = metric_info(check.metric)
    row = {"check": f"{_label(check.better)} vs {_label(check.worse)}", "metric": check.metric, "kind": info.kind,
           "pilot_seeds": 0, "pairs_per_seed": 0, "effect": math.nan, "sd": math.nan, "seeds": math.nan, "note": ""}
    if check.metric in (untestable or {}):
        return {**row, "note": untestable[check.metric]}
    if info.kind == "deterministic":
        return {**row, "note": "a fact: deterministic, no seeds"}
    if info.source == "isolated":
        return {**row, "note": "a timing: powered by timing.py's reps and its A/A control, not by seeds"}
    cells = list(dict.fromkeys(seeds["cell"])) if not seeds.empty else []
    pairs = cell_pairs(cells, check.better, check.worse)
    if not pairs:
        return {**row, "note": "no pilot cells match this check"}
    if info.kind == "event":
        (eb, nb) = _event_counts(seeds, list(dict.fromkeys(b for b, _ in pairs)))
        (ew, nw) = _event_counts(seeds, list(dict.fromkeys(w for _, w in pairs)))
        if not (nb and nw):
            return {**row, "note": "the pilot has no finished or diverged seeds on a side"}
        n = event_seeds(eb / nb, ew / nw, alpha, limit)
        per = max(1, len({b for b, _ in pairs}))
        ran = seeds[seeds["status"].isin(["finished", "diverged"])]
        return {**row, "pilot_seeds": int(ran["seed"].nunique()), "pairs_per_seed": per,
                "effect": eb / nb - ew / nw, "seeds": math.ceil(n / per) if math.isfinite(n) else n,
                "note": "diverged shares, power of Fisher's exact test"}
    d = paired_differences(seeds, pairs, check.metric)
    good = direction(check.metric) * d["diff"]
    bound = -abs(check.margin) if check.kind == "not_worse" else 0.0
    per = len(pairs)
    out = {**row, "pilot_seeds": int(d["seed"].nunique()), "pairs_per_seed": per}
    note = ""
    if len(good) >= 2:
        effect, sd = float(good.mean()) - bound, float(good.std(ddof=1))
        least, where = sd_floor(check.metric, floor, pooled, controls_csv)
        if math.isfinite(least) and least > sd:
            note = f"SD: the pilot's {sd:.2f} raised to the floor {least:.2f}, {where}"
            sd = least
    elif len(good) == 1:  # no spread of its own: the pooled SD, else the calibration's (sd_floor's two sources)
        sd, where = sd_floor(check.metric, "pooled", pooled, controls_csv)
        if not math.isfinite(sd):
            sd, where = sd_floor(check.metric, "calibration", pooled, controls_csv)
        if not math.isfinite(sd):
            return {**out, "note": "1 paired difference in the pilot and no seed SD in the calibration: run 2 seeds"}
        effect, note = float(good.mean()) - bound, f"SD: {where}"
    else:
        return {**out, "note": "no paired difference in the pilot: run its cells"}
    n = seeds_for_power(sd, abs(effect), limit=limit, alpha=alpha)
    if not math.isfinite(n):
        note = "; ".join(x for x in (note, "sd 0 in the pilot" if n != n else "pilot effect 0 or beyond the limit") if x)
    return {**out, "effect": effect, "sd": sd, "seeds": math.ceil(n / per) if math.isfinite(n) else n, "note": note}


def powered(check: Check, untestable: dict[str, str]) -> bool:
    """A primary check that seeds can power: not a fact, not an isolated timing, not on a blind-level task."""
    info = metric_info(check.metric)
    return info.kind != "deterministic" and info.source != "isolated" and check.metric not in untestable
