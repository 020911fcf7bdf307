"""Runs that need no training: a finished folder, or an identical experiment already run elsewhere.

A run is finished exactly when its summary.json exists, and running it again does nothing. A run whose
config equals a finished run's under the same runs_root (every field except where it is filed), made by
the same clean commit, is the same experiment: the baseline recurs across findings. Its files are copied
under the new folder with `reused_from` in the summary instead of training twice (`reuse_finished=false`
turns this off; the sweep runner does so for ablations that check timings).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from omegaconf import OmegaConf

from vlmlab.config import Config, repo_root
from vlmlab.contract.run import CONFIG, METRICS, PREDICTIONS, SUMMARY, identity, seed_dir
from vlmlab.paths import git_commit
from vlmlab.tracking import write_json_atomic, write_text_atomic


def find_twin(cfg: Config) -> Path | None:
    """A finished run elsewhere under runs_root with the identical config, made by the same clean commit."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # several ranks would copy at once: train instead
        return None
    commit = git_commit(repo_root())
    if not cfg.reuse_finished or not commit or commit.endswith("-dirty"):
        return None
    me, here, root = identity(asdict(cfg)), Path(cfg.run_dir).resolve(), Path(cfg.runs_root).resolve()
    if not here.is_relative_to(root):  # only runs filed in the sweep layout stand in for each other
        return None
    for path in sorted(Path(cfg.runs_root).glob(f"*/*/{seed_dir(cfg.seed)}/{SUMMARY}")):
        if path.parent.resolve() == here:
            continue
        other = json.loads(path.read_text())
        if other.get("git_commit") == commit and not other.get("reused_from") and identity(other["config"]) == me:
            return path.parent
    return None


def copy_twin(twin: Path, cfg: Config) -> dict:
    """Files the twin's results under this run's folder: the same experiment is not trained twice."""
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / CONFIG, OmegaConf.to_yaml(OmegaConf.create(asdict(cfg))))
    for name in (METRICS, PREDICTIONS):
        if (twin / name).exists():
            write_text_atomic(run_dir / name, (twin / name).read_text())
    summary = json.loads((twin / SUMMARY).read_text())
    summary.update(config=asdict(cfg), reused_from=os.path.relpath(twin, run_dir))
    write_json_atomic(run_dir / SUMMARY, summary)
    print(f"[vlmlab] {run_dir}: identical to the finished run {twin}: its results are reused")
    return summary


def finished_or_reused(cfg: Config) -> dict | None:
    """The summary of a run that needs no training (its own, or a twin's now filed here); None to train."""
    run_dir = Path(cfg.run_dir)
    if (run_dir / SUMMARY).exists():
        done = json.loads((run_dir / SUMMARY).read_text())
        if not (done.get("reused_from") and not cfg.reuse_finished):
            print(f"[vlmlab] {run_dir} is finished (summary.json exists): skipping")
            return done
        print(f"[vlmlab] {run_dir} holds results reused from {done['reused_from']}; reuse is off: training it")
        (run_dir / SUMMARY).unlink(missing_ok=True)
    twin = find_twin(cfg)
    return copy_twin(twin, cfg) if twin is not None else None
