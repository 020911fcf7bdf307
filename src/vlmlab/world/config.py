"""WorldConfig: the knobs of the toy world's data (conf/data/toy.yaml holds exactly these fields).

The knowledge base (kinds, facts, held-out kinds) is *not* configurable: it is a constant of the
generator version, because the zoo's language models were pretrained on its facts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vlmlab.paths import cache_root  # noqa: F401 -- the world's data and zoo live under it

GENERATOR_VERSION = "world-v1"  # bump when scenes, questions or the knowledge base change
TASKS = ("vqa", "textvqa", "okvqa", "caption")
SPLITS = ("train", "validation", "test")


@dataclass
class WorldConfig:
    seed: int = 0  # root seed; every sample is a pure function of (seed, task, split, index)
    tasks: list[str] = field(default_factory=lambda: list(TASKS))  # tasks in the mixture
    train_size: int = 3000  # samples per task in the train split
    validation_size: int = 100  # samples per task in the validation split
    test_size: int = 300  # samples per task in the test split
    long_side_min: int = 160  # canvas long side, pixels (drawn uniformly)
    long_side_max: int = 320  # canvas long side, pixels
    max_aspect: float = 3.0  # width/height drawn log-uniformly in [1/max_aspect, max_aspect]
    min_objects: int = 2  # objects per vqa / caption scene
    max_objects: int = 5  # objects per vqa / caption scene (textvqa / okvqa use 1..3)
    word_prob: float = 0.25  # chance that a vqa / okvqa / caption scene also shows a distractor word
    word_height: float = 0.05  # font size of a word as a fraction of the canvas long side

    def __post_init__(self) -> None:
        bad = [t for t in self.tasks if t not in TASKS]
        if bad:
            raise ValueError(f"unknown world tasks {bad}; choose from {TASKS}")
        if not 1 <= self.min_objects <= self.max_objects <= 5:
            raise ValueError("need 1 <= min_objects <= max_objects <= 5")
        if not 32 <= self.long_side_min <= self.long_side_max:
            raise ValueError("need 32 <= long_side_min <= long_side_max")
        if self.max_aspect < 1.0:
            raise ValueError("max_aspect must be >= 1")

    def split_size(self, split: str) -> int:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
        return {"train": self.train_size, "validation": self.validation_size, "test": self.test_size}[split]

    def scene_hash(self) -> str:
        """Key of everything that changes a sample's content (sizes and the task list do not)."""
        keys = {k: v for k, v in asdict(self).items() if not k.endswith("_size") and k != "tasks"}
        blob = json.dumps({"version": GENERATOR_VERSION, **keys}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def load_world_config(path: str | Path) -> WorldConfig:
    """Read a conf/data/*.yaml file into a WorldConfig (unknown keys are an error)."""
    from omegaconf import OmegaConf

    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    return WorldConfig(**raw)
