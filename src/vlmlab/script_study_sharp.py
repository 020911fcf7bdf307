"""The split-sharpness pre-study's section of results/script_study/STUDY.md (calibration/split_sharpness.yaml;
script_study.py builds the file). Each tower is one split_sharpness.py run's json: the glyph probe at the base and
split cells in each geometry of the world, its run's own probe again, and each geometry's cost per sample.

A tower whose text_pages.py run is absent (a run that never finished) is not run; one whose run is present but whose
json is not yet written leaves the study pending. A/A control: a tower whose "run" pair differs from its run's glyph
pair is left out of the checks (script_study_grain.restored). Primary, per geometry: sharp in a tower when its split
reading is at least the run's split - `sharp_within` and its base reading at most the run's base + `sharp_within`;
sharp when every admitted tower is. Secondary: the issue's pair per geometry and tower (script_checks). The plan's
decision, computed: the sharp geometry with the least render + views ms per sample (mean over the towers' runs)."""

from __future__ import annotations

import json
from pathlib import Path

from vlmlab.script_study_grain import reading_lines, restored


def blurred(pair: dict, run: dict, within: float) -> list[str]:
    """The sides on which a geometry's pair falls short of the run's (empty: sharp)."""
    lost = []
    if pair["split"] < run["split"] - within:
        lost.append(f"split {pair['split'] - run['split']:+.1f}")
    if pair["base"] > run["base"] + within:
        lost.append(f"base {pair['base'] - run['base']:+.1f}")
    return lost


def mean_cost(towers: dict, geometry: str) -> dict:
    rows = [t["cost"][geometry] for t in towers.values()]
    return {k: sum(r[k] for r in rows) / len(rows) for k in ("render ms", "views ms", "png KB")}


def sharp_section(plan: dict, results: Path) -> list[str]:
    runs = {t: json.loads((results / f).read_text()) for t, f in plan["runs"].items() if (results / f).exists()}
    missing = [t for t in plan["towers"] if t not in runs]
    towers = {t: json.loads((results / plan["towers"][t]).read_text()) for t in runs
              if (results / plan["towers"][t]).exists()}
    if not runs or len(towers) < len(runs):
        return [f"Not run yet (have {sorted(towers)} of {sorted(runs)}; no run for {missing})."
                if runs else "Not run (no tower's run exists).", ""]
    names, ref, within = list(towers), plan["reference"], plan["sharp_within"]
    rows = ["run", ref] + plan["geometries"]
    out = ["| glyph %, base / split | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    out += [f"| {r} | " + " | ".join(f"{towers[t]['glyph'][r]['base']:.1f} / {towers[t]['glyph'][r]['split']:.1f}"
                                      for t in names) + " |" for r in rows]
    out += ["| tower | " + " | ".join(towers[t]["tower"] for t in names) + " |",
            "| commit | " + " | ".join(f"`{towers[t]['git'][:7]}`" for t in names) + " |", ""]
    out += ["| cost per sample (mean over the towers' runs) | render ms | views ms | PNG KB | canvas |",
            "|---|---|---|---|---|"]
    for g in [ref] + plan["geometries"]:
        c = mean_cost(towers, g)
        side = towers[names[0]]["cost"][g]["canvas"]
        out.append(f"| {g} | {c['render ms']:.1f} | {c['views ms']:.1f} | {c['png KB']:.1f} | {side[0]} x {side[1]} |")
    out.append("")
    if missing:
        out.append(f"- not run (their text_pages.py runs never finished): {', '.join(missing)}")
    ok = [t for t in names if restored(towers[t], runs[t], plan["run_cells"])]
    out.append("- A/A control (the tower repeats its run's glyph pair): "
               + ", ".join(f"{t} {'repeats' if t in ok else 'DIFFERS: left out'}" for t in names))
    if not ok:
        return out + ["- primary: **not run** (no tower admitted)", ""]
    sharp = []
    for g in [ref] + plan["geometries"]:
        lost = {t: blurred(towers[t]["glyph"][g], towers[t]["glyph"]["run"], within) for t in ok}
        kind = "sharp" if not any(lost.values()) else "blurred"
        if kind == "sharp" and g != ref:
            sharp.append(g)
        out.append(f"- {'reported' if g == ref else 'primary'}, {g} against the run (within {within}): **{kind}**"
                   + "".join(f"; {t}: {', '.join(v)}" for t, v in lost.items() if v))
    out += reading_lines(plan, towers, [ref] + plan["geometries"], ok)
    if sharp:
        cheapest = min(sharp, key=lambda g: (lambda c: c["render ms"] + c["views ms"])(mean_cost(towers, g)))
        out.append(f"- decision (the cheapest sharp geometry, render + views ms): **{cheapest}**")
    else:
        out.append(f"- decision: **no geometry sharp**: world v3 keeps {ref}, its split reading at the crop's level")
    return out + [""]
