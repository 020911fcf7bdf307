"""The calibration's learning curve (calibrate.py): the baseline recipe at 150 / 300 / 600 / 1200 steps
(calibration/curve.yaml), its table, the criterion that the recipe is past the steep part within its step budget
(the last doubling adds at most CURVE_SHARE of what 150 -> 600 added, with a 95% interval: budgets as independent
samples, or paired by seed, since a seed trains with the same initialisation and data order at every budget), the
per-task gains of the last doubling paired by seed, and its plot."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

CURVE_SHARE = 0.25       # 600 -> 1200 steps adds <= a quarter of 150 -> 600's gain (avg)


def curve_table(fin: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """The learning curve from its finished runs: per step budget the seed mean of each column, the number of seeds
    and avg's seed SD (NaN with one seed)."""
    by = fin.assign(steps=fin["max_steps"].astype(int)).groupby("steps")  # the budget from each run's config
    return by[cols].mean().assign(seeds=by.size(), avg_sd=by["avg"].std()).reset_index()


def curve_check(curve: pd.DataFrame) -> tuple[float, float, float, float] | None:
    """The curve criterion on seed means: (late, early, lo, hi) with late = avg(1200) - avg(600), early = avg(600) -
    avg(150) and [lo, hi] the normal-approximation 95% interval of late - CURVE_SHARE x early from the budgets'
    seed SDs (NaN without seeds at every budget); None if a budget is missing."""
    from scipy.stats import norm

    rows = curve.set_index("steps") if not curve.empty else curve
    if any(s not in rows.index for s in (150, 600, 1200)):
        return None
    m = rows["avg"]
    early, late = m[600] - m[150], m[1200] - m[600]
    # late - share x early = avg(1200) - (1 + share) avg(600) + share avg(150): independent seeds per budget
    var = sum(w ** 2 * rows.at[s, "avg_sd"] ** 2 / rows.at[s, "seeds"]
              for s, w in ((1200, 1.0), (600, 1 + CURVE_SHARE), (150, CURVE_SHARE))) if "avg_sd" in rows else float("nan")
    half = norm.ppf(0.975) * var ** 0.5
    centre = late - CURVE_SHARE * early
    return late, early, centre - half, centre + half


def _per_seed(fin: pd.DataFrame, col: str) -> pd.DataFrame:
    """One row per seed that finished at 150, 600 and 1200 steps, one column per budget: `col`'s score."""
    wide = fin.assign(steps=fin["max_steps"].astype(int)).pivot_table(index="seed", columns="steps", values=col)
    return wide.reindex(columns=[150, 600, 1200]).dropna()


def _t_interval(d: pd.Series) -> tuple[float, float, float]:
    """Mean of d and its 95% t interval over seeds (NaN bounds with fewer than two)."""
    from scipy.stats import t

    n, mean = len(d), float(d.mean())
    if n < 2:
        return mean, float("nan"), float("nan")
    half = float(t.ppf(0.975, n - 1) * d.std(ddof=1) / n ** 0.5)
    return mean, mean - half, mean + half


def curve_check_paired(fin: pd.DataFrame) -> tuple[float, float, float, float, int] | None:
    """The curve criterion paired by seed: per seed d = late - CURVE_SHARE x early on avg (late = 1200 - 600 steps,
    early = 600 - 150); (mean late, mean early, lo, hi, seeds) with [lo, hi] the 95% t interval of d's mean over the
    seeds finished at all three budgets; None without such a seed."""
    wide = _per_seed(fin, "avg") if "avg" in fin and "max_steps" in fin else pd.DataFrame()
    if wide.empty:
        return None
    late, early = wide[1200] - wide[600], wide[600] - wide[150]
    _, lo, hi = _t_interval(late - CURVE_SHARE * early)
    return float(late.mean()), float(early.mean()), lo, hi, len(wide)


def late_gains(fin: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """The last doubling's gain (1200 - 600 steps) per column, paired by seed: mean, 95% t interval, seeds."""
    rows = []
    for col in cols:
        wide = _per_seed(fin, col)
        if not wide.empty:
            mean, lo, hi = _t_interval(wide[1200] - wide[600])
            rows.append({"metric": col, "gain": mean, "lo": lo, "hi": hi, "seeds": len(wide)})
    return pd.DataFrame(rows)


def plot_curve(curve: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for col in [c for c in curve.columns if c not in ("steps", "final_train_loss", "seeds", "avg_sd")]:
        ax.plot(curve["steps"], curve[col], marker="o", label=col, linewidth=2.5 if col == "avg" else 1)
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(curve["steps"]), [str(s) for s in curve["steps"]])  # the budgets, not powers of 2
    ax.minorticks_off()
    ax.set_xlabel("training steps (log scale)")
    ax.set_ylabel("validation score")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
