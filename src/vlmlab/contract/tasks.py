"""The task registry: one `Task` per task, holding everything that differs between tasks.

A task is its toy-world sample maker, its prompt layout, its answer normalisation and metric, the answer a
few-shot example shows, and the real benchmark it stands for. Data, evaluation, the benchmark loaders and
the report ask the registry instead of naming tasks. The paper's four (vqa, textvqa, okvqa, caption) are
registered by `vlmlab.tasks`; a new one is a `register_task(Task(...))` in any module that runs before the
config is validated (a plugin, `plugins=[my_tasks]`), plus its name in the world's task list.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Optional

from vlmlab.contract.errors import ConfigError


def most_common(answers: list[str]) -> str:
    """The most frequent gold answer (ties: the first)."""
    return Counter(answers).most_common(1)[0][0]


def first(answers: list[str]) -> str:
    return answers[0]


@dataclass(frozen=True)
class Task:
    name: str                                               # the task's key in configs, metrics and reports
    make_sample: Callable[..., Any]                         # (rng, world_cfg, sample_id, split) -> world Sample
    score: Callable[[list[str], list[list[str]]], float]    # (predictions, gold answer lists) -> score
    prompt: Callable[[str], str] = lambda q: f"Question: {q} Answer:"  # question -> the text after the image
    normalize: Callable[[str], str] = lambda a: a           # answer normalisation the metric applies
    shot_answer: Callable[[list[str]], str] = most_common   # the answer a few-shot example shows
    target: Callable[[list[str]], str] = first              # the answer a training sample is supervised with
    benchmark: Optional[Any] = None                         # benchmarks.BenchmarkSpec of the real dataset
    unit: str = "%"                                         # of the score
    description: str = ""                                   # one line for docs and reports
    item_scores: Optional[Callable[[list[str], list[list[str]]], list[float]]] = None  # per-question scores whose
                                                            # mean is `score` (report/noise.py); None: not split


_REGISTRY: dict[str, Task] = {}
_builtins_loaded = False


def register_task(task: Task) -> Task:
    """Add (or replace) a task; its score and latency become metrics the checks may name."""
    _REGISTRY[task.name] = task
    return task


def tasks() -> dict[str, Task]:
    """Every registered task by name, the built-in four first."""
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        import vlmlab.tasks  # noqa: F401 -- registers vqa, textvqa, okvqa, caption
    return dict(_REGISTRY)


def task_names() -> list[str]:
    return list(tasks())


def get_task(name: str) -> Task:
    known = tasks()
    if name not in known:
        raise ConfigError(f"unknown task {name!r}; allowed: {', '.join(known)} (register more with register_task)")
    return known[name]
