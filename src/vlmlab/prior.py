"""The prior baseline: what a task scores with no image and no model, answering every question with the most
common training answer of its question type.

    python -m vlmlab.prior [overrides]      # prints the prior score of every task of the composed data config

It is the floor a vision-language model must clear before its score says anything about vision: a task
whose trained model sits at its prior (or at its blind control, `image.blind=true`, the same recipe trained
and evaluated on blank pictures) does not measure seeing. Computed from the world's train split (the
training target of each sample, `Task.target`, normalised as the metric normalises it) and scored on the
split the evaluation uses, with the task's own metric. A pure function of the data config: the report
computes it beside every task score.
"""
from __future__ import annotations

import sys
from collections import Counter, defaultdict
from dataclasses import asdict
from functools import lru_cache

from vlmlab.contract.tasks import get_task
from vlmlab.world.config import WorldConfig
from vlmlab.world.questions import make_sample

SPLIT_SIZE = {"train": "train_size", "validation": "validation_size", "test": "test_size"}


def prior_answers(world: WorldConfig, task: str) -> dict[str, str]:
    """Question type -> its most common training target (ties: the first seen); key "" is the overall one."""
    t = get_task(task)
    by_type: dict[str, Counter] = defaultdict(Counter)
    for i in range(world.train_size):
        s = make_sample(world, task, "train", i)
        answer = t.target(s.answers)
        by_type[s.qtype][answer] += 1
        by_type[""][answer] += 1
    return {q: c.most_common(1)[0][0] for q, c in by_type.items()}


def prior_score(world: WorldConfig, task: str, split: str = "test", max_samples: int | None = None) -> float:
    """The task's metric when every question of `split` gets its type's prior answer."""
    t = get_task(task)
    answers = prior_answers(world, task)
    n = getattr(world, SPLIT_SIZE[split])
    n = min(n, max_samples) if max_samples else n
    samples = [make_sample(world, task, split, i) for i in range(n)]
    preds = [answers.get(s.qtype, answers[""]) for s in samples]
    return float(t.score(preds, [s.answers for s in samples]))


@lru_cache(maxsize=16)
def _cached(world_key: tuple, split: str, max_samples: int | None) -> tuple[tuple[str, float], ...]:
    world = WorldConfig(**dict(world_key))
    return tuple((task, prior_score(world, task, split, max_samples)) for task in world.tasks)


def prior_scores(world: WorldConfig, split: str = "test", max_samples: int | None = None) -> dict[str, float]:
    """{task: prior score} for every task of the world config (cached per config)."""
    key = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in asdict(world).items()))
    return dict(_cached(key, split, max_samples))


def main(argv: list[str] | None = None) -> None:
    from vlmlab.config import compose

    cfg = compose(list(sys.argv[1:] if argv is None else argv))
    for task, score in prior_scores(cfg.data, cfg.eval.split, cfg.eval.max_samples).items():
        print(f"{task:<10} {score:6.2f}  (prior: the most common training answer per question type, no image)")


if __name__ == "__main__":
    main()
