"""summary.json: the typed record a finished run writes last (its existence means "done") and the report reads.

Field order is the file's key order. `Summary.load` reads summaries written by any earlier version (fields it
lacks take their defaults; fields it has that this version does not know are kept in `extra`).
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

STATUSES = ("finished", "diverged")  # what a summary can say; failed runs write failed.json instead


@dataclass
class Perf:
    train_samples_per_s: float = math.nan   # samples / training-step time (excludes evaluation)
    train_time_s: float = math.nan          # summed optimizer-step time
    peak_memory_mb: float = math.nan        # CPU: sampled process RSS; CUDA: max allocated
    eval_latency_ms: Optional[float] = None  # mean per-sample generation latency over the tasks (None: not evaluated)


@dataclass
class Summary:
    status: str                                   # finished | diverged
    metrics: dict[str, float]                     # every task's score, avg, latency_ms/<task>, eval_latency_ms
    final_train_loss: float
    first_losses: list[float]
    loss_history: list[float]
    diverged_at_step: Optional[int]
    steps_done: int
    params: dict[str, dict[str, int]]             # {component: {total, trainable}} and "all"
    visual_tokens_per_image: float                # mean over the run's first training pictures, at inference
    perf: Perf
    compute: dict = field(default_factory=dict)  # compute.py: flops_per_train_sample, flops_per_generated_token,
                                                 # activation_mb_per_sample (deterministic, on the model)
    skipped_samples: list[str] = field(default_factory=list)
    feature_store: Optional[dict] = None          # {hits, misses, evicted, path} when the feature store was on
    view_store: Optional[dict] = None             # the same for the view store (pictures; counted in the training
                                                  # process: with DataLoader workers, their loads are not counted)
    resumed: bool = False
    wall_time_s: float = math.nan
    device: str = ""
    torch_threads: int = 0
    machine: str = ""
    software: dict = field(default_factory=dict)  # perf.software(): package versions and CPU capability
    git_commit: Optional[str] = None
    world_version: Optional[str] = None           # the toy world it ran on, world_id (None: real benchmarks
                                                  # or a run made before the field existed)
    config: dict = field(default_factory=dict)    # the resolved config, as config.yaml
    reused_from: Optional[str] = None             # a reused run: the twin's folder, relative to this one
    extra: dict = field(default_factory=dict)     # keys written by another version, kept as they were

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        extra = out.pop("extra")
        if out["reused_from"] is None:
            out.pop("reused_from")
        return {**out, **extra}

    @classmethod
    def from_dict(cls, raw: dict) -> "Summary":
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        kw = {k: v for k, v in raw.items() if k in known}
        kw["perf"] = Perf(**{k: v for k, v in (raw.get("perf") or {}).items()
                             if k in {f.name for f in dataclasses.fields(Perf)}})
        for name, default in (("metrics", {}), ("final_train_loss", math.nan), ("first_losses", []),
                              ("loss_history", []), ("diverged_at_step", None), ("steps_done", 0), ("params", {}),
                              ("visual_tokens_per_image", math.nan)):
            kw.setdefault(name, default)
        kw.setdefault("status", "finished")
        return cls(**kw, extra={k: v for k, v in raw.items() if k not in known})

    @classmethod
    def load(cls, path: str | Path) -> "Summary":
        with open(path) as f:
            return cls.from_dict(json.load(f))

    def save(self, path: str | Path) -> None:
        from vlmlab.tracking import write_json_atomic

        write_json_atomic(path, self.to_dict())
