# World v3 pre-study 12 (plan: calibration/split_sharpness.yaml): how the world draws its split cells sharply.
# Study 10 found that a 2 x 2 split's crop of a 480-px canvas, shrunk 2.5x to the 96-px view, draws the 0.86-px
# cells blurrier than the 480-px page the towers were trained and probed on, shrunk 5x (the canvas holds 2.15 px per
# cell against the page's 4.3), costing the split reading 2.4-6.7 points. This measures, on pages towers, the glyph
# probe (one word per page, view grain as the run's) in each candidate geometry of the world:
#   run         the run's own probe again (both cells on a 480-px page): the A/A control
#   crop 480    the world at 480 px (study 10's reference): base 0.43 px on 480, split 0.86 px on a 240-px crop
#   ss 8        the same canvases, the cells drawn 8x finer than the canvas before its LANCZOS shrink (the world: 2x)
#   canvas 720  base 0.43 px on 720, split 0.86 px on a 360-px crop (3.2 canvas px per cell)
#   canvas 960  base 0.43 px on 960, split 0.86 px on a 480-px crop (4.3 canvas px per cell: the pages' split)
# and what each geometry costs the world per sample (`cost`): a textvqa-like scene (binary4x4, word_height 0.018,
# square canvas of the geometry's side) rendered at its supersampling, its PNG bytes, and its views made by the image
# processor (square 96, 2 x 2 split: 5 views, grain 8), one thread.
#   python calibration/experiments/split_sharpness.py --run RUN.json (--tower DIR | --state RUN.state) --out DIR
#       [--glyph 2400 400] [--cost-scenes 60]
from __future__ import annotations

import argparse
import io
import json
import random
import time
from pathlib import Path

import numpy as np
import torch

from vlmlab.paths import git_commit, repo_root

HERE = Path(__file__).resolve().parent
BASE, SPLIT = 0.43, 0.86  # the script's cell in the base view and in a 2 x 2 split's view (view px)
GEOMETRIES = {  # name -> {view: (cell, canvas px, supersampling)}
    "run": {"base": (BASE, 480, 2), "split": (SPLIT, 480, 2)},
    "crop 480": {"base": (BASE, 480, 2), "split": (SPLIT, 240, 2)},
    "ss 8": {"base": (BASE, 480, 8), "split": (SPLIT, 240, 8)},
    "canvas 720": {"base": (BASE, 720, 2), "split": (SPLIT, 360, 2)},
    "canvas 960": {"base": (BASE, 960, 2), "split": (SPLIT, 480, 2)},
}
WORLD = {"crop 480": (480, 2), "ss 8": (480, 8), "canvas 720": (720, 2), "canvas 960": (960, 2)}  # canvas, supersampling


def cost(canvas: int, supersample: int, n: int, grain: float) -> dict:
    """Per-sample cost of a world at this canvas side and supersampling: render ms and views ms (medians of n, after
    3 untimed), PNG KB (mean)."""
    from vlmlab.images import ImageConfig, ImageProcessor
    from vlmlab.world import kb, scenes
    from vlmlab.world.config import WorldConfig
    from vlmlab.world.questions import random_scene

    world = WorldConfig(script="binary4x4", word_height=0.018, long_side_min=canvas, long_side_max=canvas)
    rng = random.Random(f"cost/{canvas}")
    drawn = [random_scene(rng, world, rng.randint(1, 3), rng.choice(kb.WORDS), square=True) for _ in range(n)]
    proc = ImageProcessor(ImageConfig(size=96, split=2), 8, grain=grain)
    keep, scenes.SUPERSAMPLE = scenes.SUPERSAMPLE, supersample
    try:
        for s in drawn[:3]:  # warm-up, not timed
            proc(scenes.render(s), train=False)
        render_ms, views_ms, sizes = [], [], []
        for s in drawn:
            t0 = time.perf_counter()
            img = scenes.render(s)
            t1 = time.perf_counter()
            proc(img, train=False)
            t2 = time.perf_counter()
            render_ms.append(1000 * (t1 - t0))
            views_ms.append(1000 * (t2 - t1))
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            sizes.append(buf.tell())
    finally:
        scenes.SUPERSAMPLE = keep
    return {"render ms": round(float(np.median(render_ms)), 2), "views ms": round(float(np.median(views_ms)), 2),
            "png KB": round(float(np.mean(sizes)) / 1024, 1), "canvas": list(img.size)}


def main() -> None:
    from threadpoolctl import threadpool_limits

    gp = _grain_placement()
    ap = gp.tower_args(argparse.ArgumentParser())
    ap.add_argument("--cost-scenes", type=int, default=60)
    a = ap.parse_args()
    torch.set_num_threads(1)
    threadpool_limits(1)
    t0 = time.time()
    run = json.loads(a.run.read_text())
    L = gp.module("script_legibility")
    vision, at = gp.load_tower(a, run)
    source = "saved tower" if a.tower is not None else f"restored from step {at}"
    row = {"run": a.run.name, "git": git_commit(repo_root()), "tower": source, "glyph": {}, "cost": {}}
    done = {}  # the same probe is measured once
    for name, views in GEOMETRIES.items():
        for view, (cell, canvas, ss) in views.items():
            if (cell, canvas, ss) not in done:
                done[cell, canvas, ss] = L.glyph_probe(vision, "binary4x4", cell, *a.glyph, canvas=canvas,
                                                       noise=run["noise"], supersample=ss)
            row["glyph"].setdefault(name, {})[view] = done[cell, canvas, ss]
        print(name, row["glyph"][name], flush=True)
    for name, (canvas, ss) in WORLD.items():
        row["cost"][name] = cost(canvas, ss, a.cost_scenes, run["noise"])
        print(name, row["cost"][name], flush=True)
    row["seconds"] = round(time.time() - t0)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / f"sharp_{a.run.stem.removeprefix('text_pages_')}.json").write_text(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def _grain_placement():
    import importlib.util

    spec = importlib.util.spec_from_file_location("grain_placement", HERE / "grain_placement.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


if __name__ == "__main__":
    main()
