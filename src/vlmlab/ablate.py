"""The sweep runner: `make ablation NAME=<name> [ARGS="<overrides>"]` runs one ablation file's grid.

An ablation file (ablations/<name>.yaml, format in docs/INTERFACES.md) holds one question: its grid of
config-group swaps and knobs, its seeds, and the orderings the verdict checks. The runner turns it into
one Hydra multirun (`python -m vlmlab.train -m ...`), so every cell lands in a deterministic folder
<runs_root>/<name>/<cell>/seed<k>; finished cells are skipped, failed ones recorded and retried on the
next run, and the tables and the report are regenerated at the end. `NAME=all` runs every file.

An ablation changes only its own axis: keys that set steps, sizes, data, evaluation or the debug profile
are refused, so `ARGS="debug=smoke"` always wins.

On a machine without CUDA the cells run two at a time with one thread each (`hydra/launcher=local
threads=1`, the fastest use of a 2-core CPU) unless the command line names a launcher or threads.
A cell identical to a finished run of another ablation (the baseline recurs across findings) reuses
its results (reuse.py, `reuse_finished`), except in an ablation that checks a timing (samples/s,
latency, memory): timings compare only within one sweep, so there every cell trains itself. Each
sweep's wall time and machine are appended to <runs_root>/sweeps.jsonl for the report.
"""
from __future__ import annotations

import datetime
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from vlmlab.config import ConfigError, check_command_line, compose, repo_root
from vlmlab.perf import machine_name

ABLATIONS = repo_root() / "ablations"
FORBIDDEN = ("optim.max_steps", "optim.batch_size", "optim.grad_accum", "optim.warmup_steps", "data", "eval",
             "debug", "experiment", "name", "seed", "runs_root", "run_dir", "hydra", "logger", "connector.depth", "image.size", "image.min_size", "image.max_size")


@dataclass
class Ablation:
    name: str
    finding: str
    question: str
    paper: dict
    grid: dict[str, str]
    seeds: list[int]
    metrics: list[str]
    checks: list[dict]
    fixed: list[str] = field(default_factory=list)

    def overrides(self) -> list[str]:
        """The multirun's overrides: fixed ones, then one swept key per grid entry, then the seeds."""
        return ([f"name={self.name}", *self.fixed] + [f"{k}={v}" for k, v in self.grid.items()]
                + [f"seed={','.join(map(str, self.seeds))}"])


def available() -> list[str]:
    return sorted(p.stem for p in ABLATIONS.glob("*.yaml"))


def load(name: str) -> Ablation:
    path = ABLATIONS / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"unknown ablation {name!r}; available: {', '.join(available())}, all")
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    abl = Ablation(name=name, **raw)
    for key in list(abl.grid) + [o.split("=")[0].lstrip("+~") for o in abl.fixed]:
        if any(key == f or key.startswith(f + ".") for f in FORBIDDEN):
            raise ConfigError(f"ablations/{name}.yaml sets {key!r}: an ablation changes only its own axis, "
                              "never steps, sizes, data, evaluation or the debug profile")
    if len(abl.seeds) < 1 or not abl.checks:
        raise ConfigError(f"ablations/{name}.yaml needs seeds and at least one check")
    return abl


def _named(args: list[str]) -> set[str]:
    """The keys the command line sets ('+a.b=1' -> 'a.b')."""
    return {a.split("=", 1)[0].lstrip("+~") for a in args}


def launch_defaults(args: list[str]) -> list[str]:
    """Two cells at a time with one thread each on a CPU-only machine, unless the command line says otherwise."""
    import torch

    if torch.cuda.is_available():
        return []
    return [d for d in ("hydra/launcher=local", "threads=1") if d.split("=", 1)[0] not in _named(args)]


TIMED = ("train_samples_per_s", "train_time_s", "wall_time_s", "peak_memory_mb", "eval_latency_ms", "latency_ms/")


def reuse_policy(abl: Ablation, args: list[str]) -> list[str]:
    """Timings are comparable only within one sweep (same machine, same load): an ablation that checks a
    timing trains every cell itself rather than reusing a run another sweep timed."""
    timed = any(str(c.get("metric", "")).startswith(TIMED) for c in abl.checks)
    return ["reuse_finished=false"] if timed and "reuse_finished" not in _named(args) else []


def run_ablation(abl: Ablation, args: list[str]) -> int:
    """Runs the grid as one Hydra multirun in a child process, logs its wall time; returns its exit code."""
    overrides = abl.overrides() + launch_defaults(args) + reuse_policy(abl, args) + list(args)
    check_command_line(["-m", *overrides])  # every cell's config is valid before anything is written
    cmd = [sys.executable, "-m", "vlmlab.train", "-m", *overrides]
    print(f"[vlmlab] ablation {abl.name} ({abl.finding}): {' '.join(cmd[3:])}", flush=True)
    started, t0 = datetime.datetime.now().astimezone().isoformat(timespec="seconds"), time.time()
    code = subprocess.run(cmd, cwd=repo_root()).returncode
    log = Path(compose([a for a in args if not a.startswith(("-", "hydra"))]).runs_root) / "sweeps.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:  # one short line per sweep, appended
        f.write(json.dumps({"ablation": abl.name, "started": started, "wall_time_s": round(time.time() - t0, 1),
                            "machine": machine_name(), "args": " ".join(cmd[4:]), "exit_code": code}) + "\n")
    return code


def regenerate_report(args: list[str]) -> None:
    runs_root = compose([a for a in args if not a.startswith(("-", "hydra"))]).runs_root
    out = "results" if runs_root == "runs" else str(Path(runs_root) / "results")
    cmd = [sys.executable, "-m", "vlmlab.report", "--runs", runs_root, "--out", out]
    print(f"[vlmlab] regenerating tables and report: {' '.join(cmd[2:])}", flush=True)
    subprocess.run(cmd, cwd=repo_root(), check=False)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(f"usage: python -m vlmlab.ablate NAME [--seeds 0,1] [overrides]; NAME is one of: "
              f"{', '.join(available())}, all",
              file=sys.stderr)
        return 2
    name, args = argv[0], argv[1:]
    seeds = None
    if "--seeds" in args:  # a quick pass with fewer seeds than the file's (e.g. the real-LM example)
        i = args.index("--seeds")
        try:
            seeds = [int(s) for s in args[i + 1].split(",")]
        except (IndexError, ValueError):
            print("error: --seeds takes a comma-separated list of integers, e.g. --seeds 0,1", file=sys.stderr)
            return 2
        del args[i:i + 2]
    try:
        studies = [load(n) for n in (available() if name == "all" else [name])]
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for abl in studies:
        abl.seeds = seeds or abl.seeds
    codes = []
    for abl in studies:
        try:
            codes.append(run_ablation(abl, args))
        except ConfigError as e:
            print(f"config error: {e}", file=sys.stderr)
            return 2
    regenerate_report(args)
    return max(codes)


if __name__ == "__main__":
    sys.exit(main())
