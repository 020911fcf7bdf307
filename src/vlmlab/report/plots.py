"""Per-ablation figures (matplotlib, Agg, no pyplot state): bars with 95% CIs, loss curves, trade-offs.

  bars.png      one panel per metric (avg, then each task; diverged share when a seed diverged):
                a horizontal bar per cell at the mean over finished seeds, the 95% CI as error bar;
                a cell with no finished seed is labelled with its seed statuses instead of a bar.
  loss.png      training loss (metrics.jsonl train/loss) per cell: mean over finished seeds, and
                each diverged seed as a thin dashed line.
  tradeoff.png  avg score against visual tokens per image and against training samples/s.
Every PNG is written atomically; a figure with nothing to draw is not written (None is returned).
"""
from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from vlmlab.report.aggregate import write_atomic  # noqa: E402

COLORS = matplotlib.colormaps["tab10"].colors


def label(cell: str) -> str:
    return cell.replace(",", "\n")


def _save(fig: Figure, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    write_atomic(path, buf.getvalue())
    return path


def _status_text(row) -> str:
    parts = [f"{int(row[f'n_{s}'])} {s}" for s in ("diverged", "failed", "missing") if row.get(f"n_{s}", 0)]
    return ", ".join(parts) or "no finished seed"


def bars(cells: pd.DataFrame, metrics: list[str], path: str | Path) -> Path | None:
    """A panel per metric with a CI bar per cell; None when no cell has a value for any metric."""
    metrics = [m for m in metrics if f"{m}_mean" in cells.columns]
    if cells.get("n_diverged", pd.Series(dtype=float)).sum() > 0:
        metrics.append("diverged_share")
    if cells.empty or not metrics or all(cells[_col(m)].isna().all() for m in metrics):
        return None
    n, ncols = len(cells), min(3, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    fig = Figure(figsize=(3.6 * ncols + 1.5, nrows * (0.45 * n + 1.2)))
    grid = fig.subplots(nrows, ncols, sharey=True, squeeze=False)
    axes = grid.ravel()
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    y = np.arange(n)
    for ax, m in zip(axes, metrics):
        mean = cells[_col(m)].to_numpy(dtype=float)
        ci = cells[f"{m}_ci95"].to_numpy(dtype=float) if f"{m}_ci95" in cells.columns else np.full(n, np.nan)
        colors = [COLORS[i % len(COLORS)] for i in range(n)]
        ax.barh(y, np.nan_to_num(mean), xerr=np.where(np.isfinite(ci), ci, 0.0), color=colors,
                capsize=3, error_kw={"elinewidth": 1})
        for i, row in enumerate(cells.to_dict("records")):
            if not math.isfinite(mean[i]):
                ax.text(0.02, i, _status_text(row), va="center", ha="left", fontsize=8, color="dimgray",
                        transform=ax.get_yaxis_transform())
        ax.set_title(m.replace("_", " "), fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    for row in grid:
        row[0].set_yticks(y, [label(c) for c in cells["cell"]], fontsize=8)
    axes[0].invert_yaxis()  # shared y: every panel lists the cells top to bottom in table order
    fig.tight_layout()
    return _save(fig, Path(path))


def _col(m: str) -> str:
    return m if m == "diverged_share" else f"{m}_mean"


def loss(curves: pd.DataFrame, cells: list[str], path: str | Path) -> Path | None:
    """Training loss per cell against step; None when no metrics.jsonl had a loss."""
    curves = curves[np.isfinite(curves["loss"].astype(float))] if not curves.empty else curves
    if curves.empty:
        return None
    fig = Figure(figsize=(7.5, 4.2))
    ax = fig.subplots()
    for i, cell in enumerate(cells):
        color = COLORS[i % len(COLORS)]
        c = curves[curves["cell"] == cell]
        fin = c[c["status"] == "finished"]
        if not fin.empty:
            m = fin.groupby("step")["loss"].mean()
            ax.plot(m.index, m.to_numpy(), color=color, label=f"{cell} (n={fin['seed'].nunique()})")
        for k, (seed, d) in enumerate(c[c["status"] == "diverged"].groupby("seed")):
            ax.plot(d["step"], d["loss"], color=color, ls="--", lw=0.8,
                    label=f"{cell} diverged seeds" if k == 0 else None)
    if (curves["loss"] > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("train loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _save(fig, Path(path))


def tradeoff(cells: pd.DataFrame, path: str | Path, metric: str = "avg") -> Path | None:
    """Score against visual tokens per image and against training samples/s (one point per cell)."""
    xs = [("visual_tokens_per_image", None, "visual tokens per image"),
          ("train_samples_per_s_mean", "train_samples_per_s_ci95", "training samples / s")]
    ycol, yci = f"{metric}_mean", f"{metric}_ci95"
    if cells.empty or ycol not in cells.columns or cells[ycol].isna().all():
        return None
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    for ax, (xcol, xci, xlabel) in zip(axes, xs):
        for i, row in enumerate(cells.to_dict("records")):
            x, yv = row.get(xcol, math.nan), row.get(ycol, math.nan)
            if not (isinstance(x, (int, float)) and math.isfinite(x) and math.isfinite(yv)):
                continue
            xe = row.get(xci) if xci else None
            ax.errorbar(x, yv, yerr=_fin(row.get(yci)), xerr=_fin(xe), fmt="o", capsize=3,
                        color=COLORS[i % len(COLORS)], label=row["cell"])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{metric} (mean, 95% CI)")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=min(3, len(labels)),
                   bbox_to_anchor=(0.5, -0.02 - 0.05 * math.ceil(len(labels) / 3)))
    return _save(fig, Path(path))


def _fin(x):
    return x if isinstance(x, (int, float)) and math.isfinite(x) else None


def plot_ablation(cells: pd.DataFrame, curves: pd.DataFrame, metrics: list[str], out: str | Path) -> list[tuple[str, Path]]:
    """All figures of one ablation: [(caption, path)] for those that had something to draw."""
    out = Path(out)
    order = ["avg"] + [m for m in metrics if m != "avg" and f"{m}_mean" in cells.columns
                       and m not in ("train_samples_per_s", "peak_memory_mb", "eval_latency_ms")]
    made = [("Scores per cell (mean over finished seeds, 95% CI)", bars(cells, order, out / "bars.png")),
            ("Training loss per cell", loss(curves, list(cells["cell"]) if not cells.empty else [], out / "loss.png")),
            ("Avg score against visual tokens per image and training throughput", tradeoff(cells, out / "tradeoff.png"))]
    for name in ("bars.png", "loss.png", "tradeoff.png"):
        if not any(p is not None and p.name == name for _, p in made):
            (out / name).unlink(missing_ok=True)  # a stale figure from an earlier report
    return [(caption, p) for caption, p in made if p is not None]


VERDICT_COLOURS = {"reproduced": "#2a9d4b", "contradicted": "#c0392b", "inconclusive": "#7f8c8d",
                   "untestable here": "#d4a017"}


def forest(v: pd.DataFrame, path: str | Path, order: list[str] | None = None) -> Path | None:
    """Every primary check's effect with its 95% interval, grouped by finding, coloured by verdict. The x axis
    is the difference in the paper's direction as a percentage of the worse side's mean, so checks in points,
    ms or shares share one axis: right of 0 is the way the paper says. Event checks (divergence shares) show
    percentage points. Checks without an interval (not run, not measured, facts) are listed, not drawn."""
    if v.empty or "primary" not in v.columns:
        return None
    p = v[v["primary"].astype(bool)].copy()
    if p.empty:
        return None
    findings = order or sorted(p["finding"].unique())
    p["finding"] = pd.Categorical(p["finding"], findings, ordered=True)
    p = p.sort_values(["finding", "ablation", "index"]).reset_index(drop=True)
    fig = Figure(figsize=(8.5, 0.42 * len(p) + 1.4))
    ax = fig.subplots()
    labels = []
    for i, r in enumerate(p.to_dict("records")):
        sign = 1 if r["direction"] == "higher" else -1
        event = r.get("test") == "Fisher exact"
        scale = 1.0 if event else abs(r["worse_mean"]) if _fin(r["worse_mean"]) else math.nan
        y = len(p) - 1 - i
        labels.append(f"{r['finding']}  {r['metric']}: {r['check']}"[:70])
        colour = VERDICT_COLOURS.get(r["verdict"], "#bbbbbb")
        if _fin(r["diff_mean"]) is not None and _fin(scale) is not None:
            mid = 100 * sign * r["diff_mean"] / scale
            half = 100 * r["diff_ci95"] / scale if _fin(r["diff_ci95"]) is not None else 0.0
            ax.errorbar(mid, y, xerr=half, fmt="o", color=colour, capsize=3, markersize=6)
            ax.annotate(r["verdict"], (mid, y), textcoords="offset points", xytext=(6, 5), fontsize=7, color=colour)
        else:
            ax.annotate(f"({r['verdict']})", (0, y), textcoords="offset points", xytext=(6, -3), fontsize=7,
                        color="#888888")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(p)))
    ax.set_yticklabels(labels[::-1], fontsize=7)
    ax.set_xlabel("effect in the paper's direction, % of the worse side (95% CI); right = as the paper says")
    ax.set_title("Primary checks: every finding at a glance", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(fig, Path(path))
