"""The calibration's learning curve (calibrate.py): the baseline recipe at 150 / 300 / 600 / 1200 steps
(calibration/curve.yaml), its table, the criterion that the recipe is past the steep part within its step budget
(the last doubling adds at most CURVE_SHARE of what 150 -> 600 added, with a 95% interval), and its plot."""
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


def plot_curve(curve: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for col in [c for c in curve.columns if c not in ("steps", "final_train_loss", "seeds", "avg_sd")]:
        ax.plot(curve["steps"], curve[col], marker="o", label=col, linewidth=2.5 if col == "avg" else 1)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("training steps (log scale)")
    ax.set_ylabel("validation score")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
