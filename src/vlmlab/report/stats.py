"""Small statistics for the finding tables: Student t quantiles, mean ± 95% CI, and the number of paired
seeds that gives a check 80% power.

scipy is not a dependency, so the t quantiles (97.5%: the two-sided 95% critical value; 80%: for power)
come from tables (df 1..30 exact to 3 decimals, then 40/60/120 and the normal limit, interpolated linearly
in 1/df between entries). tests/report checks the tables against a numerical integration of the t density.
"""
from __future__ import annotations

import math

import numpy as np

# t_{0.975, df}: the half-width multiplier of a two-sided 95% interval
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
         10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101,
         19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052,
         28: 2.048, 29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}
# t_{0.80, df}: with the 97.5% quantile, the n of a paired t test at 80% power
_T80 = {1: 1.376, 2: 1.061, 3: 0.978, 4: 0.941, 5: 0.920, 6: 0.906, 7: 0.896, 8: 0.889, 9: 0.883, 10: 0.879,
        11: 0.876, 12: 0.873, 13: 0.870, 14: 0.868, 15: 0.866, 16: 0.865, 17: 0.863, 18: 0.862, 19: 0.861,
        20: 0.860, 21: 0.859, 22: 0.858, 23: 0.858, 24: 0.857, 25: 0.856, 26: 0.856, 27: 0.855, 28: 0.855,
        29: 0.854, 30: 0.854, 40: 0.851, 60: 0.848, 120: 0.845}
_TABLES = {0.975: (_T975, 1.960), 0.80: (_T80, 0.8416)}  # quantile: (table, normal limit)


def t_crit(df: int, q: float = 0.975) -> float:
    """The q quantile (0.975 or 0.80) of Student's t with `df` degrees of freedom (df >= 1)."""
    if df < 1:
        raise ValueError(f"t_crit needs df >= 1, got {df}")
    table, z = _TABLES[q]
    if df in table:
        return table[df]
    keys = sorted(table)
    lo = max(k for k in keys if k < df)
    hi = min((k for k in keys if k > df), default=None)
    t_hi, inv_hi = (z, 0.0) if hi is None else (table[hi], 1.0 / hi)
    w = (1.0 / lo - 1.0 / df) / (1.0 / lo - inv_hi)  # linear in 1/df, exact at the table entries
    return table[lo] + w * (t_hi - table[lo])


def mean_ci(values) -> tuple[float, float, int]:
    """(mean, half-width of the 95% t interval, n) of the finite values; half-width is nan when n < 2."""
    x = np.asarray([v for v in values if v is not None], dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(x[0]), math.nan, 1
    return float(x.mean()), float(t_crit(n - 1) * x.std(ddof=1) / math.sqrt(n)), n


def seeds_needed(std: float, distance: float, limit: int = 200) -> int | None:
    """Paired seeds for 80% power: the smallest n >= 2 with (t_{0.975, n-1} + t_{0.80, n-1}) * std / sqrt(n)
    <= distance, i.e. a 95% interval of the mean clears a bound `distance` away in 4 runs of 5, *if* the
    mean and the seed-to-seed std are what was estimated (a planning figure: the usual normal-approximation
    sample size of a paired t test, with t quantiles). None when no n <= limit does (or distance <= 0)."""
    if not (math.isfinite(std) and math.isfinite(distance)) or distance <= 0:
        return None
    for n in range(2, limit + 1):
        if (t_crit(n - 1) + t_crit(n - 1, 0.80)) * std / math.sqrt(n) <= distance:
            return n
    return None


def t_pdf(x, df: int):
    """Density of Student's t (used by the tests to check the table)."""
    x = np.asarray(x, dtype=float)
    c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return np.exp(c - (df + 1) / 2 * np.log1p(x * x / df))
