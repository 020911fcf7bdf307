"""The world v3 script pre-studies' verdicts (calibration/script_study*.yaml), computed from their runs' logs.

Each plan names its scripts (and grain levels, if any), the cell sizes measured, the (base, split) pairs of cell
sizes, and a primary and a secondary check: a measure (letter or word: the per-patch heads' accuracy; glyph: the glyph probe), read at the
plan's last step, must be at most `base_at_most` at the base cell and at least `split_at_least` at twice it. A value
within `unresolved_within` points of its threshold leaves that pair unresolved at one seed. A check is met where any
pair is met, unresolved where none is met and one is unresolved, else missed.

Two later plans read differently. A seeds plan (`seed_runs`) replicates one pair in fresh seeds: met when every
fresh seed meets both thresholds, missed when the fresh seeds' mean is past either by more than `unresolved_within`,
else unresolved; the seeds' mean, SD and 95% t interval are shown beside it. A zoo plan (`arms`) compares a tower
trained with text pages against its control: `reading` is a one-seed pair check on one arm, `cost` compares the arms'
probes by McNemar's exact test on the same test scenes, Holm-corrected over the probes (report/stats.py). A zoo seeds
plan (`seed_zero_direction`) repeats that comparison per fresh seed: a probe replicates when every fresh pair moves in
seed 0's direction with a corrected p under alpha, fails when every fresh pair moves the other way or by less than
`fails_within` points, and is mixed otherwise. A budget plan (`variants`) changes one thing each in a zoo plan's
pages arm, same seed: each variant's reading is a one-seed pair check, shown beside that pages arm (and its seeds'
spread, where a zoo seeds plan ran them) and the variant's probes against the control as the zoo plan's cost.

    python -m vlmlab.script_study            # every plan under calibration/ -> results/script_study/STUDY.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vlmlab.paths import repo_root

PLANS = ("calibration/script_study.yaml", "calibration/script_study_small.yaml", "calibration/script_study_noise.yaml",
         "calibration/script_study_seeds.yaml", "calibration/script_study_zoo.yaml",
         "calibration/script_study_zoo_seeds.yaml", "calibration/script_study_budget.yaml")
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


def pair_verdict(base: float, split: float, check: dict, margin: float) -> str:
    lo, hi = check["base_at_most"], check["split_at_least"]
    if base <= lo - margin and split >= hi + margin:
        return "met"
    if base > lo + margin or split < hi - margin:
        return "missed"
    return "unresolved"


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


def replication(fresh: list[tuple[float, float]], check: dict, margin: float) -> str:
    """A pair replicated in fresh seeds, each (base %, split %): met when every seed meets both thresholds, missed
    when the seeds' mean is past either by more than `margin`, else unresolved."""
    if not fresh:
        return "not run"
    lo, hi = check["base_at_most"], check["split_at_least"]
    if all(b <= lo and s >= hi for b, s in fresh):
        return "met"
    mb, ms = (sum(v) / len(fresh) for v in zip(*fresh))
    return "missed" if mb > lo + margin or ms < hi - margin else "unresolved"


def t_interval(values: list[float]) -> tuple[float, float, float, float]:
    """(mean, SD, low, high) of a 95% t interval (scipy); SD and bounds nan under two values."""
    import numpy as np
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return float(x.mean()), float("nan"), float("nan"), float("nan")
    sd = float(x.std(ddof=1))
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=sd / np.sqrt(len(x))) if sd > 0 else (x.mean(),) * 2
    return float(x.mean()), sd, float(lo), float(hi)


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


PROBES = ("colour", "shape", "count", "position", "glyph (base)", "glyph (split)")


def pair_tests(arm: dict, control: dict, probes: list[str]) -> dict[str, tuple[float, int, int, float, float]]:
    """Two towers' probes on the same test scenes: {probe: (arm - control accuracy, scenes only the arm reads, scenes
    only the control reads, McNemar's exact p, that p Holm-corrected over `probes`)}."""
    from vlmlab.report.stats import holm, mcnemar_exact

    tests = [mcnemar_exact(arm["probes"][p]["correct"], control["probes"][p]["correct"]) for p in probes]
    return {p: (arm["probes"][p]["accuracy"] - control["probes"][p]["accuracy"], *t, ph)
            for p, t, ph in zip(probes, tests, holm([t[-1] for t in tests]))}


def zoo_section(plan: dict, results: Path) -> list[str]:
    arms = {arm: json.loads((results / f).read_text()) for arm, f in plan["arms"].items() if (results / f).exists()}
    if len(arms) < len(plan["arms"]):
        return [f"Not run (have {sorted(arms)} of {sorted(plan['arms'])}).", ""]
    names = list(arms)
    out = [f"| measure (step {plan['steps']}) | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    out += [f"| script glyph % at {c} px (grain {plan['noise']}) | "
            + " | ".join(f"{arms[a]['glyph % by cell px'][str(c)]:.1f}" for a in names) + " |" for c in plan["cells"]]
    out += [f"| world v2 probe: {p} % | " + " | ".join(f"{arms[a]['probes'][p]['accuracy']:.1f}" for a in names) + " |"
            for p in PROBES if all(p in arms[a]["probes"] for a in names)]
    out += [f"| training seconds | " + " | ".join(str(arms[a]["train seconds"]) for a in names) + " |",
            f"| commit | " + " | ".join(f"`{arms[a]['git'][:7]}`" for a in names) + " |", ""]
    r = plan["reading"]
    g = arms[r["arm"]]["glyph % by cell px"]
    b, s2 = g[str(r["pair"][0])], g[str(r["pair"][1])]
    kind = pair_verdict(b, s2, r, plan["unresolved_within"])
    out.append(f"- primary A, reading ({r['arm']} arm, glyph <= {r['base_at_most']} at {r['pair'][0]} px, "
               f">= {r['split_at_least']} at {r['pair'][1]} px): **{kind}**; {b:.1f}/{s2:.1f}")
    found, rows = cost_found(arms[r["arm"]], arms["control"], r["arm"], "control", plan["cost"])
    out += [f"- primary B, cost ({r['arm']} against control, McNemar exact, Holm over {len(plan['cost']['probes'])}): "
            f"**{found}**; {rows}", ""]
    return out


def cost_found(arm_row: dict, ctl_row: dict, arm: str, ctl: str, cost: dict) -> tuple[str, str]:
    """A tower's probes against its control's (pair_tests): which probes it loses ("cost") or gains at a corrected p
    under cost["alpha"], and each probe's line of figures."""
    rows, kinds = [], {"cost": [], "gain": []}
    for p, (d, only_arm, only_ctl, pv, ph) in pair_tests(arm_row, ctl_row, cost["probes"]).items():
        if ph < cost["alpha"]:
            kinds["cost" if d < 0 else "gain"].append(p)
        rows.append(f"{p} {d:+.1f} ({only_arm} scenes only {arm} reads, {only_ctl} only {ctl}; "
                    f"p {pv:.3g}, Holm {ph:.3g})")
    return "; ".join(f"{k}: {', '.join(v)}" for k, v in kinds.items() if v) or "no difference found", ", ".join(rows)


def budget_section(plan: dict, results: Path) -> list[str]:
    """Variants of study 5's pages arm (one change each, same seed) against its control and its pages arm."""
    towers = {"control": plan["control"], "pages (study 5)": plan["reference"], **plan["variants"]}
    rows = {k: json.loads((results / f).read_text()) for k, f in towers.items() if (results / f).exists()}
    names = list(rows)
    out = [f"| measure (step {plan['steps']}) | " + " | ".join(names) + " |", "|---|" + "---|" * len(names),
           "| pages per step / page loss weight | " + " | ".join(
               f"{rows[a]['pages batch']} / {rows[a].get('page weight', 1 if rows[a]['pages batch'] else 0):g}"
               for a in names) + " |"]
    out += [f"| script glyph % at {c} px (grain {plan['noise']}) | "
            + " | ".join(f"{rows[a]['glyph % by cell px'][str(c)]:.1f}" for a in names) + " |" for c in plan["cells"]]
    out += [f"| world v2 probe: {p} % | " + " | ".join(f"{rows[a]['probes'][p]['accuracy']:.1f}" for a in names) + " |"
            for p in PROBES if all(p in rows[a]["probes"] for a in names)]
    out += ["| training seconds | " + " | ".join(str(rows[a]["train seconds"]) for a in names) + " |",
            "| commit | " + " | ".join(f"`{rows[a]['git'][:7]}`" for a in names) + " |", ""]
    spread = plan.get("seed_spread")
    glyphs = [json.loads(f.read_text())["glyph % by cell px"][str(plan["reading"]["pair"][1])]
              for s in (spread["seeds"] if spread else [])
              for f in [results / f"{spread['arm']}{f'_seed{s}' if s else ''}.json"] if f.exists()]
    r, (c, c2) = plan["reading"], plan["reading"]["pair"]
    for v in plan["variants"]:
        if v not in rows:
            out.append(f"- primary, {v} reading (glyph <= {r['base_at_most']} at {c} px, >= {r['split_at_least']} "
                       f"at {c2} px): **not run**")
            continue
        g = rows[v]["glyph % by cell px"]
        kind = pair_verdict(g[str(c)], g[str(c2)], r, plan["unresolved_within"])
        out.append(f"- primary, {v} reading (glyph <= {r['base_at_most']} at {c} px, >= {r['split_at_least']} at "
                   f"{c2} px): **{kind}**; {g[str(c)]:.1f}/{g[str(c2)]:.1f}")
        if "pages (study 5)" in rows:
            ref = rows["pages (study 5)"]["glyph % by cell px"][str(c2)]
            note = ""
            if len(glyphs) > 1:
                m, sd, _, _ = t_interval(glyphs)
                note = (f"; that arm at {c2} px over {len(glyphs)} seeds ({spread['plan']}): mean {m:.1f}, "
                        f"SD {sd:.1f}")
            out.append(f"  - against study 5's pages arm at {c2} px: {g[str(c2)] - ref:+.1f} ({ref:.1f}){note}")
        if "control" in rows:
            found, figures = cost_found(rows[v], rows["control"], v, "control", plan["cost"])
            out.append(f"  - probes against the control (McNemar exact, Holm over {len(plan['cost']['probes'])}, "
                       f"not a check): {found}; {figures}")
    return out + [""]



def replicates(fresh: list[tuple[float, float]], direction: int, alpha: float, within: float) -> str:
    """A probe's move in fresh seeds, each (difference, corrected p), against seed 0's direction (+1 / -1)."""
    if not fresh:
        return "not run"
    if all(d * direction > 0 and p < alpha for d, p in fresh):
        return "replicates"
    if all(d * direction < 0 or abs(d) < within for d, _ in fresh):
        return "fails"
    return "mixed"


def zoo_seeds_section(plan: dict, results: Path) -> list[str]:
    def load(arm: str, seed: int) -> dict | None:
        f = results / f"{plan['arms'][arm]}{f'_seed{seed}' if seed else ''}.json"
        return json.loads(f.read_text()) if f.exists() else None

    seeds = [plan["seed_zero"], *plan["fresh_seeds"]]
    towers = {s: (load("pages", s), load("control", s)) for s in seeds}
    tests = {s: pair_tests(pg, ct, plan["probes"]) for s, (pg, ct) in towers.items() if pg and ct}
    out = ["| seed | " + " | ".join(f"{p}: pages - control (Holm p)" for p in plan["probes"])
           + " | pages' script glyph % at " + " / ".join(f"{c}" for c in plan["cells"]) + " px |",
           "|---|" + "---|" * (len(plan["probes"]) + 1)]
    for s, t in tests.items():
        g = towers[s][0]["glyph % by cell px"]
        out.append(f"| {s}{' (fresh)' if s in plan['fresh_seeds'] else ''} | "
                   + " | ".join(f"{t[p][0]:+.1f} ({t[p][-1]:.2g})" for p in plan["probes"]) + " | "
                   + " / ".join(f"{g[str(c)]:.1f}" for c in plan["cells"]) + " |")
    if len(tests) > 1:
        cells = []
        for p in plan["probes"]:
            m, _, lo, hi = t_interval([t[p][0] for t in tests.values()])
            cells.append(f"{m:+.1f} ({lo:+.1f} to {hi:+.1f})")
        out.append(f"| mean of {len(tests)} (95% t interval) | " + " | ".join(cells) + " | |")
    done = all(s in tests for s in plan["fresh_seeds"])
    out.append("")
    for p in plan["probes"]:
        fresh = [(tests[s][p][0], tests[s][p][-1]) for s in plan["fresh_seeds"] if s in tests]
        way = plan["seed_zero_direction"][p]
        kind = replicates(fresh, way, plan["alpha"], plan["fails_within"]) if done else "not run"
        out.append(f"- primary, {p} (seed 0's direction {plan['seed_zero_direction'][p]:+d}): **{kind}**")
    return out + [""]


def load_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def section(plan_path: str, results: Path) -> str:
    import yaml

    root = repo_root()
    plan = yaml.safe_load((root / plan_path).read_text())
    out = [f"## {plan_path}", "", plan["question"], ""]
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
