"""Text pages: the world's words in its script on plain pages, an OCR-style objective for the vision tower.

Real encoders learn to read from documents and scene text with their boxes (PaLI's and Florence-2's OCR data, SigLIP
2's decoder on rendered text). The world's scenes hold at most one word each, too little for a tower in the zoo's
budget to learn a script (docs/world.md, the v3 pre-studies 1-11: results/script_study/STUDY.md). A page holds up to
`max_words` words at random places, none overlapping (sparse scene text at every cell size), its script cell drawn
log-uniformly in `cells` (view pixels once the page is shown at the tower's resolution); a per-patch letter head and a
per-patch word head read it (`page_loss`), next to the zoo's own losses (world/vision.py's `pages`).

`draw_page` is the pre-studies' page generator (calibration/experiments/script_legibility.py draws its pages with it,
the same pixels as before it moved here); the objective's pages carry the world's view grain (images.add_view_grain,
after the resize to the view, fixed per page), where the pre-studies drew theirs from the page's generator.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from vlmlab.images import add_view_grain
from vlmlab.world import kb
from vlmlab.world.scenes import SUPERSAMPLE
from vlmlab.world.script import LETTERS, get_script


@dataclass
class PagesSpec:
    batch: int = 32  # pages per step, through the same tower as the scenes
    weight: float = 1.0  # the pages' loss against the zoo's (the pre-studies' w3: 3)
    pool: int = 4000  # distinct training pages
    canvas: int = 480  # a page's side in pixels, before its resize to the tower's view
    max_words: int = 40  # words tried per page at random places (those overlapping another are dropped)
    cells: tuple[float, float] = (0.25, 2.0)  # a page's script cell, view px, drawn log-uniformly in this range
    script: str = "binary4x4"  # the world's script (world/script.py)


def glyph_arrays(script: str) -> tuple[int, dict[str, np.ndarray]]:
    """(cells per glyph side, letter -> (side, side) greys; -1 = paper)."""
    s = get_script(script)
    return s.side, {ch: np.array(g).reshape(s.side, s.side) for ch, g in s.glyphs.items()}


def draw_page(rng: random.Random, script: str, cell_view: float, view: int, grid: int, canvas: int,
              one_word: bool = False, max_words: int | None = None, supersample: int = SUPERSAMPLE):
    """A page of the world's words in `script`, its cell `cell_view` pixels once shown at `view` px, drawn on a
    `canvas` px square: rows of words (max_words None), up to `max_words` words at random places, none overlapping,
    or one word. Returns the canvas picture (PIL, `canvas` px; the cells drawn `supersample` times finer and shrunk
    with LANCZOS, as scenes.render draws); targets (2, grid*grid) int64: the letter under each patch centre and the word
    whose ink box covers most of the patch (0 = none, else index + 1); and the words as (word index, patch mask
    (grid*grid,) bool of the patches its ink box overlaps)."""
    k, glyphs = glyph_arrays(script)
    cell = cell_view * canvas / view
    adv = k + 1
    bg = tuple(rng.randint(222, 250) for _ in range(3))
    placed = []  # (word, x, y) canvas pixels, top-left of the ink box
    if one_word:
        w = rng.choice(kb.WORDS)
        tw, th = (adv * len(w) - 1) * cell, k * cell
        placed.append((w, rng.uniform(2, canvas - tw - 2), rng.uniform(2, canvas - th - 2)))
    elif max_words is not None:
        boxes = []
        for _ in range(max_words):
            w = rng.choice(kb.WORDS)
            tw, th = (adv * len(w) - 1) * cell, k * cell
            x, y = rng.uniform(2, canvas - tw - 2), rng.uniform(2, canvas - th - 2)
            m = 2 * cell
            if all(x + tw + m < b[0] or b[2] + m < x or y + th + m < b[1] or b[3] + m < y for b in boxes):
                boxes.append((x, y, x + tw, y + th))
                placed.append((w, x, y))
    else:
        y = rng.uniform(2, 2 + 2 * k * cell)
        while y + k * cell + 2 <= canvas:
            x = rng.uniform(2, 2 + 2 * adv * cell)
            while True:
                w = rng.choice(kb.WORDS)
                tw = (adv * len(w) - 1) * cell
                if x + tw + 2 > canvas:
                    break
                if rng.random() < 0.8:
                    placed.append((w, x, y))
                x += tw + adv * cell * rng.uniform(1.0, 3.0)
            y += k * cell + cell * rng.uniform(1.5, 4.0)
    s = supersample
    img = Image.new("RGB", (canvas * s, canvas * s), bg)
    draw = ImageDraw.Draw(img)
    centres = (np.arange(grid) + 0.5) / grid * canvas
    letters = np.zeros((grid, grid), np.int64)
    word_map, best = np.zeros(grid * grid, np.int64), np.zeros(grid * grid)
    words = []
    edges = np.arange(grid + 1) / grid * canvas
    for w, x0, y0 in placed:
        for i, ch in enumerate(w):
            gx = x0 + adv * i * cell
            for (r, c), grey in np.ndenumerate(glyphs[ch]):
                if grey >= 0:
                    l, t = gx + c * cell, y0 + r * cell
                    draw.rectangle([l * s, t * s, (l + cell) * s - 1, (t + cell) * s - 1], fill=(int(grey),) * 3)
            cols = (centres >= gx) & (centres < gx + k * cell)
            rows = (centres >= y0) & (centres < y0 + k * cell)
            letters[np.ix_(rows, cols)] = LETTERS.index(ch) + 1
        r1, b1 = x0 + (adv * len(w) - 1) * cell, y0 + k * cell
        ox = np.clip(np.minimum(edges[1:], r1) - np.maximum(edges[:-1], x0), 0, None)  # (grid,) overlap per column
        oy = np.clip(np.minimum(edges[1:], b1) - np.maximum(edges[:-1], y0), 0, None)
        area = (oy[:, None] * ox[None, :]).reshape(-1)
        wins = area > best
        word_map[wins], best[wins] = kb.WORDS.index(w) + 1, area[wins]
        words.append((kb.WORDS.index(w), area > 0))
    targets = torch.from_numpy(np.stack([letters.reshape(-1), word_map]))
    return img.resize((canvas, canvas), Image.Resampling.LANCZOS), targets, words


def page_loss(heads, f: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The heads' loss on a batch of pages: f (B, P, D) patch features, targets (B, 2, P); heads[0] reads letters,
    heads[1] (or None) words; foreground and background patches averaged apart, as the zoo's letter head."""
    loss = 0.0
    for row, h in enumerate(heads):
        if h is None:
            continue
        y = targets[:, row].flatten()
        ce = torch.nn.functional.cross_entropy(h(f).flatten(0, 1), y, reduction="none")
        fg = y > 0
        loss = loss + (ce[fg].mean() if fg.any() else 0.0) + ce[~fg].mean()
    return loss


def training_pages(spec: PagesSpec, view: int, grid: int, grain: float, seed: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The objective's pool: pixels (pool, 3, view, view) uint8 with the world's view grain; targets (pool, 2, P)."""
    rng = random.Random(seed)
    lo, hi = (math.log(v) for v in spec.cells)
    px, tg = [], []
    for _ in range(spec.pool):
        img, targets, _ = draw_page(rng, spec.script, math.exp(rng.uniform(lo, hi)), view, grid, spec.canvas,
                                    max_words=spec.max_words)
        shown = add_view_grain(np.array(img.resize((view, view), Image.Resampling.BICUBIC)), grain)
        px.append(torch.from_numpy(shown).permute(2, 0, 1))
        tg.append(targets)
    return torch.stack(px), torch.stack(tg)


class PagesObjective(torch.nn.Module):
    """The pages' loss for one tower: a pool of pages, a letter and a word head; `loss(vision_model)` is one batch's
    weighted letter + word loss. Its heads' init and its batch order come from the run's seed apart from the scenes',
    so the zoo's scene batches are the same with and without it; `gen` is saved with the training state."""

    def __init__(self, spec: PagesSpec, hidden: int, view: int, patch: int, grain: float, seed: int):
        super().__init__()
        self.spec = spec
        self.px, self.tg = training_pages(spec, view, view // patch, grain, f"pages/{spec.script}/{seed}")
        with torch.random.fork_rng():
            torch.manual_seed(seed + 2)
            self.letter = torch.nn.Linear(hidden, len(LETTERS) + 1)
            self.word = torch.nn.Linear(hidden, len(kb.WORDS) + 1)
        self.gen = torch.Generator().manual_seed(seed)

    def loss(self, vision_model) -> torch.Tensor:
        i = torch.randint(0, len(self.px), (self.spec.batch,), generator=self.gen)
        f = vision_model(pixel_values=self.px[i].float() / 127.5 - 1).last_hidden_state
        return self.spec.weight * page_loss((self.letter, self.word), f, self.tg[i])
