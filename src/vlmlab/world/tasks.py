"""The data API: task splits and the multimodal training mixture as cached `datasets.Dataset`s.

Schema (docs/INTERFACES.md): id, task, image (datasets Image -> PIL RGB), question, answers.
The id also carries the question type: "vqa-test-000042-count". A split is cached at
$VLMLAB_CACHE/world/<scene_hash>/<task>-<split>-<n>/ (save_to_disk); sample i is the same for any n.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import datasets
from tqdm import tqdm

from vlmlab.contract.errors import ConfigError
from vlmlab.contract.tasks import get_task
from vlmlab.world.config import SPLITS, WorldConfig, cache_root
from vlmlab.world.questions import make_sample
from vlmlab.world.scenes import render

FEATURES = datasets.Features({
    "id": datasets.Value("string"),
    "task": datasets.Value("string"),
    "image": datasets.Image(),
    "question": datasets.Value("string"),
    "answers": datasets.Sequence(datasets.Value("string")),
})


def world_dir(cfg: WorldConfig) -> Path:
    return cache_root() / "world" / cfg.scene_hash()


def _png(img) -> dict:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": None}


def build_split(cfg: WorldConfig, task: str, split: str, n: int | None = None, progress: bool = True) -> datasets.Dataset:
    """Generate a split in memory (no cache)."""
    n = cfg.split_size(split) if n is None else n
    rows: dict[str, list] = {k: [] for k in FEATURES}
    for i in tqdm(range(n), desc=f"world {task}/{split}", disable=not progress, leave=False):
        s = make_sample(cfg, task, split, i)
        for k, v in (("id", s.id), ("task", s.task), ("image", _png(render(s.scene))),
                     ("question", s.question), ("answers", s.answers)):
            rows[k].append(v)
    return datasets.Dataset.from_dict(rows, features=FEATURES)


def load_split(cfg: WorldConfig, task: str, split: str) -> datasets.Dataset:
    """One task's split, generated on first use and cached on disk."""
    get_task(task)  # a registered task, or ConfigError naming them
    n = cfg.split_size(split)
    path = world_dir(cfg) / f"{task}-{split}-{n}"
    if not path.exists():
        ds = build_split(cfg, task, split, n)
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")  # per process: parallel cells may build it at once
        shutil.rmtree(tmp, ignore_errors=True)
        ds.save_to_disk(str(tmp))
        try:
            tmp.rename(path)  # atomic: a half-written split is never picked up
        except OSError:  # another process finished first: keep its copy
            shutil.rmtree(tmp, ignore_errors=True)
    return datasets.load_from_disk(str(path))


def load_mixture(cfg: WorldConfig, split: str = "train") -> datasets.Dataset:
    """The multimodal training mixture: the given split of every task in cfg.tasks, shuffled with cfg.seed.

    It plays the role of the paper's pretraining data (captions + questions); okvqa's train split only
    states facts of seen kinds, so held-out kinds' facts never reach the VLM through it.
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose from {SPLITS}")
    parts = [load_split(cfg, t, split) for t in cfg.tasks]
    return datasets.concatenate_datasets(parts).shuffle(seed=cfg.seed)
