"""The world's scripts: how a word's letters are drawn as square cells of ink, so that whether a word can be read
depends on the resolution a model sees it at (docs/world.md; the v3 pre-studies: results/script_study/STUDY.md).

A glyph is k x k cells, each a grey level or paper (-1: the canvas shows through). Letters advance k + 1 cells.
- grey2x2 (world v2): 2 x 2 cells of four greys (GREYS) of equal sum, so all glyphs share one mean grey.
- binary4x4 (the v3 pre-studies' script): 4 x 4 cells of ink (INK) or paper, two inked cells in every row, column
  and 2 x 2 quadrant, so a glyph is a uniform grey at the scale of two cells; 25 of the 56 such patterns picked
  greedily for the largest smallest Hamming distance (fixed order, no randomness). Studies 3-9 measured it.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

import numpy as np

from vlmlab.world import kb

GREYS = (20, 90, 160, 230)  # grey2x2's four inks
INK = 20  # binary4x4's inked cell
LETTERS = sorted(set("".join(kb.WORDS)))  # the words' 25 letters


@dataclass(frozen=True)
class Script:
    name: str
    side: int  # cells per glyph side
    glyphs: dict[str, tuple[int, ...]]  # letter -> side * side greys, row-major; -1 = paper

    @property
    def advance(self) -> int:
        """Cells from one glyph's left edge to the next (a glyph and one cell of space)."""
        return self.side + 1


def _grey2x2() -> dict[str, tuple[int, ...]]:
    total = sum(GREYS)
    cands = sorted(c for c in itertools.product(GREYS, repeat=4) if sum(c) == total and len(set(c)) > 1)
    random.Random(7).shuffle(cands)
    if len(cands) < len(LETTERS):
        raise AssertionError("not enough glyphs for the words' letters")
    return dict(zip(LETTERS, cands))


def _binary4x4() -> dict[str, tuple[int, ...]]:
    pats = []
    for bits in itertools.product((0, 1), repeat=16):
        a = np.array(bits).reshape(4, 4)
        if (a.sum(0) == 2).all() and (a.sum(1) == 2).all() and all(
                a[i:i + 2, j:j + 2].sum() == 2 for i in (0, 2) for j in (0, 2)):
            pats.append(a)
    chosen = [pats[0]]
    while len(chosen) < len(LETTERS):
        best = max((p for p in pats if not any((p == c).all() for c in chosen)),
                   key=lambda p: min(int((p != c).sum()) for c in chosen))
        chosen.append(best)
    return {ch: tuple(int(v) for v in np.where(p == 1, INK, -1).reshape(-1)) for ch, p in zip(LETTERS, chosen)}


SCRIPTS = {"grey2x2": Script("grey2x2", 2, _grey2x2()), "binary4x4": Script("binary4x4", 4, _binary4x4())}


def get_script(name: str) -> Script:
    if name not in SCRIPTS:
        from vlmlab.contract.errors import ConfigError

        raise ConfigError(f"unknown script {name!r}; choose from {sorted(SCRIPTS)}")
    return SCRIPTS[name]


def word_extent(word: str, cell: float, script: str = "grey2x2") -> tuple[float, float]:
    """(width, height) of a word's ink box in canvas pixels, for script cells of side `cell`."""
    s = get_script(script)
    return (s.advance * len(word) - 1) * cell, s.side * cell


def letter_boxes(word: str, x: float, y: float, cell: float, script: str = "grey2x2"
                 ) -> list[tuple[float, float, float, float]]:
    """Each letter's glyph box (left, top, right, bottom) in canvas pixels, the word's ink box's top-left at (x, y)."""
    s = get_script(script)
    return [(x + s.advance * i * cell, y, x + (s.advance * i + s.side) * cell, y + s.side * cell)
            for i in range(len(word))]


def word_cells(word: str, x: float, y: float, cell: float, script: str = "grey2x2"
               ) -> list[tuple[tuple[float, float, float, float], int]]:
    """The word's inked cells: ((left, top, right, bottom), grey) in canvas pixels, letter by letter, row-major."""
    s = get_script(script)
    out = []
    for i, letter in enumerate(word):
        for k, grey in enumerate(s.glyphs[letter]):
            if grey >= 0:
                l, t = x + (s.advance * i + k % s.side) * cell, y + (k // s.side) * cell
                out.append(((l, t, l + cell, t + cell), grey))
    return out
