# World v3 pre-study (docs/world.md, "Can the tower read a script at all?"; plan: calibration/script_study.yaml).
# Issue 16 wants a glyph probe that reads the word >= 80% at the resolution splitting gives and <= 20% at the base one.
# Every v2 tower read the v2 script's letters at <= 73% in its split view, whatever its objective. This asks whether
# that is the tower's geometry (96 px, 8-px patches, 4 layers of 128) meeting the script, or the zoo's objective:
# a tower of the zoo's geometry is trained on text alone (pages of the world's words, a per-patch letter head), an
# upper bound on what the zoo's tower could read of a script, and its letters are measured at each script cell size.
#   python calibration/experiments/script_legibility.py SCRIPT --steps N --out DIR
# SCRIPT: grey2x2 (world v2's script, scenes.GLYPHS: 2 x 2 cells of four greys of equal sum, one cell of space) or
# binary4x4 (4 x 4 cells of ink or paper, two inked cells in every row, column and 2 x 2 quadrant, so that a glyph is
# a uniform grey at the scale of two cells; the premise that this makes it unreadable where two cells fall within a
# pixel did not hold: results/script_study/STUDY.md).
from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from vlmlab.world import kb
from vlmlab.world import pages as world_pages
from vlmlab.world import script as world_script
from vlmlab.world.scenes import SUPERSAMPLE

VIEW, PATCH, CANVAS = 96, 8, 240  # the tower's square view and patch; a page's canvas (the world's canvases: 160-320)
GRID = VIEW // PATCH
LETTERS = world_script.LETTERS  # 25 letters, the letter head's classes
INK = world_script.INK  # binary4x4's inked cell; its other cells are the page's own background
EVAL_CELLS = (0.86, 1.15, 1.73, 2.3, 3.45)  # script cell side in view pixels (world v2: 1.15 base view, 2.3 split)
TRAIN_CELLS = (0.8, 3.6)  # training pages draw their cell log-uniformly in this range


def binary_glyphs() -> dict[str, np.ndarray]:
    """letter -> (4, 4) array of INK / -1 (paper): the world's binary4x4 script (world/script.py, moved there from
    here in session 27; the same glyphs, tested)."""
    return world_pages.glyph_arrays("binary4x4")[1]


SCRIPTS = {name: world_pages.glyph_arrays(name) for name in ("grey2x2", "binary4x4")}  # name -> (side, glyph arrays)


def page(rng: random.Random, script: str, cell_view: float, one_word: bool = False, canvas: int = CANVAS,
         max_words: int | None = None, noise: float = 0.0, grain_at: str = "view", supersample: int = SUPERSAMPLE):
    """A page of the world's words in `script`, its cell `cell_view` pixels once shown at VIEW, drawn on a `canvas`
    pixels square: rows of words (max_words None), or up to `max_words` words at random places, none overlapping
    (scene text, sparse at every cell size). Grain of SD `noise` is added to the VIEW-pixel picture the tower sees
    (`grain_at` "view", studies 3-9) or to the canvas before it is resized to the view ("canvas", study 10). The
    cells are drawn `supersample` times finer than the canvas and shrunk to it (LANCZOS), as scenes.render does.
    Returns pixels (3, VIEW, VIEW) uint8; targets (2, GRID*GRID) int64: the letter under each patch centre and the
    word whose ink box covers most of the patch (0 = none, else index + 1); and the page's words as (word index,
    patch mask (GRID*GRID,) bool of the patches over its ink box)."""
    img, targets, words = world_pages.draw_page(rng, script, cell_view, VIEW, GRID, canvas, one_word, max_words,
                                                supersample)
    if noise > 0 and grain_at == "canvas":
        img = add_grain(img, noise, rng.getrandbits(32))
    img = img.resize((VIEW, VIEW), Image.Resampling.BICUBIC)
    if noise > 0 and grain_at == "view":  # loss in the picture the tower sees: Gaussian grain, fixed per page
        img = add_grain(img, noise, rng.getrandbits(32))
    return torch.from_numpy(np.array(img)).permute(2, 0, 1), targets, words


def add_grain(img: Image.Image, sd: float, seed: int) -> Image.Image:
    """Gaussian grain of `sd` grey levels on every pixel and channel, drawn from `seed`, rounded and clipped."""
    grain = np.random.default_rng(seed).normal(0.0, sd, (img.height, img.width, 3))
    return Image.fromarray(np.clip(np.rint(np.asarray(img, np.float64) + grain), 0, 255).astype(np.uint8))


def grain_in_view(sd: float, canvas: int, n: int = 20, seed: int = 0) -> float:
    """The SD (grey levels) left in the VIEW picture of canvas grain of `sd` on a flat grey `canvas`-pixel square
    once resized as page() resizes: the resize averages grain down by about the scale factor."""
    flat = Image.new("RGB", (canvas, canvas), (128, 128, 128))
    views = [np.asarray(add_grain(flat, sd, seed + i).resize((VIEW, VIEW), Image.Resampling.BICUBIC), np.float64)
             for i in range(n)]
    return float(np.std(np.stack(views)))


def pages(seed: str, script: str, n: int, cell_view: float | None, one_word: bool = False,
          train_cells: tuple[float, float] = TRAIN_CELLS, **kw):
    """n pages; cell_view None = each page draws its cell log-uniformly from train_cells."""
    rng = random.Random(seed)
    lo, hi = (math.log(v) for v in train_cells)
    out = [page(rng, script, cell_view or math.exp(rng.uniform(lo, hi)), one_word, **kw) for _ in range(n)]
    return torch.stack([p for p, _, _ in out]), torch.stack([t for _, t, _ in out]), [w for _, _, w in out]


def tower(seed: int = 0):
    from transformers import SiglipVisionConfig, SiglipVisionModel  # the zoo's tower geometry (world/vision.py)

    torch.manual_seed(seed)
    return SiglipVisionModel(SiglipVisionConfig(hidden_size=128, intermediate_size=512, num_hidden_layers=4,
                                                num_attention_heads=4, image_size=VIEW, patch_size=PATCH))


def features(model, pixels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(pixel_values=x.float() / 127.5 - 1).last_hidden_state for x in pixels.split(100)])


page_loss = world_pages.page_loss  # moved to world/pages.py (the zoo trains with it)


def head_accuracy(model, head, sets) -> dict[str, float]:
    """Per-patch accuracy (%) of a head (row 0: letters, on the patches whose centre lies on a glyph; row 1: words,
    on the patches a word's ink box covers) at each eval cell size."""
    model.eval()
    out = {}
    for c, (px, tg, _) in sets.items():
        f = features(model, px)
        for row, h in enumerate(head):
            if h is not None:
                on = tg[:, row] > 0
                acc = (h(f).argmax(-1)[on] == tg[:, row][on]).float().mean().item()
                out.setdefault(("letter", "word")[row], {})[str(c)] = round(100 * acc, 1)
    model.train()
    return out


def glyph_probe(model, script: str, cell_view: float, n_train: int, n_test: int, **kw) -> float:
    """The world's glyph probe (world/probes.py): the word (48, chance 2%) from the mean of the patches over its ink
    box, one word per page, read by the tuned linear probe (calibrate_probes.cv_predict)."""
    from vlmlab.calibrate_probes import cv_predict

    px, _, words = pages(f"glyph/{script}/{cell_view}", script, n_train + n_test, cell_view, one_word=True, **kw)
    f = features(model, px)
    x = torch.stack([f[i][torch.from_numpy(ws[0][1])].mean(0) for i, ws in enumerate(words)])
    y = np.array([ws[0][0] for ws in words])
    pred, _ = cv_predict(x[:n_train], y[:n_train], x[n_train:], [0.01, 0.1, 1.0, 10.0], 5, 2000)
    return round(100 * float((np.array(pred) == y[n_train:]).mean()), 1)


def _commit() -> str:
    import subprocess

    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()


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
    ap.add_argument("--train-cells", type=float, nargs=2, default=TRAIN_CELLS, help="training pages' cell range")
    ap.add_argument("--eval-cells", type=float, nargs="+", default=EVAL_CELLS, help="cell sizes measured")
    ap.add_argument("--canvas", type=int, default=CANVAS, help="a page's canvas side, pixels")
    ap.add_argument("--max-words", type=int, default=None, help="words per dense page at most")
    ap.add_argument("--noise", type=float, default=0.0, help="Gaussian grain added to every view, grey levels (SD)")
    ap.add_argument("--word-head", action="store_true", help="also a per-patch word head (text spotting)")
    ap.add_argument("--seed", type=int, default=0,
                    help="the tower's and heads' init, the training pages and the batch order (the measurement pages "
                         "do not change); 0 = studies 1-3")
    ap.add_argument("--tag", default="", help="suffix of the output file: <script><tag>.jsonl")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    threadpool_limits(1)
    a.out.mkdir(parents=True, exist_ok=True)
    log = a.out / f"{a.script}{a.tag}.jsonl"
    log.write_text("")

    def emit(row: dict) -> None:
        print(json.dumps(row), flush=True)
        with log.open("a") as fh:
            fh.write(json.dumps(row) + "\n")

    t0 = time.time()
    kw = {"canvas": a.canvas, "max_words": a.max_words, "noise": a.noise}
    train_seed = f"train/{a.script}" + (f"/seed{a.seed}" if a.seed else "")
    px, tg, _ = pages(train_seed, a.script, a.pool, None, train_cells=tuple(a.train_cells), **kw)
    sets = {c: pages(f"test/{a.script}/{c}", a.script, a.test_pages, c, **kw) for c in a.eval_cells}
    emit({"script": a.script, "event": "data", "git": _commit(), "train cells": list(a.train_cells), "canvas": a.canvas,
          "max words": a.max_words, "noise": a.noise, "seed": a.seed, "pool": a.pool,
          "letter patches per train page": round(
        (tg[:, 0] > 0).sum().item() / a.pool, 1), "word patches per train page": round(
        (tg[:, 1] > 0).sum().item() / a.pool, 1), "word head": a.word_head, "seconds": round(time.time() - t0)})
    model = tower(a.seed)
    head = [torch.nn.Linear(128, len(LETTERS) + 1), torch.nn.Linear(128, len(kb.WORDS) + 1) if a.word_head else None]
    params = list(model.parameters()) + [p for h in head if h is not None for p in h.parameters()]
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.05)
    g = torch.Generator().manual_seed(a.seed)
    t0 = time.time()
    for step in range(a.steps):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, a.steps, a.lr)
        i = torch.randint(0, a.pool, (a.batch,), generator=g)
        f = model(pixel_values=px[i].float() / 127.5 - 1).last_hidden_state
        loss = page_loss(head, f, tg[i])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        if (step + 1) % a.every == 0 or step + 1 == a.steps:
            emit({"script": a.script, "event": "letters", "step": step + 1, "loss": round(loss.item(), 3),
                  **{f"{k} % by cell px": v for k, v in head_accuracy(model, head, sets).items()}, "train seconds": round(time.time() - t0)})
    model.eval()
    emit({"script": a.script, "event": "glyph", "step": a.steps, "glyph % by cell px": {
        str(c): glyph_probe(model, a.script, c, *a.glyph, canvas=a.canvas, noise=a.noise) for c in a.eval_cells}, "seconds": round(time.time() - t0)})


if __name__ == "__main__":
    main()
