"""Small statistics for the finding tables: the Student t 97.5% quantile, mean ± 95% CI, and the number of
seeds a paired interval would need to clear a bound.

scipy is not a dependency, so the two-sided 95% critical values come from a table (df 1..30 exact to
3 decimals, then 40/60/120 and the normal limit, interpolated linearly in 1/df between entries).
tests/report checks the table against a numerical integration of the t density.
"""
from __future__ import annotations

import math

import numpy as np

# t_{0.975, df}: the half-width multiplier of a two-sided 95% interval
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
         10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101,
         19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052,
         28: 2.048, 29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}
_Z975 = 1.960


def t_crit(df: int) -> float:
    """The 97.5% quantile of Student's t with `df` degrees of freedom (df >= 1)."""
    if df < 1:
        raise ValueError(f"t_crit needs df >= 1, got {df}")
    if df in _T975:
        return _T975[df]
    keys = sorted(_T975)
    lo = max(k for k in keys if k < df)
    hi = min((k for k in keys if k > df), default=None)
    t_hi, inv_hi = (_Z975, 0.0) if hi is None else (_T975[hi], 1.0 / hi)
    w = (1.0 / lo - 1.0 / df) / (1.0 / lo - inv_hi)  # linear in 1/df, exact at the table entries
    return _T975[lo] + w * (t_hi - _T975[lo])


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
    """The smallest n >= 2 with t_{0.975, n-1} * std / sqrt(n) < distance: how many paired seeds a 95% interval
    of the mean needs to lie wholly on one side of a bound `distance` away from the mean, *if* the mean and
    the seed-to-seed std stay as estimated (a planning figure). None when no n <= limit does (or distance <= 0)."""
    if not (math.isfinite(std) and math.isfinite(distance)) or distance <= 0:
        return None
    for n in range(2, limit + 1):
        if t_crit(n - 1) * std / math.sqrt(n) < distance:
            return n
    return None


def t_pdf(x, df: int):
    """Density of Student's t (used by the tests to check the table)."""
    x = np.asarray(x, dtype=float)
    c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return np.exp(c - (df + 1) / 2 * np.log1p(x * x / df))
