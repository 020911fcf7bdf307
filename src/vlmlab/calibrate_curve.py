"""The calibration's learning curve (calibrate.py): the baseline recipe at 150 / 300 / 600 / 1200 steps
(calibration/curve.yaml), its table, the criterion that the recipe is past the steep part within its step budget B
(the doubling past it, B -> 2B, adds at most CURVE_SHARE of what the quadrupling up to it, B/4 -> B, added, with a
95% interval: budgets as independent samples, or paired by seed, since a seed trains with the same initialisation
and data order at every budget), the per-task gains of that doubling paired by seed, and its plot. B is the recipe's
optim.max_steps as its controls ran (RECIPE_STEPS, 600, where none ran)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

CURVE_SHARE = 0.25       # B -> 2B steps adds <= a quarter of B/4 -> B's gain (avg)
RECIPE_STEPS = 600       # conf/optim/adamw.yaml's max_steps: the budget B when no controls say otherwise


def budgets(budget: int = RECIPE_STEPS) -> tuple[int, int, int]:
    """The three step budgets the criterion compares: B/4, B and 2B."""
    return budget // 4, budget, 2 * budget


def curve_table(fin: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """The learning curve from its finished runs: per step budget the seed mean of each column, the number of seeds
    and avg's seed SD (NaN with one seed)."""
    by = fin.assign(steps=fin["max_steps"].astype(int)).groupby("steps")  # the budget from each run's config
    return by[cols].mean().assign(seeds=by.size(), avg_sd=by["avg"].std()).reset_index()


def curve_check(curve: pd.DataFrame, budget: int = RECIPE_STEPS) -> tuple[float, float, float, float] | None:
    """The curve criterion on seed means at the recipe's budget B: (late, early, lo, hi) with late = avg(2B) - avg(B),
    early = avg(B) - avg(B/4) and [lo, hi] the normal-approximation 95% interval of late - CURVE_SHARE x early from
    the budgets' seed SDs (NaN without seeds at every budget); None if a budget is missing."""
    from scipy.stats import norm

    quarter, at, double = budgets(budget)
    rows = curve.set_index("steps") if not curve.empty else curve
    if any(s not in rows.index for s in (quarter, at, double)):
        return None
    m = rows["avg"]
    early, late = m[at] - m[quarter], m[double] - m[at]
    # late - share x early = avg(2B) - (1 + share) avg(B) + share avg(B/4): independent seeds per budget
    var = sum(w ** 2 * rows.at[s, "avg_sd"] ** 2 / rows.at[s, "seeds"]
              for s, w in ((double, 1.0), (at, 1 + CURVE_SHARE), (quarter, CURVE_SHARE))) if "avg_sd" in rows else float("nan")
    half = norm.ppf(0.975) * var ** 0.5
    centre = late - CURVE_SHARE * early
    return late, early, centre - half, centre + half


def _per_seed(fin: pd.DataFrame, col: str, budget: int) -> pd.DataFrame:
    """One row per seed that finished at B/4, B and 2B steps, one column per budget: `col`'s score."""
    wide = fin.assign(steps=fin["max_steps"].astype(int)).pivot_table(index="seed", columns="steps", values=col)
    return wide.reindex(columns=list(budgets(budget))).dropna()


def _t_interval(d: pd.Series) -> tuple[float, float, float]:
    """Mean of d and its 95% t interval over seeds (NaN bounds with fewer than two)."""
    from scipy.stats import t

    n, mean = len(d), float(d.mean())
    if n < 2:
        return mean, float("nan"), float("nan")
    half = float(t.ppf(0.975, n - 1) * d.std(ddof=1) / n ** 0.5)
    return mean, mean - half, mean + half


def curve_check_paired(fin: pd.DataFrame, budget: int = RECIPE_STEPS) -> tuple[float, float, float, float, int] | None:
    """The curve criterion paired by seed: per seed d = late - CURVE_SHARE x early on avg (late = 2B - B steps,
    early = B - B/4); (mean late, mean early, lo, hi, seeds) with [lo, hi] the 95% t interval of d's mean over the
    seeds finished at all three budgets; None without such a seed."""
    quarter, at, double = budgets(budget)
    wide = _per_seed(fin, "avg", budget) if "avg" in fin and "max_steps" in fin else pd.DataFrame()
    if wide.empty:
        return None
    late, early = wide[double] - wide[at], wide[at] - wide[quarter]
    _, lo, hi = _t_interval(late - CURVE_SHARE * early)
    return float(late.mean()), float(early.mean()), lo, hi, len(wide)


def late_gains(fin: pd.DataFrame, cols: list[str], budget: int = RECIPE_STEPS) -> pd.DataFrame:
    """The doubling past the budget's gain (2B - B steps) per column, paired by seed: mean, 95% t interval, seeds."""
    _, at, double = budgets(budget)
    rows = []
    for col in cols:
        wide = _per_seed(fin, col, budget)
        if not wide.empty:
            mean, lo, hi = _t_interval(wide[double] - wide[at])
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
