"""The zoo encoder's pretraining targets: what each view of a scene should say, patch by patch and region by region.

Pure functions of a scene and a view (a canvas box shown on a grid x grid patch grid), shared by the vision
objective (world/vision.py) and the probes (world/probes.py):
- `dense_targets`: per patch the colour, shape and letter under its centre, the word whose ink box it overlaps,
  whether an object's centre lies in it, and the view's object count;
- `region_targets`: the patches over each object's and the word's box, with their labels (and each object's
  left-to-right and top-to-bottom rank among the view's objects);
- `cells_on`, `object_box`, `word_box`, `letter_map`: the geometry behind both.
"""
from __future__ import annotations

import numpy as np

from vlmlab.world import kb
from vlmlab.world.scenes import Scene
from vlmlab.world.script import LETTERS, letter_boxes, word_extent

MAX_COUNT = 5  # count head classes 0..5 (a crop can hold none)
REGIONS = 6  # region rows per view: up to 5 objects and the word


def cells_on(box: tuple[float, float, float, float], view: tuple[float, float, float, float], grid: int) -> np.ndarray:
    """(grid*grid,) bool: which patches of a view (a canvas box shown on a grid x grid patch grid) overlap `box`."""
    l, t, r, b = view
    xs = l + np.arange(grid + 1) / grid * (r - l)  # (grid+1,) cell edges on the canvas
    ys = t + np.arange(grid + 1) / grid * (b - t)
    cols = (xs[1:] > box[0]) & (xs[:-1] < box[2])  # (grid,)
    rows = (ys[1:] > box[1]) & (ys[:-1] < box[3])  # (grid,)
    return (rows[:, None] & cols[None, :]).reshape(-1)


def letter_map(scene: Scene, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """(len(ys), len(xs)) int64: the letter whose glyph covers each canvas point (0 = none, else index + 1)."""
    out = np.zeros((len(ys), len(xs)), np.int64)
    if scene.word is None:
        return out
    for ch, (x0, y0, x1, y1) in zip(scene.word, letter_boxes(scene.word, *scene.word_xy, scene.cell, scene.script)):
        out[np.ix_((ys >= y0) & (ys < y1), (xs >= x0) & (xs < x1))] = LETTERS.index(ch) + 1
    return out


def dense_targets(scene: Scene, labels: np.ndarray, box: tuple[float, float, float, float], grid: int) -> np.ndarray:
    """(6, grid*grid) int64 targets of one view (the canvas box resized to a square): per patch the colour and the
    shape of the object under its centre and the word whose ink box it overlaps (0 = none, else class + 1), the
    view's object count (objects centred in the box), the letter whose glyph covers the patch centre, and whether an
    object's centre lies in the patch (1, else 0: a detector's centre heatmap, as CenterNet-style pretraining
    teaches; the count is its sum)."""
    colour = np.zeros(256, np.int64)
    shape = np.zeros(256, np.int64)
    for i, o in enumerate(scene.objects):
        colour[i + 1], shape[i + 1] = list(kb.COLOURS).index(o.colour) + 1, kb.SHAPES.index(o.shape) + 1
    l, t, r, b = box
    c = (np.arange(grid) + 0.5) / grid
    xs = np.clip((l + c * (r - l)).astype(int), 0, scene.width - 1)
    ys = np.clip((t + c * (b - t)).astype(int), 0, scene.height - 1)
    ids = labels[ys[:, None], xs[None, :]].reshape(-1)  # (grid*grid,)
    word = np.zeros_like(ids, dtype=np.int64)
    if scene.word is not None:
        w, h = word_extent(scene.word, scene.cell, scene.script)
        x, y = scene.word_xy
        word[cells_on((x, y, x + w, y + h), box, grid)] = kb.WORDS.index(scene.word) + 1
    count = sum(l <= o.x < r and t <= o.y < b for o in scene.objects)
    letters = letter_map(scene, l + c * (r - l), t + c * (b - t)).reshape(-1)
    centre = np.zeros_like(ids, dtype=np.int64)
    for o in scene.objects:
        if l <= o.x < r and t <= o.y < b:
            centre[int((o.y - t) / (b - t) * grid) * grid + int((o.x - l) / (r - l) * grid)] = 1
    return np.stack([colour[ids], shape[ids], word, np.full_like(ids, count), letters, centre])


def object_box(o) -> tuple[float, float, float, float]:
    """An object's bounding box on the canvas (its bounding circle's square)."""
    return (o.x - o.r, o.y - o.r, o.x + o.r, o.y + o.r)


def word_box(scene: Scene) -> tuple[float, float, float, float]:
    w, h = word_extent(scene.word, scene.cell, scene.script)
    return (scene.word_xy[0], scene.word_xy[1], scene.word_xy[0] + w, scene.word_xy[1] + h)


def region_targets(scene: Scene, box: tuple[float, float, float, float], grid: int) -> tuple[np.ndarray, np.ndarray]:
    """Regions of one view: masks (REGIONS, grid*grid) bool, the patches overlapping each object's bounding box and
    the word's ink box, and labels (REGIONS, 5) int64 (colour, shape, word, then the object's rank left to right
    and top to bottom among the objects centred in the view, as "the leftmost circle" names it; -100 where a region
    has none, and both ranks -100 in a view with fewer than two objects), for every object and word whose centre
    lies in the view; unused rows are empty."""
    masks = np.zeros((REGIONS, grid * grid), bool)
    labels = np.full((REGIONS, 5), -100, np.int64)
    l, t, r, b = box
    inside = [o for o in scene.objects if l <= o.x < r and t <= o.y < b]
    for k, o in enumerate(inside):
        masks[k] = cells_on(object_box(o), box, grid)
        labels[k, :2] = list(kb.COLOURS).index(o.colour), kb.SHAPES.index(o.shape)
    if len(inside) >= 2:  # ranks by the objects' centres; ties (never drawn in practice) keep the scene's order
        for col, key in ((3, lambda j: inside[j].x), (4, lambda j: inside[j].y)):
            for rank, j in enumerate(sorted(range(len(inside)), key=key)):
                labels[j, col] = rank
    k = len(inside)
    if scene.word is not None:
        wb = word_box(scene)
        if l <= (wb[0] + wb[2]) / 2 < r and t <= (wb[1] + wb[3]) / 2 < b:
            masks[k] = cells_on(wb, box, grid)
            labels[k, 2] = kb.WORDS.index(scene.word)
    return masks, labels
