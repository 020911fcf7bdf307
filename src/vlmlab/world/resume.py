"""Resumable pretraining: a zoo run's whole training state, saved every few steps, so a run that a session's end
or a crash stops continues where it stopped and ends bit-identical to one that never stopped.

    state = TrainState(path, every=50, model=model, opt=opt, gen=gen)
    start, extra = state.load()                  # 0, {} for a fresh run
    for step in range(start, steps):
        ...
        state.save(step + 1, steps, extra={...})   # every `every` steps, atomically; never at the last step
    state.clear()

Saved: every object's state_dict (a torch.Generator's get_state), the global torch RNG (dropout draws from
it), the number of steps done and a dict of plain values (an LM's data order and position, the seconds spent).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch


class TrainState:
    def __init__(self, path: str | Path | None, every: int = 50, **objects):
        self.path = Path(path) if path else None
        self.every = every
        self.objects = objects
        self.t0, self.before = time.time(), 0.0

    def load(self) -> tuple[int, dict]:
        """(steps done, extra) of a saved state, restoring every object; (0, {}) when there is none."""
        if self.path is None or not self.path.exists():
            return 0, {}
        blob = torch.load(self.path, map_location="cpu", weights_only=True)
        for name, obj in self.objects.items():
            state = blob["objects"][name]
            obj.set_state(state) if isinstance(obj, torch.Generator) else obj.load_state_dict(state)
        torch.set_rng_state(blob["torch_rng"])
        self.before = float(blob.get("seconds", 0.0))
        print(f"[zoo] resuming {self.path.parent.name} at step {blob['step']} ({self.path})", flush=True)
        return int(blob["step"]), dict(blob.get("extra") or {})

    def seconds(self) -> float:
        """Training seconds over every process of this run."""
        return self.before + time.time() - self.t0

    def save(self, step: int, steps: int, extra: dict | None = None) -> None:
        """Save after `step` steps when it is a multiple of `every` (and not the last: the run then finishes)."""
        if self.path is None or step % self.every or step >= steps:
            return
        objects = {n: (o.get_state() if isinstance(o, torch.Generator) else o.state_dict())
                   for n, o in self.objects.items()}
        tmp = self.path.with_suffix(".tmp")
        torch.save({"step": step, "objects": objects, "torch_rng": torch.get_rng_state(), "extra": extra or {},
                    "seconds": self.seconds()}, tmp)
        os.replace(tmp, self.path)

    def clear(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def saved_seconds(path: str | Path) -> float:
    """The training seconds a saved state records (0 without one): a resumed build's clock starts there."""
    path = Path(path)
    if not path.exists():
        return 0.0
    return float(torch.load(path, map_location="cpu", weights_only=True).get("seconds", 0.0))
