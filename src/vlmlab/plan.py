"""Pre-registration: each primary check's seed count, planned from a pilot for 80% power (issue 19).

    python -m vlmlab.ablate f4_pooling --seeds 0,1 runs_root=runs/pilot      # the pilot: few seeds
    python -m vlmlab.plan f4_pooling [f6_splitting ...] --runs runs/pilot [--write] [--floor 3] [--cap 20]

For every primary check of each file, from the pilot's runs (the same pairing as the verdicts, report/verdicts.py):
  quality  paired seeds for 80% power of the two-sided paired t test, if the pilot's mean and SD of d (in the
           metric's good direction, against the check's bound) hold; a check pooling k cell pairs gets k pairs a
           seed, so it needs ceil(pairs / k) seeds;
  event    `diverged`: seeds per arm for 80% power of a two-proportion test (Cohen's h) at the pilot's shares;
  timing and facts are not powered by seeds (timings by timing.py's reps; facts are deterministic).
The tests run at alpha 0.05 / m, m the primary checks planned together: the report corrects its primary family
with Holm, whose first step is that Bonferroni bound, so the plan is conservative for it. A file's seeds are the
largest figure of its primary checks, at least --floor and at most --cap; a check that needs more than the cap (or
whose pilot effect is 0) is marked "beyond the cap": its effect cannot be decided at this budget, which the plan
says rather than hides. A pilot of two seeds estimates the SD from two differences: the plan is a first look, and the
report's `seeds_to_decide` is the second.

Writes <out>/plan.csv and <out>/PLAN.md (default results/plan/); --write sets each file's `seeds:` to [0, ..., n-1] and
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
from vlmlab.config import repo_root
from vlmlab.contract.ablation import Check
from vlmlab.contract.metrics import metric as metric_info
from vlmlab.report import aggregate
from vlmlab.report.render import fmt, to_markdown
from vlmlab.report.stats import ALPHA, seeds_for_power
from vlmlab.report.verdicts import _event_counts, _label, cell_pairs, direction, paired_differences
from vlmlab.tracking import write_atomic
from vlmlab.world.config import GENERATOR_VERSION

POWER = 0.8


def event_seeds(p_better: float, p_worse: float, alpha: float, limit: int) -> float:
    """Seeds per arm for 80% power of a two-sided two-proportion z test (Cohen's h) between two diverged shares."""
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    h = abs(float(proportion_effectsize(p_better, p_worse)))
    if h == 0:
        return math.inf
    n = math.ceil(float(NormalIndPower().solve_power(effect_size=h, alpha=alpha, power=POWER, ratio=1.0)))
    return float(max(2, n)) if n <= limit else math.inf


def plan_check(seeds: pd.DataFrame, check: Check, alpha: float, limit: int = 200,
               untestable: dict[str, str] | None = None) -> dict:
    """One primary check's planned seeds from a pilot's seeds table (aggregate.seeds_table); a check on a task the
    world's calibration found at blind level (`untestable`, aggregate.blind_level_tasks) gets no seeds."""
    info = metric_info(check.metric)
    row = {"check": f"{_label(check.better)} vs {_label(check.worse)}", "metric": check.metric, "kind": info.kind,
           "pilot_seeds": 0, "pairs_per_seed": 0, "effect": math.nan, "sd": math.nan, "seeds": math.nan, "note": ""}
    if check.metric in (untestable or {}):
        return {**row, "note": untestable[check.metric]}
    if info.kind == "deterministic":
        return {**row, "note": "a fact: deterministic, no seeds"}
    if info.source == "isolated":
        return {**row, "note": "a timing: powered by timing.py's reps and its A/A control, not by seeds"}
    cells = list(dict.fromkeys(seeds["cell"])) if not seeds.empty else []
    pairs = cell_pairs(cells, check.better, check.worse)
    if not pairs:
        return {**row, "note": "no pilot cells match this check"}
    if info.kind == "event":
        (eb, nb) = _event_counts(seeds, list(dict.fromkeys(b for b, _ in pairs)))
        (ew, nw) = _event_counts(seeds, list(dict.fromkeys(w for _, w in pairs)))
        if not (nb and nw):
            return {**row, "note": "the pilot has no finished or diverged seeds on a side"}
        n = event_seeds(eb / nb, ew / nw, alpha, limit)
        per = max(1, len({b for b, _ in pairs}))
        return {**row, "pilot_seeds": int(seeds["seed"].nunique()), "pairs_per_seed": per,
                "effect": eb / nb - ew / nw, "seeds": math.ceil(n / per) if math.isfinite(n) else n,
                "note": "diverged shares, two-proportion power"}
    d = paired_differences(seeds, pairs, check.metric)
    good = direction(check.metric) * d["diff"]
    bound = -abs(check.margin) if check.kind == "not_worse" else 0.0
    per = len(pairs)
    out = {**row, "pilot_seeds": int(d["seed"].nunique()), "pairs_per_seed": per}
    if len(good) < 2:
        return {**out, "note": f"{len(good)} paired difference(s) in the pilot: run 2 seeds"}
    effect, sd = float(good.mean()) - bound, float(good.std(ddof=1))
    n = seeds_for_power(sd, abs(effect), limit=limit, alpha=alpha)
    return {**out, "effect": effect, "sd": sd, "seeds": math.ceil(n / per) if math.isfinite(n) else n,
            "note": "" if math.isfinite(n) else "sd 0 in the pilot" if n != n else "pilot effect 0 or beyond the limit"}


def powered(check: Check, untestable: dict[str, str]) -> bool:
    """A primary check that seeds can power: not a fact, not an isolated timing, not on a blind-level task."""
    info = metric_info(check.metric)
    return info.kind != "deterministic" and info.source != "isolated" and check.metric not in untestable


def needed_cells(abl, untestable: dict[str, str] | None = None) -> list[str]:
    """The cells of `abl`'s grid a seed plan needs: those some powered primary check pairs (`make pilot` runs only
    these). A file whose primary checks are all facts, timings or on blind-level tasks needs none."""
    cells = abl.cells()
    checks = [c for c in abl.checks if c.primary or not any(x.primary for x in abl.checks)]
    keep = {cell for c in checks if powered(c, untestable or {})
            for pair in cell_pairs(cells, c.better, c.worse) for cell in pair}
    return [c for c in cells if c in keep]


def untestable_today() -> dict[str, str]:
    """The tasks today's world's calibration found at blind level (aggregate.blind_level_tasks)."""
    return aggregate.blind_level_tasks(aggregate.calibration_for(GENERATOR_VERSION, repo_root() / "results"))


def plan(names: list[str], runs: str | Path, floor: int = 3, cap: int = 20, folder: str | Path | None = None,
         controls_csv: str | Path | None = None) -> pd.DataFrame:
    """Rows per primary check of each file, with the file's planned seeds (`file_seeds`: NaN while no primary check
    of the file has a pilot figure). `controls_csv`: the world's calibration (default: the one among
    results/calibration*/ made in today's world, GENERATOR_VERSION), whose blind-level tasks make their checks
    untestable."""
    ablations = [load(n, folder) for n in names]
    untestable = aggregate.blind_level_tasks(controls_csv) if controls_csv else untestable_today()
    checks = [(a, c) for a in ablations for c in a.checks if c.primary or not any(x.primary for x in a.checks)]
    alpha = ALPHA / max(1, sum(powered(c, untestable) for _, c in checks))
    rows = []
    for abl in ablations:
        seeds = aggregate.seeds_table(runs, abl.name, abl.__dict__)
        mine = [c for a, c in checks if a is abl]
        for c in mine:
            rows.append({"ablation": abl.name, "finding": abl.finding,
                         **plan_check(seeds, c, alpha, untestable=untestable)})
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["alpha"] = alpha
    df["beyond_cap"] = df["seeds"].apply(lambda n: isinstance(n, float) and math.isinf(n) or (n == n and n > cap))

    def file_seeds(g: pd.DataFrame) -> float:
        if g["beyond_cap"].any():
            return float(cap)
        finite = [int(n) for n in g["seeds"] if n == n and math.isfinite(n)]
        return float(min(cap, max([floor, *finite]))) if finite else math.nan

    per_file = {name: file_seeds(g) for name, g in df.groupby("ablation", sort=False)}
    df["file_seeds"] = df["ablation"].map(per_file)
    return df


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=repo_root()).stdout.strip() or "?"
    except OSError:
        return "?"


def write_plan(path: Path, seeds: int, text: str) -> None:
    """Set an ablation file's `seeds:` to [0, ..., seeds-1] and its `plan:` (added after `question:` if missing)."""
    src = path.read_text()
    line = f"seeds: [{', '.join(str(s) for s in range(seeds))}]"
    src, n = re.subn(r"(?m)^seeds:.*\n(?:[ \t]*- .*\n)*", lambda _: line + "\n", src)  # flow or block list
    if not n:
        raise ValueError(f"{path}: no `seeds:` line to set")
    plan_line = f"plan: {json.dumps(text)}"  # a JSON string is a YAML double-quoted scalar
    if re.search(r"(?m)^plan:", src):
        src = re.sub(r"(?m)^plan:.*$", lambda _: plan_line, src)
    else:
        src = re.sub(r"(?m)^(question:.*)$", lambda m: m.group(1) + "\n" + plan_line, src, count=1)
    write_atomic(path, src)


def report(df: pd.DataFrame, runs: str, out: Path) -> Path:
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
                    f"Primary checks only; 80% power at alpha {alpha:.3g} (0.05 over the {len(df)} primary checks "
                    "planned together, Holm's first step).", None),
              ("table", head, rows)]
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
    a = ap.parse_args(argv)
    names = a.names
    if names == ["all"]:
        from vlmlab.contract.ablation import available

        names = [n for n in available(a.ablations) if not load(n, a.ablations).follow_up_of]
    df = plan(names, a.runs, a.floor, a.cap, a.ablations, a.calibration)
    if df.empty:
        print("[plan] no primary checks found")
        return 1
    md = report(df, a.runs, Path(a.out))
    print(md.read_text())
    if a.write:
        for name, g in df.groupby("ablation", sort=False):
            r = g.iloc[0]
            if r["file_seeds"] != r["file_seeds"]:
                print(f"[plan] {name}: no primary check has a pilot figure; its seeds: are left as they are")
                continue
            figures = "; ".join(f"{x['check']} ({x['metric']}): " + ("beyond the cap" if x["beyond_cap"] else
                                                                       f"{fmt(x['seeds'], digits=0)}")
                                for x in g.to_dict("records") if x["seeds"] == x["seeds"])
            text = (f"{int(r['file_seeds'])} seeds: the pilot's figure for 80% power (python -m vlmlab.plan, pilot "
                    f"of {int(g['pilot_seeds'].max())} seeds under {a.runs}, commit {_commit()}; {figures}), fixed "
                    "before the runs")
            write_plan(Path(a.ablations) / f"{name}.yaml", int(r["file_seeds"]), text)
            print(f"[plan] {name}: seeds [0..{int(r['file_seeds']) - 1}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
