"""The statistics behind the verdicts, from scipy and statsmodels: one test per kind of metric.

  quality (scores)   paired t test of d = better - worse over seeds (scipy.stats.ttest_1samp), with its 95%
                     t interval; for a non-inferiority check the test is against -margin. When every d is the
                     same (zero variance) no t exists: the exact sign test (scipy.stats.binomtest) decides, so
                     3 identical pairs give p = 0.25, not certainty.
  event (divergence) Fisher's exact test (scipy.stats.fisher_exact) of diverged / not diverged on each side.
  paired accuracy    two classifiers on the same test items (probes): McNemar's exact test (statsmodels), on the
                     items only one of them gets right (mcnemar_exact).
  deterministic      no test: a fact of the architecture, reported as holding or not.
Multiplicity: Holm's step-down adjustment (statsmodels multipletests) over a family of tested checks (the
report's primary checks; separately, its secondary ones); the verdict reads the adjusted p, the raw one is
shown beside it.
Variance shares (an ablation's `decompose:`): which grid axis explains more of a score. An ANOVA of the per-seed
scores on the axes, their interaction and the seed as a block (statsmodels OLS + anova_lm, type II sums of
squares); each axis's share is its sum of squares over the total less the seed's; 95% intervals come from a
cluster bootstrap over seeds (each draw resamples whole seeds, keeping the cells of a seed together).
Power: the paired seeds a t test needs for 80% power at alpha 0.05 if the mean and spread of d hold
(statsmodels TTestPower), labelled by the way the estimate points: to reproduce or to contradict.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as st
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

ALPHA = 0.05


def finite(values) -> np.ndarray:
    x = np.asarray([v for v in values if v is not None], dtype=float)
    return x[np.isfinite(x)]


def t_quantile(df: int, q: float = 0.975) -> float:
    """The q quantile of Student's t with df degrees of freedom (scipy)."""
    if df < 1:
        raise ValueError(f"t_quantile needs df >= 1, got {df}")
    return float(st.t.ppf(q, df))


def mean_ci(values) -> tuple[float, float, int]:
    """(mean, half-width of the 95% t interval, n) of the finite values; half-width is nan when n < 2."""
    x = finite(values)
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(x[0]), math.nan, 1
    return float(x.mean()), t_quantile(n - 1) * float(x.std(ddof=1)) / math.sqrt(n), n


def paired_p(diffs, bound: float = 0.0) -> tuple[float, str]:
    """Two-sided p of mean(d) = bound, and the test used: a one-sample t test on the paired differences, or,
    when they do not vary, the exact sign test of how many differences lie above the bound."""
    d = finite(diffs)
    if d.size < 2:
        return math.nan, "none"
    if np.ptp(d) == 0:
        above, below = int((d > bound).sum()), int((d < bound).sum())
        if above + below == 0:
            return 1.0, "sign test"
        return float(st.binomtest(above, above + below, 0.5).pvalue), "sign test"
    return float(st.ttest_1samp(d, bound).pvalue), "paired t"


def fisher_p(events_better: int, n_better: int, events_worse: int, n_worse: int) -> float:
    """Two-sided Fisher exact p of the 2 x 2 table (events, non-events) x (better side, worse side)."""
    if n_better == 0 or n_worse == 0:
        return math.nan
    table = [[events_better, n_better - events_better], [events_worse, n_worse - events_worse]]
    return float(st.fisher_exact(table).pvalue)


def mcnemar_exact(a: list, b: list) -> tuple[int, int, float]:
    """Two classifiers' correctness on the same test items (sequences of 0/1): (items only a gets right, items only
    b gets right, McNemar's exact p, statsmodels)."""
    from statsmodels.stats.contingency_tables import mcnemar

    if len(a) != len(b):
        raise ValueError(f"paired correctness of different lengths: {len(a)} and {len(b)}")
    only_a = sum(1 for x, y in zip(a, b) if x and not y)
    only_b = sum(1 for x, y in zip(a, b) if y and not x)
    both = sum(1 for x, y in zip(a, b) if x and y)
    neither = len(a) - both - only_a - only_b
    return only_a, only_b, float(mcnemar([[both, only_a], [only_b, neither]], exact=True).pvalue)


def holm(pvalues) -> list[float]:
    """Holm-adjusted p-values (nan stays nan and is not counted in the family)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], alpha=ALPHA, method="holm")[1]
    return out.tolist()


def seeds_for_power(std: float, distance: float, limit: int = 200, alpha: float = ALPHA) -> float:
    """Paired seeds for 80% power of a two-sided paired t test at `alpha` (0.05) against a bound `distance` away
    (effect size distance / std); nan when undefined (std 0 or nan), inf when beyond `limit` or distance 0."""
    if not (math.isfinite(std) and math.isfinite(distance)):
        return math.nan
    if distance <= 0:
        return math.inf
    if std <= 0:
        return math.nan
    for n in range(2, limit + 1):  # the first whole n with 80% power (solve_power returns nan for very large effects)
        if paired_t_power(distance / std, n, alpha) >= 0.8:
            return float(n)
    return math.inf


def paired_t_power(effect_size: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired (one-sample) t test with n pairs at a standardised effect. statsmodels'
    TTestPower first; where its noncentral t returns nan (large effects at small alpha: it did at n = 3, 5-8 for
    d = 4.9, alpha = 0.0033), scipy's noncentral t, then the normal approximation P(Z > t_crit - d sqrt(n)), which
    is what the noncentral t tends to when the effect is that large."""
    from scipy import stats

    p = TTestPower().power(effect_size=effect_size, nobs=n, alpha=alpha, alternative="two-sided")
    if p == p:
        return float(p)
    df, nc = n - 1, abs(effect_size) * math.sqrt(n)
    crit = float(stats.t.ppf(1 - alpha / 2, df))
    p = float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))
    return p if p == p else float(stats.norm.sf(crit - nc))


def looks_false_positive(ns: list[int], alpha: float = ALPHA, sims: int = 20000, seed: int = 0) -> float:
    """Chance that a check with no true effect comes out "reproduced" (the paired t test's p < alpha with the mean
    in the paper's direction) at one or more of several looks at the same seeds, after ns[0], ns[0] + ns[1], ...
    paired seeds; by simulation of normal seed differences (one look: alpha / 2)."""
    cum = [int(n) for n in np.cumsum(ns) if n >= 2]
    if not cum:
        return float("nan")
    d = np.random.default_rng(seed).standard_normal((sims, cum[-1]))
    hit = np.zeros(sims, dtype=bool)
    for n in cum:
        res = st.ttest_1samp(d[:, :n], 0.0, axis=1)
        hit |= (res.pvalue < alpha) & (res.statistic > 0)
    return float(hit.mean())


def variance_shares(df: pd.DataFrame, axes: list[str], metric: str, draws: int = 200, seed: int = 0) -> pd.DataFrame:
    """Share of `metric`'s variance explained by each axis (and their interaction, and the residual), with 95%
    cluster-bootstrap intervals over seeds. df: one row per (cell, seed) with the axes' values, `seed` and metric.
    Returns rows {term, share, lo, hi}, plus one row per pair of axes `a - b` (the difference of their shares)."""
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    data = df[[*axes, "seed", metric]].dropna().copy()
    names = {a: f"x{i}" for i, a in enumerate(axes)}
    data = data.rename(columns={**names, metric: "y"})
    for a in names.values():
        data[a] = data[a].astype(str)
    terms = [f"C({names[a]})" for a in axes]
    formula = "y ~ " + " + ".join(terms) + " + " + ":".join(terms) + " + C(block)"

    def shares(d) -> dict:
        table = anova_lm(smf.ols(formula, data=d).fit(), typ=2)
        ss = table["sum_sq"].drop("C(block)")
        total = float(ss.sum())
        out = {a: float(ss[f"C({names[a]})"]) / total if total > 0 else float("nan") for a in axes}
        out["interaction"] = float(ss[":".join(terms)]) / total if total > 0 else float("nan")
        out["residual (seeds)"] = float(ss["Residual"]) / total if total > 0 else float("nan")
        return out

    seeds = sorted(data["seed"].unique())
    point = shares(data.assign(block=data["seed"].astype(str)))
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(draws):
        pick = rng.choice(seeds, size=len(seeds), replace=True)
        d = pd.concat([data[data["seed"] == s].assign(block=str(k)) for k, s in enumerate(pick)], ignore_index=True)
        try:
            boots.append(shares(d))
        except (ValueError, np.linalg.LinAlgError):
            continue
    rows = []
    keys = [*axes, "interaction", "residual (seeds)"]
    pairs = [(a, b) for i, a in enumerate(axes) for b in axes[i + 1:]]
    for key in keys:
        vals = finite([b[key] for b in boots])
        lo, hi = (np.percentile(vals, [2.5, 97.5]) if len(vals) else (float("nan"),) * 2)
        rows.append({"term": key, "share": point[key], "lo": float(lo), "hi": float(hi)})
    for a, b in pairs:
        vals = finite([x[a] - x[b] for x in boots])
        lo, hi = (np.percentile(vals, [2.5, 97.5]) if len(vals) else (float("nan"),) * 2)
        rows.append({"term": f"{a} - {b}", "share": point[a] - point[b], "lo": float(lo), "hi": float(hi)})
    return pd.DataFrame(rows)
