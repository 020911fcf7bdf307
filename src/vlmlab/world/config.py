"""WorldConfig: the knobs of the toy world's data (conf/data/toy.yaml holds exactly these fields).

The knowledge base (kinds, facts, held-out kinds) is *not* configurable: it is a constant of the
generator version, because the zoo's language models were pretrained on its facts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vlmlab.contract.errors import ConfigError
from vlmlab.contract.schema import knob
from vlmlab.paths import cache_root  # noqa: F401 -- the world's data and zoo live under it

GENERATOR_VERSION = "world-v3-rc1"  # bump when scenes, questions, the knowledge base or the zoo's pretraining change
# A scale whose world and zoo stay at an earlier version until they are rebuilt: the large scale is world v2's
# (conf/scale/large.yaml pins v2's script, word height and grain; its zoo pack, results/zoo_large, was built by
# world-v2-rc3). docs/world.md, "The v3 freeze", item 6.
SCALE_VERSIONS = {"large": "world-v2-rc3"}
# World v2's knobs where v3 changed them (world-v2-rc3: docs/world.md, "World v2 frozen"): the one place that names
# them. The large scale's world (conf/scale/large.yaml: these, with canvases x 4/3), VisionSpec's defaults (the
# large zoo's tower and the pre-studies'), the golden runs and `bench --views` read them; WorldConfig(**WORLD_V2).
WORLD_V2 = {"long_side_min": 160, "long_side_max": 320, "script": "grey2x2", "word_height": 0.024, "grain": 0.0}
DEFAULT_TASKS = ("vqa", "textvqa", "okvqa", "caption")  # the paper's four; any registered task may be listed
SPLITS = ("train", "validation", "test")


def generator_version(scale: str | None = "base") -> str:
    """The generator version a scale's world and zoo are built by: GENERATOR_VERSION, unless SCALE_VERSIONS holds
    the scale at an earlier one."""
    return SCALE_VERSIONS.get(scale or "base", GENERATOR_VERSION)


def world_id(scale: str | None = "base") -> str:
    """The world a run ran in, as summary.json records it and a calibration's controls.csv names it: the base
    scale's generator version, "<its version>@<scale>" at another (its canvases and zoo differ, so a large-scale run
    is judged by the large scale's own calibration)."""
    return GENERATOR_VERSION if scale in (None, "", "base") else f"{generator_version(scale)}@{scale}"


@dataclass
class WorldConfig:
    seed: int = 0  # root seed; every sample is a pure function of (seed, task, split, index)
    tasks: list[str] = field(default_factory=lambda: list(DEFAULT_TASKS))  # tasks in the mixture (registered names)
    train_size: int = knob(3000, ge=1)  # samples per task in the train split
    validation_size: int = knob(100, ge=1)  # samples per task in the validation split
    test_size: int = knob(300, ge=1)  # samples per task in the test split
    long_side_min: int = knob(720, ge=32)  # canvas long side, pixels (drawn uniformly; world v2: 160-320)
    long_side_max: int = knob(960, ge=32)  # canvas long side, pixels
    max_aspect: float = knob(3.0, ge=1.0)  # width/height drawn log-uniformly in [1/max_aspect, max_aspect]
    min_objects: int = knob(2, ge=1, le=5)  # objects per vqa / caption scene
    max_objects: int = knob(5, ge=1, le=5)  # objects per vqa / caption scene (textvqa / okvqa use 1..3)
    word_prob: float = knob(0.25, ge=0.0, le=1.0)  # chance that a vqa / okvqa / caption scene also shows a distractor word
    word_height: float = knob(0.018, gt=0.0, le=0.5)  # height of a word (one glyph's side of cells) as a fraction of the canvas long side (world v2: 0.024)
    script: str = "binary4x4"  # how letters are drawn (world/script.py): binary4x4 (world v3) | grey2x2 (world v2)
    grain: float = knob(8.0, ge=0.0)  # Gaussian grain (SD, grey levels) on every view the encoder sees, after its resize, fixed per view (images.py); 0 = none (world v2)

    def __post_init__(self) -> None:
        from vlmlab.contract.tasks import get_task

        if not self.tasks:
            raise ConfigError("data.tasks=[] is not allowed; allowed: a list of registered task names")
        for t in self.tasks:
            try:
                get_task(t)
            except ConfigError as e:
                raise ConfigError(f"data.tasks: {e}") from None
        if len(set(self.tasks)) != len(self.tasks):
            raise ConfigError(f"data.tasks={self.tasks} lists a task twice")
        if not self.min_objects <= self.max_objects:
            raise ConfigError(f"data: need min_objects ({self.min_objects}) <= max_objects ({self.max_objects})")
        from vlmlab.world.script import get_script

        try:
            get_script(self.script)
        except ConfigError as e:
            raise ConfigError(f"data.script: {e}") from None
        if not self.long_side_min <= self.long_side_max:
            raise ConfigError(f"data: need long_side_min ({self.long_side_min}) <= long_side_max ({self.long_side_max})")

    def split_size(self, split: str) -> int:
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; choose from {SPLITS}")
        return {"train": self.train_size, "validation": self.validation_size, "test": self.test_size}[split]

    def scene_hash(self) -> str:
        """Key of everything that changes a sample's content (sizes, the task list and the grain, which the image
        pipeline adds to the views, do not)."""
        keys = {k: v for k, v in asdict(self).items() if not k.endswith("_size") and k not in ("tasks", "grain")}
        blob = json.dumps({"version": GENERATOR_VERSION, **keys}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def load_world_config(path: str | Path) -> WorldConfig:
    """Read a conf/data/*.yaml file into a WorldConfig (unknown keys are an error)."""
    from omegaconf import OmegaConf

    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    return WorldConfig(**raw)
