"""The zoo pre-studies' sections of results/script_study/STUDY.md (script_study.py builds the file). Each tower is one
text_pages.py run's json: its glyph probe at the plan's cells and the world's probes with each test scene's
correctness, so two towers are compared by McNemar's exact test on the same scenes (script_checks.py).

A zoo plan (`arms`) compares a tower trained with text pages against its control: `reading` is a one-seed pair
check on one arm, `cost` compares the arms' probes by McNemar's exact test, Holm-corrected over the probes. A zoo
seeds plan (`seed_zero_direction`) repeats that comparison per fresh seed: a probe replicates when every fresh pair
moves in seed 0's direction with a corrected p under alpha, fails when every fresh pair moves the other way or by
less than `fails_within` points, and is mixed otherwise. A budget plan (`variants`) changes one thing each in a zoo
plan's pages arm, same seed: each variant's reading is a one-seed pair check, shown beside that pages arm (its
`reference`, and its seeds' spread where a zoo seeds plan ran them) and the variant's probes against the control as
the zoo plan's cost. A budget plan may also show `others` (towers in the table only), `contrasts` (pairs of its
towers compared as the cost is, reported and not checked), `probe_targets` (a probe's bound, a secondary check
per variant) and `replication` (variants that are fresh seeds of the reference: the pair replicated, as a seeds
plan's, is then the primary check and each variant's pair is labelled `variant_check`)."""

from __future__ import annotations

import json
from pathlib import Path

from vlmlab.script_checks import cost_found, pair_tests, pair_verdict, replicates, replication, t_interval

PROBES = ("colour", "shape", "count", "position", "glyph (base)", "glyph (split)")


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


def budget_section(plan: dict, results: Path) -> list[str]:
    """Variants of a zoo plan's pages arm (one change each, same seed) against their control and that pages arm."""
    ref_label = plan.get("reference_label", "pages (study 5)")
    towers = {"control": plan["control"], ref_label: plan["reference"], **plan.get("others", {}), **plan["variants"]}
    rows = {k: json.loads((results / f).read_text()) for k, f in towers.items() if (results / f).exists()}
    names = list(rows)
    out = ["| measure | " + " | ".join(names) + " |", "|---|" + "---|" * len(names),
           "| steps | " + " | ".join(f"{rows[a]['steps']:,}" for a in names) + " |",
           "| pages per step / page loss weight | " + " | ".join(
               f"{rows[a]['pages batch']} / {rows[a].get('page weight', 1 if rows[a]['pages batch'] else 0):g}"
               for a in names) + " |"]
    if any("grain" in rows[a] for a in names):  # v3_tower.py's towers: the world's grain on every view, the dense weight
        out.append("| grain on every view / scenes' dense weight | " + " | ".join(
            f"{rows[a].get('grain', 0):g} / {rows[a].get('dense weight', 1):g}" for a in names) + " |")
    if any("order weight" in rows[a] for a in names):  # study 16's region order heads (0: none)
        out.append("| region order heads' weight | " + " | ".join(
            f"{rows[a].get('order weight', 0):g}" for a in names) + " |")
    out += [f"| script glyph % at {c} px (grain {plan['noise']}) | "
            + " | ".join(f"{rows[a]['glyph % by cell px'][str(c)]:.1f}" for a in names) + " |" for c in plan["cells"]]
    out += [f"| world v2 probe: {p} % | " + " | ".join(f"{rows[a]['probes'][p]['accuracy']:.1f}" for a in names) + " |"
            for p in PROBES if all(p in rows[a]["probes"] for a in names)]
    out += ["| training seconds | " + " | ".join(str(rows[a]["train seconds"]) for a in names) + " |",
            "| commit | " + " | ".join(f"`{rows[a]['git'][:7]}`" for a in names) + " |", ""]
    spread = plan.get("seed_spread")
    seed_files = [results / f"{spread['arm']}{f'_seed{s}' if s else ''}.json" for s in spread["seeds"]] if spread else []
    glyphs = [json.loads(f.read_text())["glyph % by cell px"][str(plan["reading"]["pair"][1])]
              for f in seed_files if f.exists()]
    r, (c, c2) = plan["reading"], plan["reading"]["pair"]
    n_probes = len(plan["cost"]["probes"])
    check = plan.get("variant_check", "primary")
    if "replication" in plan:
        fresh = [rows[v]["glyph % by cell px"] for v in plan["replication"] if v in rows]
        done = len(fresh) == len(plan["replication"])
        pairs = [(g[str(c)], g[str(c2)]) for g in fresh]
        kind = replication(pairs, r, plan["unresolved_within"]) if done else "not run"
        out.append(f"- primary, replication in {', '.join(plan['replication'])} (every seed glyph <= "
                   f"{r['base_at_most']} at {c} px and >= {r['split_at_least']} at {c2} px): **{kind}**"
                   + ("; " + ", ".join(f"{b:.1f}/{s2:.1f}" for b, s2 in pairs) if done else ""))
    for v in plan["variants"]:
        if v not in rows:
            out.append(f"- {check}, {v} reading (glyph <= {r['base_at_most']} at {c} px, >= {r['split_at_least']} "
                       f"at {c2} px): **not run**")
            continue
        g = rows[v]["glyph % by cell px"]
        kind = pair_verdict(g[str(c)], g[str(c2)], r, plan["unresolved_within"])
        out.append(f"- {check}, {v} reading (glyph <= {r['base_at_most']} at {c} px, >= {r['split_at_least']} at "
                   f"{c2} px): **{kind}**; {g[str(c)]:.1f}/{g[str(c2)]:.1f}")
        for probe, bound in plan.get("probe_targets", {}).items():
            acc = rows[v]["probes"][probe]["accuracy"]
            out.append(f"- secondary, {v} {probe} (>= {bound}): **{'met' if acc >= bound else 'missed'}**; {acc:.1f}")
        if ref_label in rows:
            ref = rows[ref_label]["glyph % by cell px"][str(c2)]
            note = ""
            if len(glyphs) > 1:
                m, sd, _, _ = t_interval(glyphs)
                note = (f"; that arm at {c2} px over {len(glyphs)} seeds ({spread['plan']}): mean {m:.1f}, "
                        f"SD {sd:.1f}")
            out.append(f"  - against {ref_label} at {c2} px: {g[str(c2)] - ref:+.1f} ({ref:.1f}){note}")
        if "control" in rows:
            found, figures = cost_found(rows[v], rows["control"], v, "control", plan["cost"])
            out.append(f"  - probes against the control (McNemar exact, Holm over {n_probes}, not a check): "
                       f"{found}; {figures}")
    mean = plan.get("mean_of")  # {arms: [...], against: [...]}: the arms' mean probe scores (a decision's input)
    if mean and all(a in rows for a in mean["arms"] + mean.get("against", [])):
        for probe, bound in plan.get("probe_targets", {}).items():
            m = sum(rows[a]["probes"][probe]["accuracy"] for a in mean["arms"]) / len(mean["arms"])
            line = f"- mean of {', '.join(mean['arms'])}, {probe} (>= {bound}): **{'met' if m >= bound else 'missed'}**; {m:.1f}"
            if mean.get("against"):
                ref = sum(rows[a]["probes"][probe]["accuracy"] for a in mean["against"]) / len(mean["against"])
                line += f"; {m - ref:+.1f} against the mean of {', '.join(mean['against'])} ({ref:.1f})"
            out.append(line)
    for a, b in plan.get("contrasts", []):
        if a in rows and b in rows:
            found, figures = cost_found(rows[a], rows[b], a, b, plan["cost"])
            d = rows[a]["glyph % by cell px"][str(c2)] - rows[b]["glyph % by cell px"][str(c2)]
            out.append(f"- {a} against {b} (McNemar exact, Holm over {n_probes}, not a check): {found}; {figures}; "
                       f"script glyph at {c2} px {d:+.1f}")
    return out + [""]


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
