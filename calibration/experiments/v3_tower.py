# World v3 pre-study 13 (plan: calibration/v3_tower.yaml): the v3 tower's recipe in the library, where the
# pre-studies 5-11 trained theirs through text_pages.py's experiment objective. The zoo's tower (world/vision.py) is
# trained with the world's text pages (VisionSpec.pages, world/pages.py) and the world's grain on every view it sees
# (VisionSpec.grain: scenes, crops and pages alike, fixed per view), and measured as text_pages.py measures: the
# script's glyph probe on 480-px pages (grain as the world's) and the world's probes, their views under the grain.
# The json has text_pages.py's keys, so the budget plans' report (script_study_zoo.budget_section) reads it.
#   python calibration/experiments/v3_tower.py --out DIR [--steps 2400] [--grain 8] [--page-weight 3]
#       [--dense-weight 1] [--order-weight 0] [--seed 0] [--tag _dw2] [--state PATH] [--save-tower DIR]
# `--order-weight` (study 16) adds the region order heads (VisionSpec.order_weight: each object's rank left to right
# and top to bottom among the view's objects); 0, the default, trains the heads of studies 13-15.
from __future__ import annotations

import argparse
import importlib.util
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from vlmlab.paths import git_commit, repo_root

HERE = Path(__file__).resolve().parent


def main() -> None:
    from vlmlab.world.pages import PagesSpec
    from vlmlab.world.vision import VisionSpec, train_siglip

    spec_ = importlib.util.spec_from_file_location("text_pages", HERE / "text_pages.py")
    tp = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(tp)
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2400)
    ap.add_argument("--grain", type=float, default=8.0, help="the world's grain on every view (data.grain), SD")
    ap.add_argument("--pages-batch", type=int, default=32)
    ap.add_argument("--page-weight", type=float, default=3.0)
    ap.add_argument("--pages-pool", type=int, default=4000)
    ap.add_argument("--dense-weight", type=float, default=VisionSpec().dense_weight)
    ap.add_argument("--order-weight", type=float, default=VisionSpec().order_weight)
    ap.add_argument("--scene-pool", type=int, default=VisionSpec().pool, help="the zoo's scenes (a smoke test: fewer)")
    ap.add_argument("--cells", type=float, nargs="+", default=(0.43, 0.86))
    ap.add_argument("--probe-scenes", type=int, nargs=2, default=(2400, 400))
    ap.add_argument("--glyph", type=int, nargs=2, default=(2400, 400))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default="")
    ap.add_argument("--state", type=Path, default=None, help="saved every 50 steps; a run that finds it resumes")
    ap.add_argument("--save-tower", type=Path, default=None)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    tok = tp.start(a.out)
    pages = PagesSpec(batch=a.pages_batch, weight=a.page_weight, pool=a.pages_pool)
    spec = replace(VisionSpec(), steps=a.steps, pool=a.scene_pool, seed=a.seed, grain=a.grain,
                   dense_weight=a.dense_weight, order_weight=a.order_weight, pages=pages)
    row = {"arm": "v3", "git": git_commit(repo_root()), "steps": a.steps, "noise": a.grain, "grain": a.grain,
           "seed": a.seed, "pages batch": a.pages_batch, "page weight": a.page_weight, "dense weight": a.dense_weight}
    if a.order_weight:
        row["order weight"] = a.order_weight
    if a.state is not None and a.state.exists():
        row["resumed at step"] = int(torch.load(a.state, map_location="cpu", weights_only=True)["step"])
    t0 = time.time()
    model = train_siglip(tok, spec, desc="v3", state_path=a.state)
    row["train seconds"] = round(time.time() - t0)
    if a.save_tower is not None:
        model.vision_model.save_pretrained(a.save_tower)
    # probed in the scenes it was pretrained on: VisionSpec's (world v2's canvases and script, the defaults when
    # studies 13-16 ran) with the run's grain, so a rerun measures what they measured after v3 changed the defaults
    tp.measure(model.vision_model, row, a.cells, a.glyph, a.probe_scenes, a.grain, spec.world())
    row["seconds"] = round(time.time() - t0)
    (a.out / f"v3_tower{a.tag}{f'_seed{a.seed}' if a.seed else ''}.json").write_text(json.dumps(row) + "\n")
    print(json.dumps({k: v for k, v in row.items() if k != "probes"}), flush=True)


if __name__ == "__main__":
    main()
