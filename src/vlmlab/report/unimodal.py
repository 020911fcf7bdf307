"""A backbone upgrade in unimodal units (issue 16, item 3): F1's multimodal gain per unit of unimodal gain.

The paper's two upgrades were of very different size: the LM's a third of the way from chance to perfect on MMLU
(35.1 -> 60.1), the encoder's 5.2% of the way on ImageNet (78.0 -> 83.2). "The LM matters more" can therefore mean
a bigger upgrade rather than a more useful backbone. An ablation file names, per grid axis, the zoo run whose weak
and strong checkpoints its values are and the paper's multimodal gain for that upgrade:

    unimodal:
      llm: {manifest: lm, paper_gain: 5.1}
      vision: {manifest: vision, paper_gain: 3.2}

For each axis, the check that changes only that axis (e.g. strong vs weak LM at the weak encoder) gives the
multimodal gain with its 95% interval. The world's zoo manifest (zoo_manifest.json beside the calibration's
controls.csv) gives the unimodal gap (strong - weak on the chance-to-perfect scale) and the paper's gap on the same
scale. Then: gain per unit of unimodal gain, and the gain our ratio predicts at the paper's gap, beside the paper's
own gain.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from vlmlab.contract.run import parse_cell


def manifest_beside(controls_csv: str | Path | None) -> dict:
    """The zoo manifest committed with the world's calibration ({} when there is none)."""
    path = Path(controls_csv).parent / "zoo_manifest.json" if controls_csv else None
    return json.loads(path.read_text()) if path and path.exists() else {}


def axis_row(v: pd.DataFrame, axis: str) -> dict | None:
    """The avg check whose better and worse cells differ in `axis` alone (the first, if several)."""
    for r in v.to_dict("records") if not v.empty else []:
        if r.get("metric") != "avg" or ";" in str(r.get("better_cells")) or ";" in str(r.get("worse_cells")):
            continue
        b, w = parse_cell(str(r["better_cells"])), parse_cell(str(r["worse_cells"]))
        if set(b) == set(w) and {k for k in b if b[k] != w[k]} == {axis}:
            return r
    return None


def unimodal_table(spec: dict, v: pd.DataFrame, manifest: dict) -> pd.DataFrame:
    """One row per axis the file's `unimodal:` names; empty without a manifest or a matching check."""
    rows = []
    gaps = manifest.get("strong_minus_weak") or {}
    for axis, info in (spec.get("unimodal") or {}).items():
        r, gap = axis_row(v, axis), gaps.get(info["manifest"]) or {}
        ours, paper_gap = gap.get("unimodal", math.nan), gap.get("paper_unimodal_gap", math.nan)
        if r is None or not (ours and math.isfinite(ours)):
            continue
        d, lo, hi = float(r["diff_mean"]), float(r["diff_lo"]), float(r["diff_hi"])
        paper = float(info["paper_gain"])
        rows.append({"axis": axis, "upgrade": f"{r['worse_cells']} -> {r['better_cells']}", "n_pairs": r["n_pairs"],
                     "gain": d, "gain_lo": lo, "gain_hi": hi, "unimodal_gap": ours,
                     "per_unit": d / ours, "per_unit_lo": lo / ours, "per_unit_hi": hi / ours,
                     "paper_gap": paper_gap, "at_paper_gap": d / ours * paper_gap,
                     "at_paper_gap_lo": lo / ours * paper_gap, "at_paper_gap_hi": hi / ours * paper_gap,
                     "paper_gain": paper, "paper_per_unit": paper / paper_gap if paper_gap else math.nan})
    return pd.DataFrame(rows)


def blocks(table: pd.DataFrame, fmt) -> list:
    """The report's paragraph and table; [] when there is nothing to show."""
    if table.empty:
        return []

    def span(r, key):
        return f"{fmt(r[key])} [{fmt(r[key + '_lo'])}, {fmt(r[key + '_hi'])}]"
    rows = [[r["axis"], r["upgrade"], str(r["n_pairs"]), span(r, "gain"), fmt(r["unimodal_gap"]), span(r, "per_unit"),
             fmt(r["paper_gap"]), span(r, "at_paper_gap"), fmt(r["paper_gain"]), fmt(r["paper_per_unit"])]
            for r in table.to_dict("records")]
    text = ("Each upgrade's multimodal gain (avg points, the check that changes that backbone alone, 95% interval) per "
            "unit of its unimodal gain (strong - weak on the chance-to-perfect scale, the zoo manifest beside the "
            "world's calibration), and the gain that ratio predicts at the paper's unimodal gap, beside the paper's.")
    return [("h4", "The upgrades in unimodal units", None), ("p", text, None),
            ("table", ["axis", "upgrade", "pairs", "gain (avg)", "unimodal gap", "gain per unit", "paper's gap",
                       "ours at the paper's gap", "paper's gain", "paper per unit"], rows)]
