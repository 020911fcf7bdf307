"""Procedural scenes: a layout (plain dataclasses, the ground truth) and a Pillow renderer.

A scene is a light canvas of random size and aspect ratio with 1-5 non-overlapping objects (shape,
colour, size) and optionally one short word in black DejaVu Sans Bold (shipped with matplotlib, so
images are identical on every machine). Shapes are drawn at 2x and downsampled (anti-aliasing).
The word's font size is a fixed fraction of the canvas long side, so whether it is legible depends
only on the resolution the model sees the image at.
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
from vlmlab.world.kb import COLOURS, SHAPES, Kind

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
    font_size: int = 0


@lru_cache(maxsize=64)
def font(size: int) -> ImageFont.FreeTypeFont:
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"
    return ImageFont.truetype(str(path), size)


def word_extent(word: str, size: int) -> tuple[int, int]:
    _, _, x1, y1 = font(size).getbbox(word, anchor="lt")  # ink box measured from the draw origin
    return x1, y1


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
            fs = max(4, round(cfg.word_height * max(w, h)))
            tw, th = word_extent(word, fs)
            if tw + 4 > w or th + 4 > h:
                raise LayoutError(f"canvas {w}x{h} too small for word {word!r}")
            wx, wy = rng.uniform(2, w - tw - 2), rng.uniform(2, h - th - 2)
            scene.word, scene.word_xy, scene.font_size = word, (wx, wy), fs
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
        w, h = word_extent(scene.word, scene.font_size)
        draw.rectangle([x, y, x + w, y + h], fill=WORD_LABEL)
    return np.asarray(img)


def render(scene: Scene) -> Image.Image:
    """Draw a scene as an RGB image of size (scene.width, scene.height)."""
    s = SUPERSAMPLE
    img = Image.new("RGB", (scene.width * s, scene.height * s), scene.background)
    draw = ImageDraw.Draw(img)
    for o in scene.objects:
        fill = COLOURS[o.colour]
        if o.shape == "circle":
            rr = 0.92 * o.r * s
            draw.ellipse([o.x * s - rr, o.y * s - rr, o.x * s + rr, o.y * s + rr], fill=fill)
        else:
            draw.polygon([(px * s, py * s) for px, py in shape_points(o.shape, o.x, o.y, o.r)], fill=fill)
    img = img.resize((scene.width, scene.height), Image.Resampling.LANCZOS)
    if scene.word is not None:  # text at native size: its hinting is sharper than a downsample
        ImageDraw.Draw(img).text(scene.word_xy, scene.word, font=font(scene.font_size), fill=(15, 15, 15), anchor="lt")
    return img
