"""Pre-registration: each primary check's seed count, planned from a pilot for 80% power (issue 19).

    python -m vlmlab.ablate f4_pooling --seeds 0,1 runs_root=runs/pilot      # the pilot: few seeds
    python -m vlmlab.plan f4_pooling [f6_splitting ...] --runs runs/pilot [--write] [--floor 3] [--cap 20]

For every primary check of each file, from the pilot's runs (the same pairing as the verdicts, report/verdicts.py;
the power side is plan_power.py):
  quality  paired seeds for 80% power of the two-sided paired t test, if the pilot's mean and SD of d (in the
           metric's good direction, against the check's bound) hold; a check pooling k cell pairs gets k pairs a
           seed, so it needs ceil(pairs / k) seeds;
  event    `diverged`: seeds per arm for 80% power of Fisher's exact test (the report's) at the pilot's shares;
  timing and facts are not powered by seeds (timings by timing.py's reps; facts are deterministic).
The tests run at alpha 0.05 / m, m the primary checks planned together: the report corrects its primary family
with Holm, whose first step is that Bonferroni bound, so the plan is conservative for it. A file's seeds are the
largest figure of its primary checks, at least --floor; a check that needs more than --cap (or whose pilot effect
is 0) is marked "beyond the cap": its effect cannot be decided at this budget, which the plan says rather than
hides, and it adds no seeds to its file (the cap's seeds would not decide it either). A pilot of two seeds
estimates the SD from two differences: the plan is a first look, and the report's `seeds_to_decide` is the second.

--write's seeds start one past the pilot's largest seed (--first-seed to choose): the confirmatory runs are then
not the pilot's runs again (training is deterministic: seed k of a cell gives the same numbers each time).

Writes <out>/plan.csv, <out>/cost.csv (each file's planned runs and minutes, from the pilot's run times, against
--budget) and <out>/PLAN.md (default results/plan/); --write sets each file's `seeds:` to [0, ..., n-1] and
its `plan:` to the figure and the pilot it came from, to be committed before the real run.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
from pathlib import Path

import pandas as pd

from vlmlab.ablate import ABLATIONS, load
from vlmlab.paths import repo_root
from vlmlab.report import aggregate, calibration
from vlmlab.report.markup import fmt, to_markdown
from vlmlab.report.stats import ALPHA
from vlmlab.report.verdicts import cell_pairs
from vlmlab.plan_cost import cost_table
from vlmlab.plan_power import SD_FLOORS, plan_check, pooled_sds, powered
from vlmlab.tracking import write_atomic
from vlmlab.world.config import world_id


def needed_cells(abl, untestable: dict[str, str] | None = None) -> list[str]:
    """The cells of `abl`'s grid a seed plan needs: those some powered primary check pairs (`make pilot` runs only
    these). A file whose primary checks are all facts, timings or on blind-level tasks needs none."""
    cells = abl.cells()
    checks = [c for c in abl.checks if c.primary or not any(x.primary for x in abl.checks)]
    keep = {cell for c in checks if powered(c, untestable or {})
            for pair in cell_pairs(cells, c.better, c.worse) for cell in pair}
    return [c for c in cells if c in keep]


def controls_today(scale: str = "base") -> Path | None:
    """The controls.csv of today's world's calibration at `scale` (GENERATOR_VERSION), among results/calibration*/."""
    return calibration.calibration_for(world_id(scale), repo_root() / "results")


def runs_controls(tables, scale: str = "base") -> Path | None:
    """The controls.csv of the world the runs of these seeds tables ran in (summary.json's world_version, the most
    common), so that a plan made from pilot runs of an earlier world regenerates against that world's calibration;
    today's world's (controls_today) when no run records one."""
    worlds = [w for t in tables if (w := calibration.runs_world(t))]
    if not worlds:
        return controls_today(scale)
    budgets = [s for t in tables if (s := calibration.runs_steps(t))]
    return calibration.calibration_for(max(set(worlds), key=worlds.count), repo_root() / "results",
                                       max(set(budgets), key=budgets.count) if budgets else None)


def untestable_today(scale: str = "base") -> dict[str, str]:
    """The tasks today's world's calibration at `scale` found at blind level (calibration.blind_level_tasks)."""
    return calibration.blind_level_tasks(controls_today(scale))


def plan(names: list[str], runs: str | Path, floor: int = 3, cap: int = 20, folder: str | Path | None = None,
         controls_csv: str | Path | None = None, undecided: int | None = None, sd_floor: str = "none") -> pd.DataFrame:
    """Rows per primary check of each file, with the file's planned seeds (`file_seeds`: NaN while no primary check
    of the file has a pilot figure). `controls_csv`: the world's calibration (default: the one among
    results/calibration*/ made in the world the pilot runs ran in, runs_controls), whose blind-level tasks make their checks
    untestable. `sd_floor` (plan_power.SD_FLOORS): the least SD a check's own pilot SD may claim."""
    ablations = [load(n, folder) for n in names]
    scales = {a.scale for a in ablations}
    if len(scales) > 1:
        raise ValueError(f"files of several world scales ({', '.join(sorted(scales))}) are planned apart")
    tables = {abl.name: aggregate.seeds_table(runs, abl.name, abl.__dict__) for abl in ablations}
    controls_csv = controls_csv or runs_controls(tables.values(), scales.pop())
    untestable = calibration.blind_level_tasks(controls_csv)
    checks = [(a, c) for a in ablations for c in a.checks if c.primary or not any(x.primary for x in a.checks)]
    alpha = ALPHA / max(1, sum(powered(c, untestable) for _, c in checks))
    rows = []
    pooled = pooled_sds([(tables[abl.name], abl.checks) for abl in ablations])
    for abl in ablations:
        seeds = tables[abl.name]
        mine = [c for a, c in checks if a is abl]
        for c in mine:
            rows.append({"ablation": abl.name, "finding": abl.finding,
                         **plan_check(seeds, c, alpha, untestable=untestable, controls_csv=controls_csv,
                                      pooled=pooled, floor=sd_floor)})
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["alpha"] = alpha
    df["beyond_cap"] = df["seeds"].apply(lambda n: isinstance(n, float) and math.isinf(n) or (n == n and n > cap))

    def file_seeds(g: pd.DataFrame) -> float:
        """The most seeds a decidable primary check of the file needs, at least the floor; a check beyond the cap
        adds none (the cap would not decide it either: those seeds go where they decide something). A file with no
        decidable seed-powered primary (all beyond the cap, timings, facts or untestable) gets `undecided` seeds
        when that is set (a budget's choice: enough for its timings and facts), else the floor when some check is
        beyond the cap and nothing otherwise."""
        finite = [int(n) for n, beyond in zip(g["seeds"], g["beyond_cap"]) if n == n and math.isfinite(n) and not beyond]
        if finite:
            return float(max([floor, *finite]))
        if undecided is not None:
            return float(undecided)
        return float(floor) if g["beyond_cap"].any() else math.nan

    per_file = {name: file_seeds(g) for name, g in df.groupby("ablation", sort=False)}
    df["file_seeds"] = df["ablation"].map(per_file)
    return df


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=repo_root()).stdout.strip() or "?"
    except OSError:
        return "?"


def write_plan(path: Path, seeds: int, text: str, first: int = 0) -> None:
    """Set an ablation file's `seeds:` to [first, ..., first+seeds-1] and its `plan:` (added after `question:` if
    missing)."""
    src = path.read_text()
    line = f"seeds: [{', '.join(str(s) for s in range(first, first + seeds))}]"
    src, n = re.subn(r"(?m)^seeds:.*\n(?:[ \t]*- .*\n)*", lambda _: line + "\n", src)  # flow or block list
    if not n:
        raise ValueError(f"{path}: no `seeds:` line to set")
    plan_line = f"plan: {json.dumps(text)}"  # a JSON string is a YAML double-quoted scalar
    if re.search(r"(?m)^plan:", src):
        src = re.sub(r"(?m)^plan:.*$", lambda _: plan_line, src)
    else:
        src = re.sub(r"(?m)^(question:.*)$", lambda m: m.group(1) + "\n" + plan_line, src, count=1)
    write_atomic(path, src)


def report(df: pd.DataFrame, runs: str, out: Path, costs: pd.DataFrame | None = None, budget: float = math.nan,
           jobs: int = 2) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "plan.csv", df.to_csv(index=False))
    head = ["ablation", "check", "metric", "pilot seeds", "pairs/seed", "effect", "SD", "seeds for 80%", "file's seeds",
            "note"]
    rows = [[r["ablation"], r["check"], r["metric"], str(r["pilot_seeds"]), str(r["pairs_per_seed"]), fmt(r["effect"]),
             fmt(r["sd"]), "beyond the cap" if r["beyond_cap"] else fmt(r["seeds"], digits=0),
             fmt(r["file_seeds"], digits=0),
             r["note"]] for r in df.to_dict("records")]
    alpha = df["alpha"].iloc[0] if not df.empty else ALPHA
    blocks = [("h1", "Seed plan from the pilot", None),
              ("p", f"Generated by `python -m vlmlab.plan` from the pilot runs under {runs}/ at commit {_commit()}. "
                    f"Primary checks only; 80% power at alpha {alpha:.3g} (0.05 over the {round(ALPHA / alpha)} of "
                    f"these {len(df)} primary checks that seeds power, Holm's first step).", None),
              ("table", head, rows)]
    if costs is not None and not costs.empty:
        write_atomic(out / "cost.csv", costs.to_csv(index=False))
        total = float(costs["est_min"].sum())
        verdict = ("" if budget != budget else
                   f" against a budget of {budget:.0f} min: " + ("fits" if total <= budget else
                                                                 "DOES NOT FIT: cut grid cells (never the seeds of "
                                                                 "primary checks) and say so in the file's `plan:`"))
        blocks += [("h2", "Planned cost", None),
                   ("p", f"Every cell x the planned seeds x a run's wall time in the pilot, {jobs} runs at a time: "
                         f"{total:.0f} min{verdict}. A file takes at least its longest run. A run whose config an "
                         "earlier file runs at the same seed is "
                         "reused, not retrained (`reused`); the isolated timings are not counted; a cell the pilot "
                         "did not run is costed at the median of the world calibration's runs that train the same "
                         "model (`from calibration`: their evaluation set differs, so the figure is approximate), "
                         "else at its file's median pilot run (`unmeasured`).", None),
                   ("table", ["ablation", "cells", "from calibration", "unmeasured", "seeds", "runs", "reused",
                              "median run (s)", "est. min", "note"],
                    [[r["ablation"], str(r["cells"]), str(r.get("from_calibration", 0)), str(r["unmeasured_cells"]),
                      str(r["seeds"]), str(r["runs"]),
                      str(r["reused"]), fmt(r["run_s_median"], digits=0), fmt(r["est_min"], digits=1), r["note"]]
                     for r in costs.to_dict("records")])]
    write_atomic(out / "PLAN.md", to_markdown(blocks, out))
    return out / "PLAN.md"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vlmlab.plan", description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="+", help="ablation names (or `all`: every file but follow-ups)")
    ap.add_argument("--runs", required=True, help="the pilot's runs root (runs_root= of the pilot sweep)")
    ap.add_argument("--ablations", default=str(ABLATIONS), help="the ablations folder")
    ap.add_argument("--floor", type=int, default=3, help="fewest seeds a file is given")
    ap.add_argument("--cap", type=int, default=20, help="most seeds a file is given")
    ap.add_argument("--out", default=str(repo_root() / "results" / "plan"))
    ap.add_argument("--calibration",
                    help="the world calibration's controls.csv (default: today's world's, under results/calibration*/)")
    ap.add_argument("--write", action="store_true", help="set each file's seeds: and plan: from the figures")
    ap.add_argument("--first-seed", type=int,
                    help="the real run's first seed (default: one past the pilot's largest, so that the pilot's runs, "
                         "whose effects set the counts, are not in the test)")
    ap.add_argument("--undecided", type=int,
                    help="seeds of a file no seed count can decide (its primaries beyond the cap, timings, facts or "
                         "untestable); default: the floor if some check is beyond the cap, else its seeds as they are")
    ap.add_argument("--sd-floor", choices=SD_FLOORS, default="none",
                    help="the least SD a check's own pilot SD may claim: the pilot's pooled SD of the metric, or "
                         "sqrt(2) x the calibration's seed SD (a pilot of two seeds can badly underestimate it)")
    ap.add_argument("--budget", type=float, default=150.0, help="the run's wall-time budget in minutes (issue 19: 150)")
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time in the real run (2 on a 2-core CPU)")
    a = ap.parse_args(argv)
    names = a.names
    if names == ["all"]:
        from vlmlab.contract.ablation import available

        names = [n for n in available(a.ablations) if not load(n, a.ablations).follow_up_of]
    df = plan(names, a.runs, a.floor, a.cap, a.ablations, a.calibration, a.undecided, a.sd_floor)
    if df.empty:
        print("[plan] no primary checks found")
        return 1
    first = a.first_seed if a.first_seed is not None else 1 + max(
        [int(r["seed"]) for name in dict.fromkeys(df["ablation"])
         for r in aggregate.seeds_table(a.runs, name).to_dict("records") if r.get("status") != "missing"] or [-1])
    controls = a.calibration or runs_controls([aggregate.seeds_table(a.runs, n) for n in dict.fromkeys(df["ablation"])],
                                              load(names[0], a.ablations).scale)
    cal_runs = Path(controls).parent / "runs" if controls else None
    md = report(df, a.runs, Path(a.out), cost_table(df, a.runs, a.ablations, a.jobs, first, cal_runs), a.budget, a.jobs)
    print(md.read_text())
    if a.write:
        for name, g in df.groupby("ablation", sort=False):
            r = g.iloc[0]
            if r["file_seeds"] != r["file_seeds"]:
                print(f"[plan] {name}: no primary check has a pilot figure; its seeds: are left as they are")
                continue
            decided = any(n == n and math.isfinite(n) and not b for n, b in zip(g["seeds"], g["beyond_cap"]))
            if not load(name, a.ablations).findings_run and not decided:
                print(f"[plan] {name}: cut from the findings run and nothing to decide; its seeds: are left as they are")
                continue
            figures = "; ".join(f"{x['check']} ({x['metric']}): " + ("beyond the cap" if x["beyond_cap"] else
                                                                       f"{fmt(x['seeds'], digits=0)}")
                                for x in g.to_dict("records") if x["seeds"] == x["seeds"])
            n = int(r["file_seeds"])
            apart = f", seeds {first}-{first + n - 1}, none of the pilot's" if first else ""
            where = f"python -m vlmlab.plan, pilot of {int(g['pilot_seeds'].max())} seeds under {a.runs}, commit {_commit()}" + (
                f", SD floor: {a.sd_floor}" if a.sd_floor != "none" else "")
            if decided:
                text = f"{n} seeds: the pilot's figure for 80% power ({where}; {figures}), fixed before the runs{apart}"
            else:
                text = (f"{n} seed{'s' if n > 1 else ''}: no seed count decides this file's primary checks at this "
                        f"budget (beyond the cap, timings, facts or untestable here; {where}"
                        + (f"; {figures}" if figures else "") + f"), so it runs what its timings and facts need "
                        f"(--undecided {n}), fixed before the runs{apart}")
            write_plan(Path(a.ablations) / f"{name}.yaml", n, text, first)
            print(f"[plan] {name}: seeds [{first}..{first + n - 1}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
