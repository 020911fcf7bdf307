"""From run folders to pandas tables: one row per (ablation, cell, seed), then mean ± 95% CI per cell.

Reads runs/<ablation>/<cell>/seed<k>/{summary.json, failed.json, config.yaml, metrics.jsonl}
(docs/INTERFACES.md, "Run folders"). A seed's status is
  finished | diverged   summary.json exists (its "status"),
  failed                failed.json exists and summary.json does not (or summary.json is unreadable),
  missing               the ablation file's grid x seeds expects it, but neither file is there yet.
Cells named in the ablation file's grid but absent on disk get "missing" rows, so the tables show
what is still to run. Task metrics exist for finished seeds only; `diverged` is 1/0 for
diverged/finished seeds (nan otherwise), so its per-cell mean is the share of diverged seeds.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import yaml

from vlmlab.contract.metrics import names
from vlmlab.contract.run import CONFIG, FAILED, METRICS, SUMMARY, grid_cells, parse_cell, seed_of
from vlmlab.contract.summary import Summary
from vlmlab.contract.tasks import task_names
from vlmlab.report.stats import mean_ci
from vlmlab.tracking import write_atomic  # noqa: F401 -- also used by the other report modules

STATUSES = ("finished", "diverged", "failed", "missing")


SPREAD = ("train_samples_per_s", "peak_memory_mb", "eval_latency_ms")  # timing columns shown with a CI


def fixed_columns() -> list[str]:
    """Compute columns constant per cell: the deterministic metrics of the registry."""
    return names("deterministic")


def _read_json(path: Path):
    with open(path) as f:
        return json.load(f)


def read_seed(seed_dir: str | Path) -> dict:
    """One seed's row: status, metrics, params, compute, the config facts the report header needs."""
    d = Path(seed_dir)
    row: dict = {"status": "missing", "run_dir": str(d)}
    summary: Summary | None = None
    cfg = None
    if (d / SUMMARY).exists():
        try:
            summary = Summary.load(d / SUMMARY)
            row["status"] = summary.status
        except (OSError, ValueError, TypeError) as e:
            row.update(status="failed", error=f"unreadable summary.json: {e}")
    elif (d / FAILED).exists():
        try:
            row["error"] = str(_read_json(d / FAILED).get("error", "")).strip().splitlines()[0][:300]
        except (OSError, ValueError, IndexError) as e:
            row["error"] = f"unreadable failed.json: {e}"
        row["status"] = "failed"
    if (d / CONFIG).exists():
        cfg = yaml.safe_load((d / CONFIG).read_text())
    cfg = cfg or (summary.config if summary else None) or {}
    if summary:
        if row["status"] == "finished":
            row.update({k: float(v) for k, v in (summary.metrics or {}).items() if _num(v)})
        params = summary.params or {}
        row["total_params"] = (params.get("all") or {}).get("total", math.nan)
        row["trainable_params"] = (params.get("all") or {}).get("trainable", math.nan)
        for comp in ("vision", "llm", "connector", "cross_attention"):
            row[f"{comp}_params"] = (params.get(comp) or {}).get("total", math.nan)
        row["visual_tokens_per_image"] = summary.visual_tokens_per_image
        for k in ("flops_per_train_sample", "flops_per_generated_token", "activation_mb_per_sample"):
            row[k] = summary.compute.get(k, math.nan)  # runs before compute.py have none
        for k in ("train_samples_per_s", "train_time_s", "peak_memory_mb", "eval_latency_ms"):
            value = getattr(summary.perf, k)
            row.setdefault(k, math.nan if value is None and k != "eval_latency_ms" else value)
        for k in ("final_train_loss", "diverged_at_step", "wall_time_s", "device", "torch_threads", "git_commit",
                  "machine", "reused_from", "world_version"):
            row[k] = getattr(summary, k)
    if row["status"] in ("finished", "diverged"):
        row["diverged"] = float(row["status"] == "diverged")
    get = lambda *ks: _dig(cfg, ks)  # noqa: E731
    row.update({"vision_name": get("vision", "name_or_path"), "llm_name": get("llm", "name_or_path"),
                "debug": get("debug"), "max_steps": get("optim", "max_steps"),
                "batch_size": get("optim", "batch_size"), "grad_accum": get("optim", "grad_accum"),
                "lr": get("optim", "lr"), "train_size": get("data", "train_size"),
                "validation_size": get("data", "validation_size"), "test_size": get("data", "test_size"),
                "n_tasks": len(get("data", "tasks") or []) or None, "eval_split": get("eval", "split"), "eval_shots": get("eval", "shots") or 0,
                "eval_max_samples": get("eval", "max_samples")})
    return row


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _dig(d, keys):
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def seeds_table(runs: str | Path, name: str, spec: dict | None = None) -> pd.DataFrame:
    """One row per (ablation, cell, seed) found on disk or expected by the ablation file's grid x seeds."""
    spec = spec or {}
    root = Path(runs) / name
    found = {}
    for seed_dir in sorted(root.glob("*/seed*")) if root.is_dir() else []:  # contract.run.seed_dir
        if seed_dir.is_dir() and seed_of(seed_dir) is not None:
            found[(seed_dir.parent.name, seed_of(seed_dir))] = seed_dir
    grid = {k: str(v) for k, v in (spec.get("grid") or {}).items()}
    on_disk = {cell for cell, _ in found}
    cells = sorted(on_disk)
    for want in grid_cells(grid) if grid else []:  # a grid cell may carry extra keys on disk (fixed overrides)
        w = parse_cell(want)
        if not any(all(parse_cell(c).get(k) == v for k, v in w.items()) for c in on_disk):
            cells.append(want)
    seeds = sorted({int(s) for s in spec.get("seeds") or []} | {s for _, s in found})
    rows = []
    for cell in cells:
        for seed in seeds:
            d = found.get((cell, seed))
            if d is None and seed not in (spec.get("seeds") or []):
                continue  # a seed only some other cell has is not expected here
            row = read_seed(d) if d is not None else {"status": "missing", "run_dir": str(root / cell / f"seed{seed}")}
            rows.append({"ablation": name, "cell": cell, "seed": seed, **parse_cell(cell), **row})
    return pd.DataFrame(rows)


def task_columns(seeds: pd.DataFrame, spec: dict | None = None) -> list[str]:
    """Task metrics present in the table (known tasks first), then avg."""
    skip = {"avg", "eval_latency_ms", "diverged"}
    listed = [m for m in (spec or {}).get("metrics", []) if m not in skip]
    known = [t for t in (*task_names(), *listed) if t in seeds.columns]
    return list(dict.fromkeys(known)) + (["avg"] if "avg" in seeds.columns else [])


def cells_table(seeds: pd.DataFrame, spec: dict | None = None) -> pd.DataFrame:
    """Per cell: seed counts by status, diverged share, mean ± CI of every task, avg and compute column."""
    if seeds.empty:
        return pd.DataFrame()
    keys = list(dict.fromkeys(k for c in seeds["cell"].unique() for k in parse_cell(c)))
    rows = []
    for cell, g in seeds.groupby("cell", sort=False):
        row = {"ablation": g["ablation"].iloc[0], "cell": cell, **parse_cell(cell), "n_seeds": len(g)}
        for s in STATUSES:
            row[f"n_{s}"] = int((g["status"] == s).sum())
        done = row["n_finished"] + row["n_diverged"]
        row["diverged_share"] = row["n_diverged"] / done if done else math.nan
        fin = g[g["status"] == "finished"]
        for m in task_columns(seeds, spec) + list(SPREAD):
            if m in fin.columns:
                row[f"{m}_mean"], row[f"{m}_ci95"], _ = mean_ci(fin[m])
        for m in fixed_columns():
            if m in g.columns:
                row[m] = g.loc[g["status"].isin(["finished", "diverged"]), m].mean()
        row["wall_time_s"] = own_runs(g)["wall_time_s"].sum() if "wall_time_s" in g.columns else 0.0
        rows.append(row)
    out = pd.DataFrame(rows)
    return out[["ablation", "cell", *keys] + [c for c in out.columns if c not in ("ablation", "cell", *keys)]]


def own_runs(seeds: pd.DataFrame) -> pd.DataFrame:
    """Rows of runs that trained themselves (a run reused from an identical one elsewhere cost no time)."""
    return seeds[seeds["reused_from"].isna()] if "reused_from" in seeds.columns else seeds


def read_sweeps(runs: str | Path) -> pd.DataFrame:
    """<runs>/sweeps.jsonl, one line per ablation sweep the runner made: name, start, wall time, machine."""
    path = Path(runs) / "sweeps.jsonl"
    rows = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return pd.DataFrame(rows, columns=["ablation", "started", "wall_time_s", "machine", "args", "exit_code"])


SNAPSHOT_FILES = (SUMMARY, METRICS, CONFIG, FAILED)
TIMING_FILES = ("timing.csv", "timing_summary.csv")  # timing.py's isolated timing of the cells


def snapshot(runs: str | Path, dest: str | Path, names) -> None:
    """Merges the small files of every run of the named ablations (not checkpoints or predictions) and
    sweeps.jsonl from runs/ into dest/ (results/runs), so the report regenerates from the repository alone.
    A merge, never a deletion: a run under runs/ replaces the same run (ablation/cell/seed) under dest/, and
    every committed run that runs/ does not have stays, so regenerating never loses a result."""
    runs, dest = Path(runs), Path(dest)
    for name in names:
        for src in sorted((runs / name).glob("*/seed*")) if (runs / name).is_dir() else []:
            files = [f for f in src.iterdir() if f.name in SNAPSHOT_FILES and f.is_file()] if src.is_dir() else []
            if not files:
                continue
            target = dest / src.relative_to(runs)
            for old in (target.iterdir() if target.is_dir() else []):  # the rerun replaces this run whole
                if old.is_file() and old.name in SNAPSHOT_FILES:
                    old.unlink()
            for f in files:
                write_atomic(target / f.name, f.read_text())
        for t in TIMING_FILES:  # the isolated timing is of the cells as they are now
            if (runs / name / t).is_file():
                write_atomic(dest / name / t, (runs / name / t).read_text())
    merge_sweeps(runs, dest)


def merge_sweeps(src: str | Path, dest: str | Path) -> None:
    """Append to dest/sweeps.jsonl the lines of src/sweeps.jsonl it does not have yet (one line per sweep)."""
    src, dest = Path(src) / "sweeps.jsonl", Path(dest) / "sweeps.jsonl"
    if src.exists():
        merged = dest.read_text().splitlines() if dest.exists() else []
        merged += [line for line in src.read_text().splitlines() if line and line not in merged]
        write_atomic(dest, "\n".join(merged) + "\n")


def isolated_table(folder: str | Path) -> pd.DataFrame:
    """timing.py's per-rep step times under <runs>/<ablation>/timing.csv, shaped like the seeds table (a rep
    plays a seed's part: rep r of every cell was timed in the same round, so reps pair as seeds do). The time
    is the step's CPU time with one thread (cpu_ms; wall clock where a file has none).
    Columns: cell, seed (= rep), status, step_ms; attrs["aa"] = (mean, 95% half-width, reps) of the A/A
    twin's per-rep difference from its original, or nan when not measured. Empty without timing.csv."""
    from vlmlab.timing import AA  # timing.py imports the model; the report needs it only when timings exist

    path = Path(folder) / TIMING_FILES[0]
    if not path.exists():
        out = pd.DataFrame(columns=["cell", "seed", "status", "step_ms"])
        out.attrs["aa"] = (math.nan, math.nan, 0)
        return out
    t = pd.read_csv(path)
    if "cpu_ms" in t.columns:  # the step's process CPU time (one thread): the compute it received, which other
        t = t.assign(step_ms=t["cpu_ms"])  # processes' load does not inflate as it does the wall clock
    twin = t[t["cell"].str.endswith(AA)]
    first = twin["cell"].iloc[0].removesuffix(AA) if not twin.empty else None
    if first is not None:
        a = t[t["cell"] == first].set_index("rep")["step_ms"]
        b = twin.set_index("rep")["step_ms"]
        aa = mean_ci(b - a)
    else:
        aa = (math.nan, math.nan, 0)
    out = t[~t["cell"].str.endswith(AA)].rename(columns={"rep": "seed"})[["cell", "seed", "step_ms"]]
    out = out.assign(status="finished").reset_index(drop=True)
    out.attrs["aa"] = aa
    return out


def prior_row(seeds: pd.DataFrame) -> dict[str, float]:
    """The prior baseline (prior.py: most common training answer per question type, no image, no model) of
    the toy world the runs were trained and evaluated on, per task, with avg over the tasks; {} when no run
    finished, the runs evaluated on real benchmarks, or they ran on another world version than today's generator
    (summary.json's world_version): its prior cannot be recomputed."""
    from vlmlab.prior import prior_scores
    from vlmlab.world.config import WorldConfig, world_id

    done = seeds[seeds["status"] == "finished"] if "status" in seeds.columns else seeds.iloc[0:0]
    for d in done["run_dir"]:
        path = Path(d) / CONFIG
        cfg = yaml.safe_load(path.read_text()) if path.exists() else None
        if not cfg or (cfg.get("eval") or {}).get("benchmark", "toy") != "toy":
            continue
        summary = _read_json(Path(d) / "summary.json") or {}
        if summary.get("world_version") != world_id(cfg.get("scale")):  # another world, or a run from before the field
            return {}
        try:
            world = WorldConfig(**cfg["data"])
        except TypeError:  # a world config of another version
            return {}
        scores = prior_scores(world, cfg["eval"].get("split", "test"), cfg["eval"].get("max_samples"))
        return {**scores, "avg": sum(scores.values()) / len(scores)} if scores else {}
    return {}


def write_tables(seeds: pd.DataFrame, cells: pd.DataFrame, out: str | Path) -> None:
    """results/<ablation>/seeds.csv and cells.csv (atomic writes)."""
    out = Path(out)
    write_atomic(out / "seeds.csv", seeds.to_csv(index=False))
    write_atomic(out / "cells.csv", cells.to_csv(index=False))
