"""The zoo's specs: what each backbone run trains, at each world scale (base, large) and in the mini zoo of tests.

world/zoo.py builds, caches and locates them; a spec change that changes a backbone goes with a GENERATOR_VERSION bump
(world/config.py), since the cache is keyed by it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vlmlab.world.config import WorldConfig
from vlmlab.world.corpus import TOKENIZER_CORPUS, CorpusSpec
from vlmlab.world.lm import LMSpec
from vlmlab.world.pages import PagesSpec
from vlmlab.world.vision import VisionSpec


def v3_vision() -> VisionSpec:
    """World v3's tower (docs/world.md, "The v3 freeze", item 2): the recipe studies 13-16 settled on (study 13's
    v3_dw2), 2,400 steps with 32 text pages a step weighted 3 and the scenes' dense heads weighted 2, pretrained on
    the world's own scenes: its canvases, script, word height and view grain are the world's defaults."""
    world = WorldConfig()
    return VisionSpec(steps=2400, dense_weight=2.0, pages=PagesSpec(weight=3.0, script=world.script),
                      grain=world.grain, script=world.script, word_height=world.word_height,
                      long_side=(world.long_side_min, world.long_side_max),
                      checkpoints=(150, 300, 600, 900, 1200, 1800, 2400))


@dataclass
class ZooSpec:
    corpus: CorpusSpec = field(default_factory=lambda: CorpusSpec(okvqa_share=0.3))  # rc3: okvqa's form read too
    tokenizer_corpus: CorpusSpec = field(default_factory=lambda: TOKENIZER_CORPUS)
    # the LM learns its facts abruptly (rc3: recall 34% at 1,500 steps, 99% at 2,000): checkpoints close together
    # there give the pair rule a weak LM near the paper's gap
    lm: LMSpec = field(default_factory=lambda: LMSpec(checkpoints=(500, 1000, 1500, 1625, 1750, 1875, 2000, 2500, 3000,
                                                                   3500, 4000, 4500)))
    vision: VisionSpec = field(default_factory=v3_vision)
    eval_lines: int = 1000  # held-out corpus lines for perplexity
    reading_per_type: int = 50  # held-out reading items per question type (vqa's five, the sign's word, okvqa's fact)
    eval_scenes: int = 500  # held-out scenes for retrieval, in galleries of 50
    probe_train: int = 600  # probe scenes (world/probes.py): fit on these ...
    probe_test: int = 400  # ... score on these


FULL = ZooSpec()
# The large scale (Apollo, SmolVLM: conclusions can flip with scale): wider and deeper backbones (hidden 192, 6 layers,
# head width 32 as at base), a 128-px encoder (256 patches against 144) and canvases 4/3 larger, so the script's cells
# fall on the encoder's pixels as at base while every picture holds more patches (F4's pooling, F5's aspect ratio,
# F6's crops see more). Built once with `make backbones-large`: measured LM 4,620 s with one thread, vision 5,678 s
# with two (planned ~45 min and ~2 h from the base runs' 9 and 27 min and the ~2.2x and ~4.5x compute per step).
# That build was lost with its machine; the one in use is session 15's rebuild (LM 4,869 s, vision 8,800 s), committed
# as a pack: `make zoo-large` lays it out in seconds (world/zoo_pack.py).
# The large zoo is world v2's (world/config.py SCALE_VERSIONS): VisionSpec's defaults are v2's script, word height,
# grain and 1,200 steps without pages, and its checkpoints are v2's.
LARGE = ZooSpec(lm=LMSpec(hidden=192, layers=6, heads=6, intermediate=576, checkpoints=FULL.lm.checkpoints),
                vision=VisionSpec(hidden=192, layers=6, heads=6, intermediate=768, image_size=128, long_side=(213, 427),
                                  checkpoints=(100, 200, 400, 800, 1200)))
MINI = ZooSpec(corpus=CorpusSpec(fact_repeats=1, scene_lines=200, misc_lines=100, qa_lines=100),
               tokenizer_corpus=CorpusSpec(fact_repeats=1, scene_lines=200, misc_lines=100, qa_lines=100),
               lm=LMSpec(steps=8, batch=8, checkpoints=(2, 4, 8)),
               vision=VisionSpec(steps=8, batch=8, pool=32, image_size=64, checkpoints=(2, 4, 8)),
               eval_lines=50, reading_per_type=2, eval_scenes=50, probe_train=30, probe_test=20)
MINI_LARGE = ZooSpec(corpus=MINI.corpus, tokenizer_corpus=MINI.tokenizer_corpus,
                     lm=LMSpec(steps=8, batch=8, layers=5, checkpoints=(2, 4, 8)),
                     vision=VisionSpec(steps=8, batch=8, pool=32, image_size=80, layers=5, long_side=(213, 427),
                                       checkpoints=(2, 4, 8)),
                     eval_lines=50, reading_per_type=2, eval_scenes=50, probe_train=30, probe_test=20)
SPECS = {("base", False): FULL, ("large", False): LARGE, ("base", True): MINI, ("large", True): MINI_LARGE}
