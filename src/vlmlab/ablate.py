"""The sweep runner: `make ablation NAME=<name> [ARGS="<overrides>"]` runs one ablation file's grid.

    python -m vlmlab.ablate NAME | all | path/to/file.yaml [--ablations DIR] [--seeds 0,1] [--cells primary] [overrides]

An ablation file (schema and loader: contract/ablation.py) holds one question: its grid, its seeds and the
orderings the verdicts check. The runner turns it into one Hydra multirun (`python -m vlmlab.train -m ...`),
so every cell lands in a deterministic folder <runs_root>/<name>/<cell>/seed<k>; finished cells are skipped,
failed ones recorded and retried on the next run, and the tables and the report are regenerated at the end.
`NAME=all` runs every file of the ablations folder (default: the repository's ablations/) but follow-ups
(`follow_up_of:`, a later look that is run by naming it) and files cut from the findings run (`findings_run:
false`). `--cells primary` (the pilot, `make pilot`) runs only the cells a seed plan needs (plan.needed_cells:
those paired by a primary check that seeds can power), one sweep per cell, without the isolated timings.

A file may ablate any recipe key; it may not vary what would make its cells incomparable (the test split,
the evaluation protocol, the seeds: contract.run.refusal says why). A debug profile on the command line
(`ARGS=debug=smoke`) wins over the file: an axis the profile sets collapses to the profile's value.

On a machine without CUDA the cells run two at a time with one thread each (`hydra/launcher=local
threads=1`, the fastest use of a 2-core CPU) unless the command line names a launcher or threads.
A cell identical to a finished run of another ablation (the baseline recurs across findings) reuses
its results (reuse.py, `reuse_finished`). Speed checks use isolated timings (metric source "isolated",
e.g. isolated_step_ms): after the sweep every cell's model is timed again in one process (timing.py, with an
A/A control), so reuse is safe there. Only an ablation that checks a run's own timing (train_samples_per_s,
eval_latency_ms, peak_memory_mb: comparable only within one sweep) trains every cell itself. Each sweep's wall time and machine are
appended to <runs_root>/sweeps.jsonl.
"""
from __future__ import annotations

import datetime
import json
import subprocess
import sys
import time
import traceback
from pathlib import Path

from omegaconf import OmegaConf

from vlmlab.config import check_command_line, compose, repo_root
from vlmlab.contract.ablation import Ablation, available, findings_run, load_ablation
from vlmlab.contract.errors import ConfigError, UserError
from vlmlab.contract.metrics import metric
from vlmlab.contract.run import override_key
from vlmlab.perf import machine_name

ABLATIONS = repo_root() / "ablations"


def load(name: str, folder: str | Path | None = None) -> Ablation:
    """An ablation by name (from `folder`, default ablations/) or by the path of its file."""
    folder = Path(folder or ABLATIONS)
    path = Path(name) if name.endswith((".yaml", ".yml")) else folder / f"{name}.yaml"
    if not path.exists() and not name.endswith((".yaml", ".yml")):
        raise ConfigError(f"unknown ablation {name!r}; available: {', '.join(available(folder))}, all")
    abl = load_ablation(path)
    if not abl.checks:
        raise ConfigError(f"{path}: `checks:` needs at least one check to run")
    return abl


def _named(args: list[str]) -> set[str]:
    """The keys the command line sets ('+a.b=1' -> 'a.b')."""
    return {override_key(a) for a in args}


def launch_defaults(args: list[str]) -> list[str]:
    """Two cells at a time with one thread each on a CPU-only machine, unless the command line says otherwise."""
    import torch

    if torch.cuda.is_available():
        return []
    return [d for d in ("hydra/launcher=local", "threads=1") if d.split("=", 1)[0] not in _named(args)]


def reuse_policy(abl: Ablation, args: list[str]) -> list[str]:
    """A run's own timings are comparable only within one sweep (same machine, same load): an ablation that
    checks one trains every cell itself rather than reusing a run another sweep timed. Isolated timings are
    measured after the sweep from the cells' configs, so they leave reuse on."""
    timed = any(metric(c.metric).kind == "timing" and metric(c.metric).source == "run" for c in abl.checks)
    return ["reuse_finished=false"] if timed and "reuse_finished" not in _named(args) else []


def debug_keys(args: list[str]) -> set[str]:
    """The keys the command line's debug profile sets (conf/debug/<profile>.yaml), flattened."""
    profile = next((a.split("=", 1)[1] for a in args if override_key(a) == "debug"), "none")
    path = repo_root() / "conf" / "debug" / f"{profile}.yaml"
    if profile == "none" or not path.exists():
        return set()

    def flat(node, prefix=""):
        for k, v in node.items():
            yield from flat(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"]

    return set(flat(OmegaConf.to_container(OmegaConf.load(path), resolve=False)))


def under_debug(abl: Ablation, args: list[str]) -> Ablation:
    """The ablation with every axis and fixed override that the debug profile sets left to the profile."""
    keys = debug_keys(args)
    groups = {p.name for p in (repo_root() / "conf").iterdir() if p.is_dir()}

    def hit(key: str) -> bool:  # a group swap (vision=toy_weak) stays: the profile, composed last, wins over it
        return key in keys or (key not in groups and any(d.startswith(key + ".") for d in keys))
    dropped = [k for k in abl.grid if hit(k)] + [o for o in abl.fixed if hit(override_key(o))]
    if not dropped:
        return abl
    print(f"[vlmlab] the debug profile sets {', '.join(dropped)}: left to the profile in this sweep", flush=True)
    grid = {k: v for k, v in abl.grid.items() if not hit(k)}
    fixed = [o for o in abl.fixed if not hit(override_key(o))]
    return Ablation(**{**abl.__dict__, "grid": grid, "fixed": fixed})


def runs_root_of(args: list[str], scale: str = "base") -> str:
    """Where the sweep files its runs: the command line's runs_root, else the scale's (a scale file runs its cells
    with scale=<scale>, whose config files them under runs/<scale>)."""
    at = [f"scale={scale}"] if scale != "base" else []
    return compose([*at, *(a for a in args if not a.startswith(("-", "hydra")))]).runs_root


def pinned_cells(abl: Ablation) -> list[Ablation]:
    """The ablation cut to the cells a seed plan needs, one single-cell Ablation each (named as in the full grid)."""
    from vlmlab.contract.run import parse_cell
    from vlmlab.plan import needed_cells, untestable_today

    cells = needed_cells(abl, untestable_today(abl.scale))
    if not cells:
        print(f"[vlmlab] {abl.name}: no primary check that seeds can power (facts, timings or blind-level tasks): "
              "no pilot cells", flush=True)
    return [Ablation(**{**abl.__dict__, "grid": parse_cell(c)}) for c in cells]


def run_ablation(abl: Ablation, args: list[str], timing: bool = True) -> int:
    """Runs the grid as one Hydra multirun in a child process, logs its wall time; returns its exit code.
    `timing`: then time every cell in one process when the file checks a timing (off for a pilot's cells)."""
    abl = under_debug(abl, args)
    overrides = abl.overrides() + launch_defaults(args) + reuse_policy(abl, args) + list(args)
    check_command_line(["-m", *overrides])  # every cell's config is valid before anything is written
    cmd = [sys.executable, "-m", "vlmlab.train", "-m", *overrides]
    print(f"[vlmlab] ablation {abl.name} ({abl.finding}): {' '.join(cmd[3:])}", flush=True)
    started, t0 = datetime.datetime.now().astimezone().isoformat(timespec="seconds"), time.time()
    code = subprocess.run(cmd, cwd=repo_root()).returncode
    log = Path(runs_root_of(args, abl.scale)) / "sweeps.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:  # one short line per sweep, appended
        f.write(json.dumps({"ablation": abl.name, "started": started, "wall_time_s": round(time.time() - t0, 1),
                            "machine": machine_name(), "args": " ".join(cmd[4:]), "exit_code": code}) + "\n")
    if timing and any(metric(c.metric).kind == "timing" for c in abl.checks):  # timings from one process, not the sweep's
        folder = abl.path.parent if abl.path else ABLATIONS
        timer = [sys.executable, "-m", "vlmlab.timing", abl.name, "--runs", str(log.parent), "--ablations", str(folder)]
        print(f"[vlmlab] isolated timing of every cell: {' '.join(timer[2:])}", flush=True)
        subprocess.run(timer, cwd=repo_root(), check=False)
    return code


def report_folder(runs_root: str, scale: str = "base") -> str:
    """Where a sweep's report goes (relative to the repository): results/ for runs/, results/<scale>/ for runs/<scale>
    (a scale file's default root), else <runs_root>/results beside the runs."""
    return ("results" if runs_root == "runs" else f"results/{scale}" if runs_root == f"runs/{scale}"
            else str(Path(runs_root) / "results"))


def regenerate_report(args: list[str], folder: Path, scale: str = "base") -> None:
    """`python -m vlmlab.report` over the runs of the ablation files in `folder` (or of one file), in this process
    (a fresh one would import torch and transformers again: ~7 s); a report that fails is printed and does not
    change the sweep's exit code. The base scale's runs (runs/) report into results/, another scale's
    (runs/<scale>) into results/<scale>/, judged by the calibrations under results/ too; a sweep filed elsewhere
    (runs_root=...) reports beside its runs, into <runs_root>/results."""
    from vlmlab.report.__main__ import main as report

    runs_root = runs_root_of(args, scale)
    out = report_folder(runs_root, scale)
    root = repo_root()  # the sweep ran there: its runs' relative paths are the repository's
    argv = ["--runs", str(root / runs_root), "--ablations", str(Path(folder).resolve()), "--out", str(root / out)]
    if out == f"results/{scale}":
        argv += ["--calibrations", str(root / "results")]
    print(f"[vlmlab] regenerating tables and report: vlmlab.report {' '.join(argv)}", flush=True)
    try:
        report(argv)
    except SystemExit as e:  # the report's one-line error for a bad ablation file
        print(e, file=sys.stderr)
    except Exception:  # noqa: BLE001 - the runs are on disk: `make report` regenerates once the cause is fixed
        traceback.print_exc()
        print("[vlmlab] the report failed; the runs are kept: fix the cause, then `make report`", file=sys.stderr)


def _take(args: list[str], flag: str) -> str | None:
    """Removes `flag VALUE` from args and returns VALUE (None if absent; ConfigError if VALUE is missing)."""
    if flag not in args:
        return None
    i = args.index(flag)
    if i + 1 >= len(args):
        raise ConfigError(f"{flag} needs a value")
    value = args[i + 1]
    del args[i:i + 2]
    return value


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(f"usage: python -m vlmlab.ablate NAME [--ablations DIR] [--seeds 0,1] [overrides]; NAME is a file or one "
              f"of: {', '.join(available(ABLATIONS))}, all", file=sys.stderr)
        return 2
    name, args = argv[0], argv[1:]
    try:
        given = _take(args, "--ablations")
        folder = Path(given or (Path(name).parent if name.endswith((".yaml", ".yml")) else ABLATIONS))
        seeds_arg = _take(args, "--seeds")  # a quick pass with fewer seeds than the file's (e.g. the real-LM example)
        try:
            seeds = [int(s) for s in seeds_arg.split(",")] if seeds_arg else None
        except ValueError:
            raise ConfigError("--seeds takes a comma-separated list of integers, e.g. --seeds 0,1") from None
        cells = _take(args, "--cells") or "all"
        if cells not in ("all", "primary"):
            raise ConfigError(f"--cells takes `all` or `primary`, not {cells!r}")
        studies = [load(n, folder) for n in (findings_run(folder) if name == "all" else [name])]
        for abl in studies:
            abl.seeds = seeds or abl.seeds
        at = [a for a in args if override_key(a) == "scale"]
        if at and any(abl.scale != "base" for abl in studies):  # a scale file's cells carry scale=<its scale>
            if any(a != f"scale={abl.scale}" for a in at for abl in studies):
                raise ConfigError(f"{' '.join(at)}: a scale file runs at its own `scale:`; leave scale= off the "
                                  "command line")
            args = [a for a in args if a not in at]
        if cells == "primary":
            codes = [run_ablation(one, args, timing=False) for abl in studies for one in pinned_cells(abl)] or [0]
        else:
            codes = [run_ablation(abl, args) for abl in studies]
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    scales = {abl.scale for abl in studies}
    if len(scales) > 1:  # one report per runs root: the scales' reports are compared by vlmlab.report.scale
        print(f"[vlmlab] these files run at several scales ({', '.join(sorted(scales))}): run `make report` per scale",
              file=sys.stderr)
        return max(codes)
    # a file named by its path reports alone: its folder may hold plans that are not ablation files (calibration/)
    regenerate_report(args, Path(name) if name.endswith((".yaml", ".yml")) and not given else folder, scales.pop())
    return max(codes)


if __name__ == "__main__":
    sys.exit(main())
