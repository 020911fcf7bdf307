"""Procedural scenes: a layout (plain dataclasses, the ground truth) and a Pillow renderer.

A scene is a light canvas of random size and aspect ratio with 1-5 non-overlapping objects (shape,
colour, size) and optionally one short word. Everything is drawn at 2x and downsampled (anti-aliasing).

World v2 (docs/world.md): a tiny ViT trained from scratch in the zoo's budget did not learn outlines or font
glyphs (v2 draft: shape 32%, words 0-8% after 2,000 steps), so the world gives each kind what such an encoder can
learn from a patch, as real objects give texture besides outline:
- each shape has its own fill *pattern* (TEXTURES: stripes of four orientations, checks, dots, rings, solid) in
  its colour and a darker shade of it, with a period tied to the object's size, inside its outline;
- words are written in the world's *script* (script.py; `data.script`): in world v2's, grey2x2, each letter is a
  2 x 2 block of grey cells (GLYPHS), every glyph holding the same greys in a different arrangement, so all glyphs
  have the same mean and a word is legible only where its cells are resolved. The cell is a fixed fraction of the
  canvas long side (`word_height` / the glyph's side in cells), so whether a word can be read depends only on the
  resolution the model sees the image at. (The premise that
  1.15-px cells, the base view's, cannot be read did not hold: a tower of the zoo's geometry trained on text pages
  reads their letters at 98.7%; docs/world.md, "Toward world v3", and results/script_study.)
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vlmlab.world.config import WorldConfig
from vlmlab.world import kb
from vlmlab.world.kb import COLOURS, SHAPES, Kind
from vlmlab.world.script import SCRIPTS, get_script, word_cells, word_extent

SMALL_R = (0.08, 0.10)  # radius range of a small object, fraction of the canvas short side
LARGE_R = (0.14, 0.17)  # radius range of a large object
SUPERSAMPLE = 2


class LayoutError(RuntimeError):
    """The objects did not fit; callers redraw the scene."""


@dataclass
class Obj:
    shape: str
    colour: str
    size: str  # "small" | "large"
    x: float  # centre, canvas pixels
    y: float
    r: float  # radius of the bounding circle, pixels

    @property
    def kind(self) -> Kind:
        return (self.colour, self.shape)


@dataclass
class Scene:
    width: int
    height: int
    background: tuple[int, int, int]
    objects: list[Obj] = field(default_factory=list)
    word: str | None = None
    word_xy: tuple[float, float] = (0.0, 0.0)  # top-left of the word's ink box
    cell: float = 0.0  # side of one script cell, canvas pixels (a glyph is side x side cells)
    script: str = "grey2x2"  # the word's script (script.py)


@lru_cache(maxsize=64)
def font(size: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans Bold (shipped with matplotlib): for labels on figures, not for the world's words."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"
    return ImageFont.truetype(str(path), size)


GLYPHS = SCRIPTS["grey2x2"].glyphs  # world v2's script, letter -> its 2 x 2 greys (script.py)


def sample_canvas(rng: random.Random, cfg: WorldConfig, square: bool = False) -> tuple[int, int]:
    long = rng.randint(cfg.long_side_min, cfg.long_side_max)
    if square:
        return long, long
    aspect = math.exp(rng.uniform(-math.log(cfg.max_aspect), math.log(cfg.max_aspect)))  # w / h
    return (long, max(1, round(long / aspect))) if aspect >= 1 else (max(1, round(long * aspect)), long)


def _fits(x: float, y: float, r: float, placed: list[Obj], box: tuple | None, pad: float) -> bool:
    if any(math.hypot(x - o.x, y - o.y) < r + o.r + pad for o in placed):
        return False
    if box is not None:  # circle vs rectangle distance
        x0, y0, x1, y1 = box
        dx, dy = max(x0 - x, 0, x - x1), max(y0 - y, 0, y - y1)
        if math.hypot(dx, dy) < r + pad:
            return False
    return True


def layout(rng: random.Random, cfg: WorldConfig, specs: list[tuple[str, str, str]], word: str | None,
           size: tuple[int, int]) -> Scene:
    """Place objects given as (shape, colour, size) and an optional word without overlaps."""
    w, h = size
    u = min(w, h)
    pad = 0.04 * u + 1
    for _ in range(20):  # restart the whole layout if one object cannot be placed
        bg = tuple(rng.randint(222, 250) for _ in range(3))
        scene = Scene(w, h, bg)  # type: ignore[arg-type]
        box = None
        if word is not None:
            cell = cfg.word_height * max(w, h) / get_script(cfg.script).side
            tw, th = word_extent(word, cell, cfg.script)
            if tw + 4 > w or th + 4 > h:
                raise LayoutError(f"canvas {w}x{h} too small for word {word!r}")
            wx, wy = rng.uniform(2, w - tw - 2), rng.uniform(2, h - th - 2)
            scene.word, scene.word_xy, scene.cell, scene.script = word, (wx, wy), cell, cfg.script
            box = (wx, wy, wx + tw, wy + th)
        for shape, colour, sz in specs:
            lo, hi = SMALL_R if sz == "small" else LARGE_R
            r = rng.uniform(lo, hi) * u
            for _ in range(200):
                x, y = rng.uniform(r + 2, w - r - 2), rng.uniform(r + 2, h - r - 2)
                if _fits(x, y, r, scene.objects, box, pad):
                    scene.objects.append(Obj(shape, colour, sz, x, y, r))
                    break
            else:
                break
        else:
            return scene
    raise LayoutError(f"could not lay out {len(specs)} objects on a {w}x{h} canvas")


def shape_points(shape: str, x: float, y: float, r: float) -> list[tuple[float, float]]:
    """Polygon of a shape centred at (x, y) inside a circle of radius r (circle is handled apart)."""
    def ring(n: int, rad: float, phase: float) -> list[tuple[float, float]]:
        return [(x + rad * math.cos(phase + 2 * math.pi * i / n), y + rad * math.sin(phase + 2 * math.pi * i / n))
                for i in range(n)]

    if shape == "square":
        s = 0.78 * r
        return [(x - s, y - s), (x + s, y - s), (x + s, y + s), (x - s, y + s)]
    if shape == "triangle":
        return ring(3, r, -math.pi / 2)
    if shape == "diamond":
        return [(x, y - r), (x + 0.72 * r, y), (x, y + r), (x - 0.72 * r, y)]
    if shape == "hexagon":
        return ring(6, r, 0.0)
    if shape == "star":
        outer, inner = ring(5, r, -math.pi / 2), ring(5, 0.42 * r, -math.pi / 2 + math.pi / 5)
        return [p for pair in zip(outer, inner) for p in pair]
    if shape == "cross":
        a, b = 0.3 * r, 0.9 * r
        pts = [(a, b), (a, a), (b, a), (b, -a), (a, -a), (a, -b), (-a, -b), (-a, -a), (-b, -a), (-b, a), (-a, a), (-a, b)]
        return [(x + px, y + py) for px, py in pts]
    if shape == "heart":
        ts = [2 * math.pi * i / 48 for i in range(48)]
        k = r / 17.0
        return [(x + k * 16 * math.sin(t) ** 3,
                 y - k * (13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)) - k)
                for t in ts]
    raise ValueError(f"unknown shape {shape!r}; known: {SHAPES}")


WORD_LABEL = 255  # label_map's value on the word's ink box


def label_map(scene: Scene) -> np.ndarray:
    """(height, width) uint8 map of what covers each pixel: 0 background, i + 1 object i, WORD_LABEL the word's box.

    Drawn with the renderer's geometry at native size (no anti-aliasing): the dense targets of vision pretraining."""
    img = Image.new("L", (scene.width, scene.height), 0)
    draw = ImageDraw.Draw(img)
    for i, o in enumerate(scene.objects):
        if o.shape == "circle":
            rr = 0.92 * o.r
            draw.ellipse([o.x - rr, o.y - rr, o.x + rr, o.y + rr], fill=i + 1)
        else:
            draw.polygon(shape_points(o.shape, o.x, o.y, o.r), fill=i + 1)
    if scene.word is not None:
        x, y = scene.word_xy
        w, h = word_extent(scene.word, scene.cell, scene.script)
        draw.rectangle([x, y, x + w, y + h], fill=WORD_LABEL)
    return np.asarray(img)


TEXTURES = {  # shape -> its fill pattern (one per shape; docs/world.md)
    "circle": "solid", "square": "horizontal stripes", "triangle": "vertical stripes", "star": "checks",
    "diamond": "rising stripes", "hexagon": "falling stripes", "cross": "dots", "heart": "rings",
}
SHADE = 0.5  # the pattern's second tone: the object's colour times this


def pattern(shape: str, dx: np.ndarray, dy: np.ndarray, period: float) -> np.ndarray:
    """bool array: where a shape's fill takes the darker tone, at offsets (dx, dy) (same shape) from its centre."""
    half, diag = period / 2, period / 2 * math.sqrt(2)
    band = {  # the stripe index of each texture; dark where it is odd
        "solid": lambda: np.zeros_like(dx),
        "horizontal stripes": lambda: np.floor(dy / half + 0.5),
        "vertical stripes": lambda: np.floor(dx / half + 0.5),
        "rising stripes": lambda: np.floor((dx - dy) / diag + 0.5),
        "falling stripes": lambda: np.floor((dx + dy) / diag + 0.5),
        "checks": lambda: np.floor(dx / half + 0.5) + np.floor(dy / half + 0.5),
        "dots": lambda: (((dx / period) % 1 - 0.5) ** 2 + ((dy / period) % 1 - 0.5) ** 2 < 0.3 ** 2).astype(float),
        "rings": lambda: np.floor(np.hypot(dx, dy) / half + 0.5),
    }[TEXTURES[shape]]()
    return band % 2 == 1


def texture_period(o: Obj) -> float:
    """The pattern's period, canvas pixels: about four repeats across the object."""
    return max(2.0, o.r / 2)


def render(scene: Scene) -> Image.Image:
    """Draw a scene as an RGB image of size (scene.width, scene.height)."""
    s = SUPERSAMPLE
    img = Image.new("RGB", (scene.width * s, scene.height * s), scene.background)
    draw = ImageDraw.Draw(img)
    for o in scene.objects:
        l, t = max(0, int((o.x - o.r) * s) - 1), max(0, int((o.y - o.r) * s) - 1)
        r, b = min(img.width, int((o.x + o.r) * s) + 2), min(img.height, int((o.y + o.r) * s) + 2)
        mask = Image.new("L", (r - l, b - t), 0)  # the outline, drawn in the object's box
        if o.shape == "circle":
            rr = 0.92 * o.r * s
            ImageDraw.Draw(mask).ellipse([o.x * s - rr - l, o.y * s - rr - t, o.x * s + rr - l, o.y * s + rr - t],
                                         fill=255)
        else:
            ImageDraw.Draw(mask).polygon([(px * s - l, py * s - t) for px, py in shape_points(o.shape, o.x, o.y, o.r)],
                                         fill=255)
        ys, xs = np.mgrid[t:b, l:r].astype(np.float32)
        dark = pattern(o.shape, (xs + 0.5) / s - o.x, (ys + 0.5) / s - o.y, texture_period(o))
        colour = np.array(COLOURS[o.colour], np.float32)
        fill = np.where(dark[..., None], colour * SHADE, colour).astype(np.uint8)
        img.paste(Image.fromarray(fill), (l, t), mask)
    if scene.word is not None:
        for (l, t, r, b), grey in word_cells(scene.word, *scene.word_xy, scene.cell, scene.script):
            draw.rectangle([l * s, t * s, r * s - 1, b * s - 1], fill=(grey, grey, grey))
    return img.resize((scene.width, scene.height), Image.Resampling.LANCZOS)
