"""Run-folder I/O: atomic JSON writes, the metrics.jsonl log, and the wandb mirror (offline by default)."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write to a temp file in the same folder, fsync, then os.replace: readers see the old or the new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions of a new file
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | Path, obj) -> None:
    write_atomic(path, json.dumps(obj, indent=2, default=str))


write_text_atomic = write_atomic


def truncate_log(path: Path, last_step: int) -> None:
    """Drops the lines a resumed run will log again (steps after its checkpoint), and a torn last line."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= last_step:
                keep.append(line)
        except (ValueError, KeyError):
            continue
    write_text_atomic(path, "".join(k + "\n" for k in keep))


class Tracker:
    """Appends every log call to <run_dir>/metrics.jsonl and mirrors it to wandb when enabled."""

    def __init__(self, run_dir: Path, cfg, config_dict: dict, run_name: str, group: str, enabled: bool = True):
        self.path = Path(run_dir) / "metrics.jsonl" if enabled else None  # only rank 0 of a DDP run writes
        self.wandb = None
        if enabled and cfg.kind == "wandb" and cfg.mode != "disabled" and os.environ.get("WANDB_MODE") != "disabled":
            import wandb

            os.environ.setdefault("WANDB_SILENT", "true")
            run_id = hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]  # same folder, same run
            self.wandb = wandb.init(project=cfg.project, mode=cfg.mode, dir=str(run_dir), name=run_name, id=run_id,
                                    resume="allow", group=group, config=config_dict, reinit="finish_previous")

    def log(self, step: int, metrics: dict) -> None:
        if self.path is None:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")
        if self.wandb is not None:
            self.wandb.log(metrics, step=step)

    def finish(self, summary: dict | None = None) -> None:
        if self.wandb is not None:
            if summary:
                self.wandb.summary.update({k: v for k, v in summary.items() if isinstance(v, (int, float, str))})
            self.wandb.finish()
            self.wandb = None
