"""The world's calibration as the report reads it: which calibration*/controls.csv judges a set of runs (the one
made in the world they ran in), which tasks it found at blind level (their checks become "untestable here"), the
blind controls shown beside each score, and the world a seeds table's runs ran in (one world per table).
Split from aggregate.py, which re-exports these names."""
from __future__ import annotations

from pathlib import Path

import pandas as pd


BLIND_LEVEL_SD = 2.0  # a task whose trained baseline beats its blind control by less than this many seed SDs


def _controls(controls_csv: str | Path) -> pd.DataFrame:
    """The world calibration's controls.csv (calibrate.py), empty when there is none."""
    path = Path(controls_csv)
    return pd.read_csv(path) if path.exists() else pd.DataFrame()


LEGACY_WORLD = "world-v1"  # the world of a controls.csv without a world column (written before it had one)


def calibration_for(world: str | None, results: str | Path = "results", steps: int | None = None) -> Path | None:
    """The controls.csv of the calibration made in `world` (a GENERATOR_VERSION) among <results>/calibration*/,
    so that runs are judged against the calibration of the world they ran in; world None (runs from before
    summary.json recorded it) means world v1. None when no calibration of that world is there.
    A world may have several: follow-ups (results/calibration_margins*, a split-share study) with fewer image
    handlings, and calibrations of the recipe at another step budget (results/calibration_budget_1200). The one whose
    controls ran at `steps` (the runs' optim.max_steps; None: the recipe's, RECIPE_STEPS) judges, a budget's blind
    control being the one that matches it; then the one that measured the most image handlings (controls.csv's
    splits), so the world's own calibration is not shadowed by a follow-up whose folder name sorts first; then the
    first by name. A controls.csv without a steps column (written before it had one) ranks after a matching one."""
    from vlmlab.calibrate_curve import RECIPE_STEPS

    want, steps = world or LEGACY_WORLD, steps or RECIPE_STEPS
    found = []
    for path in sorted(Path(results).glob("calibration*/controls.csv")):
        c = _controls(path)
        got = set(c["world"].dropna().astype(str)) if "world" in c.columns else {LEGACY_WORLD}
        if got == {want}:
            ran = set(c["steps"].dropna().astype(int)) if "steps" in c.columns else set()
            budget = 0 if ran == {steps} else 1 if not ran else 2
            found.append((budget, -(c["split"].nunique() if "split" in c.columns else 0), str(path), path))
    return min(found)[-1] if found else None


def _recorded(seeds: pd.DataFrame, column: str) -> list:
    """The recorded values of `column` among a seeds table's finished (or diverged) runs; [] when none."""
    done = seeds[seeds["status"].isin(["finished", "diverged"])] if "status" in seeds.columns else seeds.iloc[0:0]
    return [v for v in done.get(column, pd.Series(dtype=object)) if pd.notna(v) and v != ""]


def runs_steps(seeds: pd.DataFrame) -> int | None:
    """The step budget (optim.max_steps) the finished runs of a seeds table trained for, the most common one; None
    when none recorded it."""
    found = [int(s) for s in _recorded(seeds, "max_steps")]
    return max(set(found), key=found.count) if found else None


def runs_world(seeds: pd.DataFrame) -> str | None:
    """The toy world's version the finished runs of a seeds table ran in (summary.json's world_version, the most
    common one), None when none recorded it (world v1's runs, or real benchmarks)."""
    found = [w for w in _recorded(seeds, "world_version") if isinstance(w, str)]
    return max(set(found), key=found.count) if found else None


def one_world(seeds: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """A seeds table holds the runs of one toy world: where runs of several sit together (results/runs merges
    new runs into committed ones, and a follow-up file's old seeds can outlive its first look's rerun), the runs
    of today's world (GENERATOR_VERSION) are kept if there are any, else the most common world's; the others
    are left out. Returns (the table, a sentence saying what was left out, or "")."""
    from vlmlab.world.config import GENERATOR_VERSION

    if seeds.empty or "world_version" not in seeds.columns:
        return seeds, ""
    ran = seeds["status"] != "missing"
    world = seeds["world_version"].where(seeds["world_version"].map(lambda w: isinstance(w, str) and bool(w)),
                                         LEGACY_WORLD)
    worlds = world[ran].tolist()
    if len(set(worlds)) < 2:
        return seeds, ""
    keep = GENERATOR_VERSION if GENERATOR_VERSION in worlds else max(set(worlds), key=worlds.count)
    out = ran & (world != keep)
    left = ", ".join(f"{n} of {w}" for w, n in world[out].value_counts().sort_index().items())
    return seeds[~out].reset_index(drop=True), (f"Runs of another world left out ({left}): a table holds one "
                                                f"world's runs, here {keep}'s.")


def blind_level_tasks(controls_csv: str | Path | None) -> dict[str, str]:
    """Tasks the world's calibration (calibrate.py's controls.csv) found at blind level: under every image
    handling it measured, the trained baseline beats its blind control by < BLIND_LEVEL_SD seed SDs.
    {task: reason}; avg too when every task is. {} without a calibration."""
    c = _controls(controls_csv) if controls_csv else pd.DataFrame()
    if c.empty or "margin_in_sd" not in c.columns:
        return {}
    where = Path(controls_csv).parent.name
    out = {}
    for task, g in c.groupby("task", sort=False):
        best = g["margin_in_sd"].max()
        if not (best >= BLIND_LEVEL_SD):  # nan (no spread) counts as not shown to measure vision
            r = g.loc[g["margin_in_sd"].idxmax()] if g["margin_in_sd"].notna().any() else g.iloc[0]
            out[task] = (f"untestable here: {task} is at blind level in the world's calibration (trained - blind = "
                         f"{r['margin']:.2f} points, {r['margin_in_sd']:.1f} seed SDs < {BLIND_LEVEL_SD:g}; "
                         f"results/{where})")
    if out and len(out) == c["task"].nunique():
        out["avg"] = f"untestable here: every task is at blind level in the world's calibration (results/{where})"
    return out


def blind_controls(controls_csv: str | Path | None) -> dict[str, float]:
    """The baseline recipe's blind control per task (image.blind=true, no splitting; calibrate.py's controls.csv,
    validation split), {task: mean score}; {} without a calibration."""
    c = _controls(controls_csv) if controls_csv else pd.DataFrame()
    if c.empty or "blind" not in c.columns:
        return {}
    at = c[c["split"] == c["split"].min()]
    return {str(r["task"]): float(r["blind"]) for r in at.to_dict("records") if pd.notna(r["blind"])}
