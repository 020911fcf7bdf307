"""The world v3 script pre-studies' verdicts (calibration/script_study*.yaml), computed from their runs' logs.

Each plan names its scripts (and grain levels, if any), the cell sizes measured, the (base, split) pairs of cell
sizes, and a primary and a secondary check: a measure (letter or word: the per-patch heads' accuracy; glyph: the glyph probe), read at the
plan's last step, must be at most `base_at_most` at the base cell and at least `split_at_least` at twice it. A value
within `unresolved_within` points of its threshold leaves that pair unresolved at one seed. A check is met where any
pair is met, unresolved where none is met and one is unresolved, else missed.

A seeds plan (`seed_runs`) replicates one pair in fresh seeds: met when every fresh seed meets both thresholds,
missed when the fresh seeds' mean is past either by more than `unresolved_within`, else unresolved; the seeds'
mean, SD and 95% t interval are shown beside it. The zoo plans (a tower of the zoo's recipe trained with text
pages) are read by script_study_zoo.py, the grain-placement plan by script_study_grain.py, the split-sharpness plan
by script_study_sharp.py; the checks themselves are in script_checks.py.

    python -m vlmlab.script_study            # every plan under calibration/ -> results/script_study/STUDY.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vlmlab.paths import repo_root
from vlmlab.script_checks import pair_verdict, replication, t_interval
from vlmlab.script_study_grain import grain_section
from vlmlab.script_study_sharp import sharp_section
from vlmlab.script_study_zoo import budget_section, zoo_section, zoo_seeds_section

PLANS = ("calibration/script_study.yaml", "calibration/script_study_small.yaml", "calibration/script_study_noise.yaml",
         "calibration/script_study_seeds.yaml", "calibration/script_study_zoo.yaml",
         "calibration/script_study_zoo_seeds.yaml", "calibration/script_study_budget.yaml",
         "calibration/script_study_steps.yaml", "calibration/script_study_steps2.yaml", "calibration/grain_placement.yaml",
         "calibration/script_study_w3_seeds.yaml", "calibration/split_sharpness.yaml", "calibration/v3_tower.yaml",
         "calibration/v3_position.yaml", "calibration/v3_steps.yaml", "calibration/v3_order.yaml")
TAGS = {"calibration/script_study.yaml": "", "calibration/script_study_small.yaml": "_small"}  # log file suffixes


def runs_of(plan_path: str, plan: dict) -> list[tuple[str, str]]:
    """(label, log file name) of each run a plan governs: one per script, or per script and grain level."""
    levels = plan.get("noise_levels")
    if levels:
        return [(f"{s}, grain {v}", f"{s}{tag}.jsonl") for s in plan["scripts"] for tag, v in levels.items()]
    return [(s, f"{s}{TAGS[plan_path]}.jsonl") for s in plan["scripts"]]


def final_values(rows: list[dict], measure: str, steps: int) -> dict[str, float] | None:
    """{cell: %} of a measure at the run's last step; None if the run has not reached it."""
    key = f"{measure.removesuffix('s')} % by cell px"  # the first plan says "letters"
    hits = [r[key] for r in rows if key in r and r.get("step") == steps]
    return hits[-1] if hits else None


def verdict(values: dict[str, float] | None, plan: dict, check: dict) -> tuple[str, list[tuple]]:
    """The check's verdict and its pairs as (base cell, split cell, base %, split %, verdict)."""
    if values is None:
        return "not run", []
    pairs = []
    for c, c2 in plan["pairs"]:
        b, s = values[str(c)], values[str(c2)]
        pairs.append((c, c2, b, s, pair_verdict(b, s, check, plan["unresolved_within"])))
    kinds = [p[-1] for p in pairs]
    overall = "met" if "met" in kinds else "unresolved" if "unresolved" in kinds else "missed"
    return overall, pairs


def seeds_section(plan: dict, results: Path) -> list[str]:
    check, (c, c2) = plan["primary"], plan["pair"]
    glyph = {seed: final_values(load_rows(results / f"{plan['scripts'][0]}{tag}.jsonl"), "glyph", plan["steps"])
             for tag, seed in plan["seed_runs"].items()}
    out = ["| seed (grain %s), glyph %% at step %d | " % (plan["noise"], plan["steps"])
           + " | ".join(f"{x} px" for x in plan["eval_cells"]) + " |", "|---|" + "---|" * len(plan["eval_cells"])]
    out += [f"| {seed}{' (fresh)' if seed in plan['fresh_seeds'] else ''} | "
            + " | ".join(f"{v[str(x)]:.1f}" for x in plan["eval_cells"]) + " |" for seed, v in glyph.items() if v]
    ran = {seed: v for seed, v in glyph.items() if v}
    if len(ran) > 1:
        stats = [t_interval([v[str(x)] for v in ran.values()]) for x in plan["eval_cells"]]
        out.append(f"| mean of {len(ran)} (SD; 95% t interval) | "
                   + " | ".join(f"{m:.1f} ({sd:.1f}; {lo:.1f} to {hi:.1f})" for m, sd, lo, hi in stats) + " |")
    fresh = [(ran[s][str(c)], ran[s][str(c2)]) for s in plan["fresh_seeds"] if s in ran]
    done = len(fresh) == len(plan["fresh_seeds"])
    kind = replication(fresh, check, plan["unresolved_within"]) if done else "not run"
    out += ["", f"- primary (fresh seeds {plan['fresh_seeds']} at {c}/{c2} px, glyph <= {check['base_at_most']} and "
                f">= {check['split_at_least']}): **{kind}**"
            + ("" if not fresh else "; " + ", ".join(f"{b:.1f}/{s2:.1f}" for b, s2 in fresh)), ""]
    return out


def load_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def section(plan_path: str, results: Path) -> str:
    import yaml

    root = repo_root()
    plan = yaml.safe_load((root / plan_path).read_text())
    out = [f"## {plan_path}", "", plan["question"], ""]
    if "geometries" in plan:
        return "\n".join(out + sharp_section(plan, results))
    if "placements" in plan:
        return "\n".join(out + grain_section(plan, results))
    if "seed_runs" in plan:
        return "\n".join(out + seeds_section(plan, results))
    if "seed_zero_direction" in plan:
        return "\n".join(out + zoo_seeds_section(plan, results))
    if "variants" in plan:
        return "\n".join(out + budget_section(plan, results))
    if "arms" in plan:
        return "\n".join(out + zoo_section(plan, results))
    for label, name in runs_of(plan_path, plan):
        rows = load_rows(results / name)
        out.append(f"### {label} (`{name}`)")
        out.append("")
        values = {m: final_values(rows, m, plan["steps"]) for m in ("letter", "word", "glyph")}
        values = {m: v for m, v in values.items() if v is not None}
        if values:
            out.append("| measure at step %d | " % plan["steps"] + " | ".join(f"{c} px" for c in plan["eval_cells"]) + " |")
            out.append("|---|" + "---|" * len(plan["eval_cells"]))
            for m, v in values.items():
                out.append(f"| {m} % | " + " | ".join(f"{v[str(c)]:.1f}" for c in plan["eval_cells"]) + " |")
            out.append("")
        for which in ("primary", "secondary"):
            check = plan[which]
            overall, pairs = verdict(final_values(rows, check["measure"], plan["steps"]), plan, check)
            out.append(f"- {which} ({check['measure']} <= {check['base_at_most']} at c, >= {check['split_at_least']} "
                       f"at 2c): **{overall}**"
                       + ("" if not pairs else "; " + ", ".join(f"{c}/{c2}: {b:.1f}/{s:.1f} {v}" for c, c2, b, s, v in pairs)))
        out.append("")
    return "\n".join(out)


def build(results: Path, plans: tuple[str, ...] = PLANS) -> str:
    head = ["# World v3 script pre-studies", "",
            "Generated by `python -m vlmlab.script_study` from the runs' logs in this folder "
            "(calibration/experiments/script_legibility.py; the zoo plan's: text_pages.py); the plans, with their predictions, are the yaml files "
            "each section names. One seed per script unless a section says otherwise; chance is 4% for letters and 2% "
            "for words.", ""]
    return "\n".join(head + [section(p, results) for p in plans if (repo_root() / p).exists()])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=repo_root() / "results" / "script_study")
    a = ap.parse_args()
    (a.results / "STUDY.md").write_text(build(a.results))
    print(a.results / "STUDY.md")


if __name__ == "__main__":
    main()
