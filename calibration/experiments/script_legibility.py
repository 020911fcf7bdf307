# World v3 pre-study (docs/world.md, "Can the tower read a script at all?"; plan: calibration/script_study.yaml).
# Issue 16 wants a glyph probe that reads the word >= 80% at the resolution splitting gives and <= 20% at the base one.
# Every v2 tower read the v2 script's letters at <= 73% in its split view, whatever its objective. This asks whether
# that is the tower's geometry (96 px, 8-px patches, 4 layers of 128) meeting the script, or the zoo's objective:
# a tower of the zoo's geometry is trained on text alone (pages of the world's words, a per-patch letter head), an
# upper bound on what the zoo's tower could read of a script, and its letters are measured at each script cell size.
#   python calibration/experiments/script_legibility.py SCRIPT --steps N --out DIR
# SCRIPT: grey2x2 (world v2's script, scenes.GLYPHS: 2 x 2 cells of four greys of equal sum, one cell of space) or
# binary4x4 (4 x 4 cells of ink or paper, two inked cells in every row, column and 2 x 2 quadrant, so that a glyph is
# a uniform grey at the scale of two cells: unreadable by construction where two cells fall within a pixel or so).
from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from vlmlab.world import kb
from vlmlab.world.scenes import GLYPHS, SUPERSAMPLE

VIEW, PATCH, CANVAS = 96, 8, 240  # the tower's square view and patch; a page's canvas (the world's canvases: 160-320)
GRID = VIEW // PATCH
LETTERS = sorted(set("".join(kb.WORDS)))  # 25 letters, as vision_targets.LETTERS
INK, PAPER = 20, None  # binary4x4's inked cell; its other cells are the page's own background
EVAL_CELLS = (0.86, 1.15, 1.73, 2.3, 3.45)  # script cell side in view pixels (world v2: 1.15 base view, 2.3 split)
TRAIN_CELLS = (0.8, 3.6)  # training pages draw their cell log-uniformly in this range


def binary_glyphs() -> dict[str, np.ndarray]:
    """letter -> (4, 4) array of INK / -1 (paper): two inked cells per row, column and quadrant; 25 of the 56 such
    patterns picked greedily for the largest smallest Hamming distance (fixed order, no randomness)."""
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
    return {ch: np.where(p == 1, INK, -1) for ch, p in zip(LETTERS, chosen)}


SCRIPTS = {  # name -> (cells per glyph side, letter -> cell greys, -1 = paper)
    "grey2x2": (2, {ch: np.array(g).reshape(2, 2) for ch, g in GLYPHS.items()}),
    "binary4x4": (4, binary_glyphs()),
}


def page(rng: random.Random, script: str, cell_view: float, one_word: bool = False):
    """A page of the world's words in `script`, its cell `cell_view` pixels once shown at VIEW.
    Returns pixels (3, VIEW, VIEW) uint8, the letter under each patch centre (GRID*GRID,) int64 (0 = none), and the
    page's words as (word index, patch mask (GRID*GRID,) bool of the patches over its ink box)."""
    k, glyphs = SCRIPTS[script]
    cell = cell_view * CANVAS / VIEW
    adv = k + 1
    bg = tuple(rng.randint(222, 250) for _ in range(3))
    placed = []  # (word, x, y) canvas pixels, top-left of the ink box
    if one_word:
        w = rng.choice(kb.WORDS)
        tw, th = (adv * len(w) - 1) * cell, k * cell
        placed.append((w, rng.uniform(2, CANVAS - tw - 2), rng.uniform(2, CANVAS - th - 2)))
    else:
        y = rng.uniform(2, 2 + 2 * k * cell)
        while y + k * cell + 2 <= CANVAS:
            x = rng.uniform(2, 2 + 2 * adv * cell)
            while True:
                w = rng.choice(kb.WORDS)
                tw = (adv * len(w) - 1) * cell
                if x + tw + 2 > CANVAS:
                    break
                if rng.random() < 0.8:
                    placed.append((w, x, y))
                x += tw + adv * cell * rng.uniform(1.0, 3.0)
            y += k * cell + cell * rng.uniform(1.5, 4.0)
    s = SUPERSAMPLE
    img = Image.new("RGB", (CANVAS * s, CANVAS * s), bg)
    draw = ImageDraw.Draw(img)
    centres = (np.arange(GRID) + 0.5) / GRID * CANVAS
    letters = np.zeros((GRID, GRID), np.int64)
    words = []
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
        edges = np.arange(GRID + 1) / GRID * CANVAS
        r1, b1 = x0 + (adv * len(w) - 1) * cell, y0 + k * cell
        cols = (edges[1:] > x0) & (edges[:-1] < r1)
        rows = (edges[1:] > y0) & (edges[:-1] < b1)
        words.append((kb.WORDS.index(w), (rows[:, None] & cols[None, :]).reshape(-1)))
    img = img.resize((CANVAS, CANVAS), Image.Resampling.LANCZOS).resize((VIEW, VIEW), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.array(img)).permute(2, 0, 1), torch.from_numpy(letters.reshape(-1)), words


def pages(seed: str, script: str, n: int, cell_view: float | None, one_word: bool = False):
    """n pages; cell_view None = each page draws its cell log-uniformly from TRAIN_CELLS."""
    rng = random.Random(seed)
    lo, hi = (math.log(v) for v in TRAIN_CELLS)
    out = [page(rng, script, cell_view or math.exp(rng.uniform(lo, hi)), one_word) for _ in range(n)]
    return torch.stack([p for p, _, _ in out]), torch.stack([t for _, t, _ in out]), [w for _, _, w in out]


def tower():
    from transformers import SiglipVisionConfig, SiglipVisionModel  # the zoo's tower geometry (world/vision.py)

    torch.manual_seed(0)
    return SiglipVisionModel(SiglipVisionConfig(hidden_size=128, intermediate_size=512, num_hidden_layers=4,
                                                num_attention_heads=4, image_size=VIEW, patch_size=PATCH))


def features(model, pixels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(pixel_values=x.float() / 127.5 - 1).last_hidden_state for x in pixels.split(100)])


def letter_accuracy(model, head, sets) -> dict[str, float]:
    """Per-patch letter accuracy (%) on the patches whose centre lies on a glyph, at each eval cell size."""
    model.eval()
    out = {}
    for c, (px, tg, _) in sets.items():
        pred = head(features(model, px)).argmax(-1)
        on = tg > 0
        out[str(c)] = round(100 * (pred[on] == tg[on]).float().mean().item(), 1)
    model.train()
    return out


def glyph_probe(model, script: str, cell_view: float, n_train: int, n_test: int) -> float:
    """The world's glyph probe (world/probes.py): the word (48, chance 2%) from the mean of the patches over its ink
    box, one word per page, read by the tuned linear probe (calibrate_probes.cv_predict)."""
    from vlmlab.calibrate_probes import cv_predict

    px, _, words = pages(f"glyph/{script}/{cell_view}", script, n_train + n_test, cell_view, one_word=True)
    f = features(model, px)
    x = torch.stack([f[i][torch.from_numpy(ws[0][1])].mean(0) for i, ws in enumerate(words)])
    y = np.array([ws[0][0] for ws in words])
    pred, _ = cv_predict(x[:n_train], y[:n_train], x[n_train:], [0.01, 0.1, 1.0, 10.0], 5, 2000)
    return round(100 * float((np.array(pred) == y[n_train:]).mean()), 1)


def main() -> None:
    from threadpoolctl import threadpool_limits
    from vlmlab.world.lm import cosine_lr

    ap = argparse.ArgumentParser()
    ap.add_argument("script", choices=sorted(SCRIPTS))
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--pool", type=int, default=4000)
    ap.add_argument("--test-pages", type=int, default=200)
    ap.add_argument("--every", type=int, default=500)
    ap.add_argument("--glyph", type=int, nargs=2, default=(2400, 400),
                    help="glyph probe's train and test pages (as the calibration's probes)")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    threadpool_limits(1)
    a.out.mkdir(parents=True, exist_ok=True)
    log = a.out / f"{a.script}.jsonl"
    log.write_text("")

    def emit(row: dict) -> None:
        print(json.dumps(row), flush=True)
        with log.open("a") as fh:
            fh.write(json.dumps(row) + "\n")

    t0 = time.time()
    px, tg, _ = pages(f"train/{a.script}", a.script, a.pool, None)
    sets = {c: pages(f"test/{a.script}/{c}", a.script, a.test_pages, c) for c in EVAL_CELLS}
    emit({"script": a.script, "event": "data", "pool": a.pool, "letter patches per train page": round(
        (tg > 0).sum().item() / a.pool, 1), "seconds": round(time.time() - t0)})
    model = tower()
    head = torch.nn.Linear(128, len(LETTERS) + 1)
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.05)
    g = torch.Generator().manual_seed(0)
    t0 = time.time()
    for step in range(a.steps):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, a.steps, a.lr)
        i = torch.randint(0, a.pool, (a.batch,), generator=g)
        y = tg[i].flatten()
        logits = head(model(pixel_values=px[i].float() / 127.5 - 1).last_hidden_state).flatten(0, 1)
        ce = torch.nn.functional.cross_entropy(logits, y, reduction="none")
        fg = y > 0
        loss = ce[fg].mean() + ce[~fg].mean()  # letters and background weighted alike, as the zoo's letter head
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        if (step + 1) % a.every == 0 or step + 1 == a.steps:
            emit({"script": a.script, "event": "letters", "step": step + 1, "loss": round(loss.item(), 3),
                  "letter % by cell px": letter_accuracy(model, head, sets), "train seconds": round(time.time() - t0)})
    model.eval()
    emit({"script": a.script, "event": "glyph", "step": a.steps, "glyph % by cell px": {
        str(c): glyph_probe(model, a.script, c, *a.glyph) for c in EVAL_CELLS}, "seconds": round(time.time() - t0)})


if __name__ == "__main__":
    main()
