"""Metric metadata: for every number a check can compare, which direction is better and what kind it is.

Kinds decide the statistic a verdict may use (the report's verdict logic reads them):
  quality        a score of the trained model (task scores, avg, final loss): noisy across seeds
  timing         a measurement of the machine (time, throughput, memory): noisy across runs and loads.
                 source "run": the run's own clock and RSS, taken while another cell shares the cores (shown,
                 comparable only within one sweep); source "isolated": timing.py's measurement after the sweep,
                 every cell's model in one process, interleaved, beside an A/A twin (what speed checks use)
  deterministic  a quantity fixed by the architecture (parameters, visual tokens): a fact, not a sample
  event          a 0/1 outcome per run (divergence): a count over seeds

Task metrics (one per registered task, and `latency_ms/<task>`) come from the task registry; the rest
are listed here. `metric("name")` raises ConfigError for a name nobody registered.
"""
from __future__ import annotations

from dataclasses import dataclass

from vlmlab.contract.errors import ConfigError

KINDS = ("quality", "timing", "deterministic", "event")


@dataclass(frozen=True)
class Metric:
    name: str
    direction: int          # +1: higher is better, -1: lower is better
    kind: str               # quality | timing | deterministic | event
    unit: str = ""          # for tables and axis labels
    column: str = ""        # the seeds-table column it is read from (default: the name)
    source: str = "run"     # run: summary.json of each seed | isolated: <runs>/<ablation>/timing.csv (timing.py)

    def __post_init__(self):
        if self.direction not in (1, -1) or self.kind not in KINDS or self.source not in ("run", "isolated"):
            raise ValueError(f"metric {self.name}: direction must be +1/-1, kind one of {KINDS}, source run|isolated")

    @property
    def col(self) -> str:
        return self.column or self.name


_FIXED = [
    Metric("avg", +1, "quality", "points"),
    Metric("final_train_loss", -1, "quality", "nats"),
    Metric("train_samples_per_s", +1, "timing", "samples/s"),
    Metric("train_time_s", -1, "timing", "s"),
    Metric("wall_time_s", -1, "timing", "s"),
    Metric("peak_memory_mb", -1, "timing", "MB"),
    Metric("eval_latency_ms", -1, "timing", "ms"),
    Metric("isolated_step_ms", -1, "timing", "ms", column="step_ms", source="isolated"),  # CPU ms, 1 thread
    Metric("total_params", -1, "deterministic", "parameters"),
    Metric("params", -1, "deterministic", "parameters", column="total_params"),
    Metric("trainable_params", -1, "deterministic", "parameters"),
    Metric("visual_tokens_per_image", -1, "deterministic", "tokens"),
    Metric("flops_per_train_sample", -1, "deterministic", "FLOPs"),
    Metric("flops_per_generated_token", -1, "deterministic", "FLOPs"),
    Metric("activation_mb_per_sample", -1, "deterministic", "MB"),
    Metric("diverged", -1, "event", "share of seeds"),
]
_EXTRA: dict[str, Metric] = {}


def register_metric(m: Metric) -> Metric:
    """Add a metric that is not a task's (a task's score and latency are registered with the task)."""
    _EXTRA[m.name] = m
    return m


def registry() -> dict[str, Metric]:
    """Every known metric by name: the fixed ones, each task's score and latency, and registered extras."""
    from vlmlab.contract.tasks import tasks

    out = {m.name: m for m in _FIXED}
    for t in tasks().values():
        out[t.name] = Metric(t.name, +1, "quality", t.unit)
        out[f"latency_ms/{t.name}"] = Metric(f"latency_ms/{t.name}", -1, "timing", "ms")
    return {**out, **_EXTRA}


def metric(name: str) -> Metric:
    known = registry()
    if name not in known:
        raise ConfigError(f"unknown metric {name!r}; allowed: {', '.join(known)}")
    return known[name]


def names(kind: str) -> list[str]:
    """The seeds-table columns of every metric of one kind (aliases excluded)."""
    return list(dict.fromkeys(m.col for m in registry().values()
                              if m.kind == kind and not m.column and m.source == "run"))
