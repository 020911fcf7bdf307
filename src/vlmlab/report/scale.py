"""Scale transfer (Apollo, arXiv 2412.10360; SmolVLM, arXiv 2504.05299: small-scale conclusions can flip with
scale): the same ablation files run at two world scales, compared check by check and cell by cell.

    python -m vlmlab.report.scale --base results --large results/large --out results/scale

Inputs are two report folders as `python -m vlmlab.report` writes them (<ablation>/verdicts.csv, cells.csv and
seeds.csv); only ablations reported at both scales are compared. Outputs: <out>/checks.csv, <out>/ranks.csv and
<out>/SCALE.md.
  checks  every check of those files (primary ones first): its effect (better - worse) with the 95% interval at each
          scale, each scale's verdict, and how the check transfers:
            holds      decided the same way at both scales (both reproduced, both contradicted, or a fact that holds,
                       or fails, at both)
            flips      decided at both scales, opposite ways
            appears    decided at the large scale only; vanishes: at the base scale only
            undecided  decided at neither
          The sign of the two mean effects is compared too, and, for checks the report tests with a paired t test,
          the change of the effect between scales with its 95% interval (Welch: the scales' seeds are independent
          runs; each side's standard error is its interval's half-width over its t quantile).
  ranks   per ablation, the rank agreement of its cells' means across scales: Kendall's tau (scipy) on the metric
          of the file's first primary check (avg when that is not a per-run score), with a 95% percentile interval
          from a bootstrap that resamples each cell's seeds at each scale.
Every number comes from the two report folders; nothing is trained here.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as st

from vlmlab.report.stats import t_quantile
from vlmlab.report.verdicts import DECIDED  # a fact (FLOPs, parameters) is decided too
from vlmlab.tracking import write_atomic

CHECK_COLUMNS = ["ablation", "finding", "index", "check", "metric", "primary", "base_diff", "base_lo", "base_hi",
                 "base_n", "base_verdict", "large_diff", "large_lo", "large_hi", "large_n", "large_verdict",
                 "same_sign", "change", "change_lo", "change_hi", "transfer"]
RANK_COLUMNS = ["ablation", "metric", "cells", "kendall_tau", "tau_lo", "tau_hi", "p"]


def transfer(base_verdict: str, large_verdict: str) -> str:
    """How a check's decision carries from the base scale to the large one (see the module docstring)."""
    b, la = base_verdict in DECIDED, large_verdict in DECIDED
    if b and la:
        return "holds" if base_verdict == large_verdict else "flips"
    return "appears" if la else "vanishes" if b else "undecided"


def _se(row: pd.Series, side: str) -> float:
    """A paired-t effect's standard error from its 95% interval: half-width / t(0.975, n - 1)."""
    n, lo, hi = row[f"{side}_n"], row[f"{side}_lo"], row[f"{side}_hi"]
    if not (n >= 2 and math.isfinite(lo) and math.isfinite(hi)):
        return math.nan
    return (hi - lo) / 2 / t_quantile(int(n) - 1)


def change_interval(row: pd.Series) -> tuple[float, float, float]:
    """(large - base effect, 95% low, high): Welch's interval with Satterthwaite's degrees of freedom."""
    change = row["large_diff"] - row["base_diff"]
    sb, sl = _se(row, "base"), _se(row, "large")
    if not (math.isfinite(sb) and math.isfinite(sl)) or sb + sl == 0:
        return change, math.nan, math.nan
    se = math.hypot(sb, sl)
    df = se ** 4 / (sb ** 4 / (row["base_n"] - 1) + sl ** 4 / (row["large_n"] - 1))
    q = float(st.t.ppf(0.975, df))
    return change, change - q * se, change + q * se


def compare_checks(base: pd.DataFrame, large: pd.DataFrame) -> pd.DataFrame:
    """verdicts.csv rows of one ablation at both scales -> CHECK_COLUMNS rows, matched by check index."""
    keep = ["index", "ablation", "finding", "check", "metric", "primary", "test", "diff_mean", "diff_lo", "diff_hi",
            "n_pairs", "verdict"]
    side = {"diff_mean": "diff", "diff_lo": "lo", "diff_hi": "hi", "n_pairs": "n", "verdict": "verdict"}
    b = base[keep].rename(columns={k: f"base_{v}" for k, v in side.items()})
    la = large[keep].rename(columns={k: f"large_{v}" for k, v in side.items()})
    rows = b.merge(la.drop(columns=["ablation", "finding", "metric", "primary"]), on="index", suffixes=("", "_large"))
    rows = rows[rows["check"] == rows["check_large"]]  # the same file at both scales: the same check at each index
    out = []
    for _, r in rows.iterrows():
        paired = r["test"] == "paired t" and r["test_large"] == "paired t"
        change, lo, hi = change_interval(r) if paired else (r["large_diff"] - r["base_diff"], math.nan, math.nan)
        signs = np.sign([r["base_diff"], r["large_diff"]])
        out.append({**{c: r[c] for c in CHECK_COLUMNS if c in r.index},
                    "same_sign": bool(signs[0] == signs[1]) if all(map(math.isfinite, signs)) else None,
                    "change": change, "change_lo": lo, "change_hi": hi,
                    "transfer": transfer(str(r["base_verdict"]), str(r["large_verdict"]))})
    return pd.DataFrame(out, columns=CHECK_COLUMNS)


def rank_metric(verdicts: pd.DataFrame, seeds: pd.DataFrame) -> str:
    """The first primary check's metric when it is a per-run score in seeds.csv, else avg."""
    primary = verdicts[verdicts["primary"].astype(bool)] if "primary" in verdicts else verdicts
    for metric in list(primary["metric"]) + ["avg"]:
        if metric in seeds.columns and pd.to_numeric(seeds[metric], errors="coerce").notna().any():
            return metric
    return "avg"


def rank_agreement(base: pd.DataFrame, large: pd.DataFrame, metric: str, draws: int = 2000,
                   seed: int = 0) -> dict:
    """Kendall's tau between the cells' mean `metric` at the two scales (seeds.csv rows of finished runs), with a
    bootstrap interval (each cell's seeds resampled with replacement at each scale, independently)."""
    def per_cell(seeds: pd.DataFrame) -> dict[str, np.ndarray]:
        ok = seeds[seeds["status"] == "finished"]
        return {c: pd.to_numeric(g[metric], errors="coerce").dropna().to_numpy() for c, g in ok.groupby("cell")}

    b, la = per_cell(base), per_cell(large)
    cells = sorted(c for c in set(b) & set(la) if len(b[c]) and len(la[c]))
    row = {"metric": metric, "cells": len(cells), "kendall_tau": math.nan, "tau_lo": math.nan, "tau_hi": math.nan,
           "p": math.nan}
    if len(cells) < 3:  # tau of two cells is +-1 whatever the data
        return row
    tau = st.kendalltau([b[c].mean() for c in cells], [la[c].mean() for c in cells])
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(draws):
        x = [rng.choice(b[c], len(b[c])).mean() for c in cells]
        y = [rng.choice(la[c], len(la[c])).mean() for c in cells]
        t = st.kendalltau(x, y).statistic
        if math.isfinite(t):
            boot.append(t)
    lo, hi = np.percentile(boot, [2.5, 97.5]) if boot else (math.nan, math.nan)
    return {**row, "kendall_tau": float(tau.statistic), "tau_lo": float(lo), "tau_hi": float(hi),
            "p": float(tau.pvalue)}


def _num(x, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:+.{digits}f}"


def _interval(lo, hi) -> str:
    return "–" if not (math.isfinite(lo) and math.isfinite(hi)) else f"[{lo:+.2f}, {hi:+.2f}]"


def build(base: str | Path, large: str | Path, out: str | Path) -> dict:
    """Compare every ablation reported in both folders; write checks.csv, ranks.csv and SCALE.md under out."""
    base, large, out = Path(base), Path(large), Path(out)
    names = sorted(p.parent.name for p in base.glob("*/verdicts.csv") if (large / p.parent.name / "verdicts.csv").exists())
    checks, ranks = [], []
    for name in names:
        vb, vl = (pd.read_csv(root / name / "verdicts.csv") for root in (base, large))
        checks.append(compare_checks(vb, vl))
        sb, sl = (pd.read_csv(root / name / "seeds.csv") for root in (base, large))
        ranks.append({"ablation": name, **rank_agreement(sb, sl, rank_metric(vb, sb))})
    checks = pd.concat(checks, ignore_index=True) if checks else pd.DataFrame(columns=CHECK_COLUMNS)
    checks = checks.sort_values(["ablation", "primary", "index"], ascending=[True, False, True], kind="stable")
    ranks = pd.DataFrame(ranks, columns=RANK_COLUMNS)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "checks.csv", checks.to_csv(index=False))
    write_atomic(out / "ranks.csv", ranks.to_csv(index=False))
    write_atomic(out / "SCALE.md", markdown(checks, ranks, base, large, pooled_looks(base, large, names)))
    return {"checks": checks, "ranks": ranks, "ablations": names}


def pooled_looks(base: Path, large: Path, names: list[str]) -> list[str]:
    """One line per ablation and scale whose seeds pool several looks (a pre-registered follow-up file's runs merged
    with the first file's: seeds.csv's look_file), naming the files and their seeds."""
    lines = []
    for name in names:
        for label, root in (("base", base), ("large", large)):
            seeds = pd.read_csv(root / name / "seeds.csv")
            if "look_file" not in seeds or seeds["look_file"].nunique() < 2:
                continue
            ran = seeds[seeds["status"].isin(["finished", "diverged"])]
            files = [f"{f} (seeds {', '.join(str(s) for s in sorted(g['seed'].unique()))})"
                     for f, g in ran.groupby("look_file", sort=False)]
            lines.append(f"- {name} at the {label} scale: {len(files)} looks, {'; '.join(files)}")
    return lines


def markdown(checks: pd.DataFrame, ranks: pd.DataFrame, base: Path, large: Path, looks: list[str] | None = None) -> str:
    lines = ["# Scale transfer", "",
             f"Generated by `python -m vlmlab.report.scale` from the reports in {base}/ (base scale) and {large}/ "
             "(large scale). Effects are better - worse in the check's metric, mean over paired seeds with its 95% "
             "interval; the change is large - base with Welch's 95% interval (paired-t checks only). A check holds "
             "when it is decided the same way at both scales, flips when decided opposite ways, appears or vanishes "
             "when decided at one scale only.", ""]
    if checks.empty:
        return "\n".join(lines + ["No ablation is reported at both scales yet.", ""])
    lines += ["## Checks", "",
              "| ablation | check | metric | primary | base effect [95%] | large effect [95%] | base verdict | "
              "large verdict | same sign | change [95%] | transfer |", "|" + "---|" * 11]
    for r in checks.to_dict("records"):
        lines.append(" | ".join([
            f"| {r['ablation']}", r["check"], r["metric"], "yes" if r["primary"] else "",
            f"{_num(r['base_diff'])} {_interval(r['base_lo'], r['base_hi'])} (n={r['base_n']:.0f})",
            f"{_num(r['large_diff'])} {_interval(r['large_lo'], r['large_hi'])} (n={r['large_n']:.0f})",
            str(r["base_verdict"]), str(r["large_verdict"]),
            {True: "yes", False: "no"}.get(r["same_sign"], "–"),
            f"{_num(r['change'])} {_interval(r['change_lo'], r['change_hi'])}", f"**{r['transfer']}** |"]))
    if looks:
        lines += ["", "Checks decided over more than one look (each look pre-registered before its runs; the scale's "
                  "REPORT.md gives the false-positive rate repeated looks carry):", "", *looks]
    lines += ["", "## Rank agreement of the cells across scales", "",
              "| ablation | metric | cells | Kendall's tau [95% bootstrap] | p |", "|---|---|---|---|---|"]
    for r in ranks.to_dict("records"):
        tau = "–" if not math.isfinite(r["kendall_tau"]) else \
            f"{r['kendall_tau']:+.2f} {_interval(r['tau_lo'], r['tau_hi'])}"
        p = "–" if not math.isfinite(r["p"]) else f"{r['p']:.3f}"
        lines.append(f"| {r['ablation']} | {r['metric']} | {r['cells']} | {tau} | {p} |")
    return "\n".join(lines + [""])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m vlmlab.report.scale", description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="results", help="the base scale's report folder")
    ap.add_argument("--large", default="results/large", help="the large scale's report folder")
    ap.add_argument("--out", default="results/scale", help="where checks.csv, ranks.csv and SCALE.md go")
    args = ap.parse_args(argv)
    res = build(args.base, args.large, args.out)
    print(f"[vlmlab.report.scale] {len(res['ablations'])} ablations at both scales; wrote {args.out}/SCALE.md")


if __name__ == "__main__":
    main()
