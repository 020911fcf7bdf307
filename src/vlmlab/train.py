"""Train and evaluate one VLM from the command line (the work itself, phase by phase, is runner.py).

    python -m vlmlab.train [group=option ...] [key=value ...]     one run, folder runs/<name>/<cell>/seed<seed>
    python -m vlmlab.train -m connector=mlp,perceiver seed=0,1,2  a Hydra multirun sweep

A run is finished exactly when its summary.json exists; running a finished cell again does nothing. A run
interrupted at any point (SIGTERM saves a checkpoint first; SIGKILL loses at most checkpoint_every steps)
resumes from its latest checkpoint and ends with the same metrics as an uninterrupted run. A mistake in the
config or the files (contract.errors.UserError) ends the run with one line naming it, and no summary.json.

This file imports no transformers, peft or datasets at the top (~6 s; torch comes with the config's parts): a
sweep's parent process only composes and launches, and a mistake on the command line is named in about 4 s, not
10. The process that trains imports runner.py.
"""
from __future__ import annotations

import sys
import traceback
from pathlib import Path

from omegaconf import open_dict

from vlmlab.config import Config, check_command_line, repo_root, to_config
from vlmlab.contract.errors import ConfigError, UserError, one_line
from vlmlab.contract.run import CONFIG, FAILED
from vlmlab.tracking import write_json_atomic


def run_or_record(cfg: Config, multirun: bool) -> None:
    """Runs one cell. A crash is recorded in failed.json so a sweep goes on (and a rerun retries it); a user's
    mistake ends a single run with one line (exit 1), removing the folder if this call made it for nothing."""
    run_dir = Path(cfg.run_dir)
    fresh = not (run_dir / CONFIG).exists()  # no run started here before: only Hydra's job log may be there
    try:
        from vlmlab.runner import run  # torch, transformers, datasets: imported by the process that trains

        run(cfg)
    except UserError as e:
        if multirun:
            write_json_atomic(run_dir / FAILED, {"error": f"{type(e).__name__}: {one_line(e)}", "traceback": ""})
            print(f"[vlmlab] {run_dir} FAILED: {one_line(e)}", file=sys.stderr)
            return
        from vlmlab import checkpoint

        if fresh and not checkpoint.find(run_dir):  # leave no folder behind for a run that never started
            for made in [run_dir / CONFIG, *run_dir.glob("*.log")]:
                made.unlink(missing_ok=True)
            if run_dir.is_dir() and not any(run_dir.iterdir()):
                run_dir.rmdir()
        sys.exit(f"error: {one_line(e)}")
    except Exception as e:
        write_json_atomic(run_dir / FAILED, {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()})
        print(f"[vlmlab] {run_dir} FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        if not multirun:
            raise


def _hydra_entry():
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    @hydra.main(config_path=str(repo_root() / "conf"), config_name="config", version_base="1.3")
    def _main(raw) -> None:
        with open_dict(raw):
            raw.run_dir = HydraConfig.get().runtime.output_dir
        try:
            cfg = to_config(raw)
        except ConfigError as e:
            out = Path(raw.run_dir)
            if out.is_dir() and not any(out.iterdir()):
                out.rmdir()
            sys.exit(f"config error: {e}")
        run_or_record(cfg, multirun=HydraConfig.get().mode == RunMode.MULTIRUN)

    _main()


def main() -> None:
    try:
        check_command_line(sys.argv[1:])
    except ConfigError as e:
        sys.exit(f"config error: {e}")
    _hydra_entry()


if __name__ == "__main__":
    main()
