"""The grain-placement pre-study's section of results/script_study/STUDY.md (calibration/grain_placement.yaml;
script_study.py builds the file). Each tower is one grain_placement.py run's json: the glyph probe at the base and
split cells under each grain placement, and its run's own probe again.

A/A control: a tower whose "run" pair differs from its text_pages.py run's glyph pair is not the run's tower and is
left out of the checks. Primary, per placement: it keeps the contrast in a tower when the base reading is at most
the reference placement's + `keeps_within` and the split reading at least the reference's - `keeps_within`; kept
when every restored tower keeps it. Secondary, per placement and tower: the issue's pair check (script_checks)."""

from __future__ import annotations

import json
from pathlib import Path

from vlmlab.script_checks import pair_verdict


def restored(tower: dict, run: dict, cells: list[float]) -> bool:
    """The A/A control: the restored tower repeats its run's glyph pair exactly."""
    again = tower["glyph"]["run"]
    return (again["base"], again["split"]) == tuple(run["glyph % by cell px"][str(c)] for c in cells)


def keeps(pair: dict, ref: dict, within: float) -> list[str]:
    """The sides on which `pair` loses the reference's contrast (empty: it keeps it)."""
    lost = []
    if pair["base"] > ref["base"] + within:
        lost.append(f"base {pair['base'] - ref['base']:+.1f}")
    if pair["split"] < ref["split"] - within:
        lost.append(f"split {pair['split'] - ref['split']:+.1f}")
    return lost


def reading_lines(plan: dict, towers: dict, rows: list[str], ok: list[str]) -> list[str]:
    """The secondary check of each row (a placement or geometry): the issue's pair in each admitted tower."""
    chk, within = plan["reading"], plan["unresolved_within"]
    return [f"- secondary, {r} (<= {chk['base_at_most']} base, >= {chk['split_at_least']} split): "
            + ", ".join(f"{t} **{pair_verdict(towers[t]['glyph'][r]['base'], towers[t]['glyph'][r]['split'], chk, within)}**"
                        for t in ok) for r in rows]


def grain_section(plan: dict, results: Path) -> list[str]:
    towers = {t: json.loads((results / f).read_text()) for t, f in plan["towers"].items() if (results / f).exists()}
    if len(towers) < len(plan["towers"]):
        return [f"Not run (have {sorted(towers)} of {sorted(plan['towers'])}).", ""]
    runs = {t: json.loads((results / plan["runs"][t]).read_text()) for t in towers}
    names = list(towers)
    rows = ["run"] + [plan["reference"]] + plan["placements"]
    out = ["| glyph %, base / split | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    label = {"run": "run: the run's own probe (both cells on a 480-px canvas, view grain 8)",
             plan["reference"]: f"{plan['reference']}: view grain 8, the split cell on a 240-px crop"}
    out += [f"| {label.get(r, r + ': canvas grain, the split cell on a 240-px crop')} | " + " | ".join(f"{towers[t]['glyph'][r]['base']:.1f} / {towers[t]['glyph'][r]['split']:.1f}"
                                      for t in names) + " |" for r in rows]
    out += ["| restored from step | " + " | ".join(str(towers[t]["restored from step"]) for t in names) + " |",
            "| commit | " + " | ".join(f"`{towers[t]['git'][:7]}`" for t in names) + " |", ""]
    sd = towers[names[0]]["grain SD in the view"]
    out += ["Grain SD reaching the view (flat canvas): " + "; ".join(
        f"{c}: " + ", ".join(f"{k} -> {v}" for k, v in d.items()) for c, d in sd.items()), ""]
    ok = [t for t in names if restored(towers[t], runs[t], plan["run_cells"])]
    out.append(f"- A/A control (the restored tower repeats its run's glyph pair): "
               + ", ".join(f"{t} {'repeats' if t in ok else 'DIFFERS: left out'}" for t in names))
    if not ok:
        return out + ["- primary: **not run** (no tower restored)", ""]
    ref, within = plan["reference"], plan["keeps_within"]
    for p in plan["placements"]:
        lost = {t: keeps(towers[t]["glyph"][p], towers[t]["glyph"][ref], within) for t in ok}
        kind = "kept" if not any(lost.values()) else "lost"
        out.append(f"- primary, {p} against {ref} (within {within}): **{kind}**"
                   + "".join(f"; {t}: {', '.join(v)}" for t, v in lost.items() if v))
    out += reading_lines(plan, towers, [ref] + plan["placements"], ok)
    out.append("- reported: the crop geometry's effect on the split reading (reference - run): "
               + ", ".join(f"{t} {towers[t]['glyph'][ref]['split'] - towers[t]['glyph']['run']['split']:+.1f}"
                           for t in ok))
    return out + [""]
