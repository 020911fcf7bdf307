"""Linear probes on a vision encoder's patch features: does the encoder see what the tasks ask?

Each probe draws held-out square scenes (their own seeds, never the VLM's data), runs the encoder the way the
VLM runs it (navit.VisionEncoder, the zoo's normalisation) and fits a logistic regression (world/vision.py's
`_probe`) on patch features, read where a connector's attention can find them:
  colour    the colour of a lone object, from the mean of the patches over its bounding box (8 classes; chance 12.5%)
  shape     the shape of a lone object, read the same way (8 classes; chance 12.5%)
  count     1-5 objects, from the patch features average-pooled to a 2 x 2 grid (4 x D; chance 20%)
  position  two objects of different colours: is the one whose colour comes first in kb.COLOURS left of the
            other? From the 2 x 2 pooled features (chance 50%; needs colour bound to place, as "what is left of
            the red circle?" does)
  glyph     the word written in a one-object scene (48 words; chance ~2%), from the mean of the patches that
            overlap the word's ink box: at the base resolution (the whole picture, one view) and at the
            resolution splitting gives (the 2 x 2 crop holding the word's centre). The paper's text-reading
            mechanism needs it near chance at base and high split.
Views carry the world's grain (`world.grain`, images.py) as the VLM's do.
Targets (issue 16): colour and shape >= 90%, count and position >= 80%, glyph >= 80% split and <= 20% base.
"""
from __future__ import annotations

import hashlib
import random

import torch
import torch.nn.functional as F

from vlmlab.images import ImageConfig, build_image_processor, split_boxes
from vlmlab.world import kb
from vlmlab.world.config import WorldConfig
from vlmlab.world.questions import random_scene
from vlmlab.world.scenes import render
from vlmlab.world.vision import _probe
from vlmlab.world.vision_targets import cells_on, object_box, word_box

TARGETS = {"colour": (">=", 0.90), "shape": (">=", 0.90), "count": (">=", 0.80), "position": (">=", 0.80),
           "glyph (split)": (">=", 0.80), "glyph (base)": ("<=", 0.20)}
CHANCE = {"colour": 1 / len(kb.COLOURS), "shape": 1 / len(kb.SHAPES), "count": 0.2, "position": 0.5,
          "glyph (split)": 1 / len(kb.WORDS), "glyph (base)": 1 / len(kb.WORDS)}


def scenes(seed: str, n: int, objects: tuple[int, int], word: bool, world: WorldConfig) -> list:
    rng = random.Random(seed)
    return [random_scene(rng, world, rng.randint(*objects), rng.choice(kb.WORDS) if word else None, square=True)
            for _ in range(n)]


def _views(encoder, split: int, grain: float = 0.0):
    return build_image_processor(ImageConfig(mode="square", split=split), encoder,
                                 getattr(encoder, "image_mean", None), getattr(encoder, "image_std", None), grain)


# Probe views made in this process: a zoo build scores every checkpoint on the same probe scenes, and at world v3's
# 720-960 px canvases rendering them, not the encoder, is most of a checkpoint's probe time. A view is a pure
# function of its scene and the processor (the grain is fixed per view), so a cached view is the same tensor.
_VIEW_CACHE: dict[tuple, list[torch.Tensor]] = {}
VIEW_CACHE_SETS = 6  # scene lists kept (probe_sets makes 5: single, multi, pairs, words at base and split)


def scene_views(encoder, scene_list: list, split: int = 0, grain: float = 0.0) -> list[torch.Tensor]:
    """Each scene's views as the VLM's square mode shows them ((V, 3, S, S) per scene: V = 1, or split^2 + 1),
    made once per process for a scene list, split, grain and encoder resolution."""
    key = (hashlib.sha256(repr(scene_list).encode()).hexdigest(), split, grain, encoder.image_size,
           encoder.patch_size, repr(getattr(encoder, "image_mean", None)), repr(getattr(encoder, "image_std", None)))
    if key not in _VIEW_CACHE:
        proc = _views(encoder, split, grain)
        if len(_VIEW_CACHE) >= VIEW_CACHE_SETS:
            _VIEW_CACHE.pop(next(iter(_VIEW_CACHE)))
        _VIEW_CACHE[key] = [torch.stack(proc(render(s), train=False)) for s in scene_list]
    return _VIEW_CACHE[key]


@torch.no_grad()
def features(encoder, scene_list: list, split: int = 0, batch: int = 64, grid: int = 2,
             grain: float = 0.0) -> torch.Tensor:
    """(N, views x grid^2 x D): each view's patch features average-pooled to grid x grid (the probes' 2 x 2), views
    concatenated; `grain` is the world's view grain (data.grain)."""
    made = scene_views(encoder, scene_list, split, grain)
    out = []
    for i in range(0, len(scene_list), batch):
        views = made[i: i + batch]  # each (V,3,S,S)
        px = torch.cat(views)  # (B*V,3,S,S)
        feats, _ = encoder(px)  # (B*V,P,D)
        g = int(feats.shape[1] ** 0.5)
        fmap = feats.transpose(1, 2).reshape(len(px), -1, g, g)  # (B*V,D,g,g)
        pooled = F.adaptive_avg_pool2d(fmap, grid).flatten(1)  # (B*V, D*grid^2)
        out.append(pooled.view(len(views), -1))  # (B, V*D*grid^2)
    return torch.cat(out)


def _patches_on(box: tuple[float, float, float, float], view: tuple[float, float, float, float], g: int) -> list[int]:
    """Patch indices (row-major, g x g grid over `view`, a canvas box) overlapping `box`; a point box gives the
    patch under it."""
    if box[2] > box[0] and box[3] > box[1]:
        idx = cells_on(box, view, g).nonzero()[0].tolist()
        if idx:
            return idx
    l, t, r, b = view
    x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    col = min(g - 1, max(0, int((x - l) / (r - l) * g)))
    row = min(g - 1, max(0, int((y - t) / (b - t) * g)))
    return [row * g + col]


@torch.no_grad()
def local_features(encoder, scene_list: list, boxes: list, split: int = 0, batch: int = 64,
                   grain: float = 0.0) -> torch.Tensor:
    """(N, D): the mean patch feature over each scene's box (canvas pixels), read in the whole picture (split=0)
    or in the split crop that holds the box's centre (split=n); `grain` as features'."""
    made = scene_views(encoder, scene_list, split, grain)
    out = []
    for i in range(0, len(scene_list), batch):
        chunk, chunk_boxes = scene_list[i: i + batch], boxes[i: i + batch]
        views, picks = [], []
        for s, box, v in zip(chunk, chunk_boxes, made[i: i + batch]):
            canvas = (0, 0, s.width, s.height)
            crops = split_boxes(s.width, s.height, split) if split >= 2 else [canvas]
            x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            k = next(j for j, c in enumerate(crops) if c[0] <= x <= c[2] and c[1] <= y <= c[3])
            views.append(v[k])  # (3,S,S)
            picks.append(crops[k])
        feats, _ = encoder(torch.stack(views))  # (B,P,D)
        g = int(feats.shape[1] ** 0.5)
        out += [feats[j, _patches_on(box, view, g)].mean(0) for j, (box, view) in enumerate(zip(chunk_boxes, picks))]
    return torch.stack(out)


def count_set(encoder, n: int, world: WorldConfig, grid: int = 2) -> tuple[torch.Tensor, list[int]]:
    """The count probe's features (patches pooled to grid x grid) and labels (objects - 1) over its first n scenes."""
    multi = scenes("probe/multi", n, (1, 5), False, world)
    return features(encoder, multi, grid=grid, grain=world.grain), [len(s.objects) - 1 for s in multi]


def position_pairs(n: int, world: WorldConfig) -> tuple[list, list, list[int]]:
    """The position probe's first n scenes (two objects of different colours), the object of each whose colour comes
    first in kb.COLOURS, and the labels (1: that object is the left one)."""
    pairs = [s for s in scenes("probe/pairs", 2 * n, (2, 2), False, world)
             if s.objects[0].colour != s.objects[1].colour][:n]
    order = list(kb.COLOURS)
    first = [min(s.objects, key=lambda o: order.index(o.colour)) for s in pairs]
    other = [next(o for o in s.objects if o is not f) for s, f in zip(pairs, first)]
    return pairs, first, [int(f.x < o.x) for f, o in zip(first, other)]


def position_set(encoder, n: int, world: WorldConfig, grid: int = 2) -> tuple[torch.Tensor, list[int]]:
    """The position probe's features (pooled as count_set's) and labels (position_pairs)."""
    pairs, _, labels = position_pairs(n, world)
    return features(encoder, pairs, grid=grid, grain=world.grain), labels


def probe_sets(encoder, n: int, world: WorldConfig | None = None) -> dict[str, tuple[torch.Tensor, list[int]]]:
    """Each probe's features and labels over its first n scenes ({probe: (x (n, F), labels)}); a fit takes the
    first n_train as train scenes and the next ones as test scenes, so a larger n extends the same scene streams."""
    world = world or WorldConfig()
    out = {}
    single = scenes("probe/single", n, (1, 1), False, world)
    x = local_features(encoder, single, [object_box(s.objects[0]) for s in single], grain=world.grain)
    out["colour"] = (x, [list(kb.COLOURS).index(s.objects[0].colour) for s in single])
    out["shape"] = (x, [kb.SHAPES.index(s.objects[0].shape) for s in single])
    out["count"] = count_set(encoder, n, world)
    out["position"] = position_set(encoder, n, world)
    words = scenes("probe/words", n, (1, 1), True, world)
    labels = [kb.WORDS.index(s.word) for s in words]
    boxes = [word_box(s) for s in words]
    out["glyph (base)"] = (local_features(encoder, words, boxes, grain=world.grain), labels)
    out["glyph (split)"] = (local_features(encoder, words, boxes, split=2, grain=world.grain), labels)
    return out


def probe_table(encoder, n_train: int = 600, n_test: int = 400, world: WorldConfig | None = None) -> dict[str, float]:
    """Probe accuracies {probe: test accuracy} of one encoder (see the module docstring)."""
    out = {}
    for probe, (x, y) in probe_sets(encoder, n_train + n_test, world).items():
        y = torch.tensor(y)
        out[probe] = _probe(x[:n_train], y[:n_train], x[n_train:], y[n_train:])
    return out


def meets(probe: str, accuracy: float) -> bool:
    op, bound = TARGETS[probe]
    return accuracy >= bound if op == ">=" else accuracy <= bound
