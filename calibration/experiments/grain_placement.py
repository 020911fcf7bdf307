# World v3 pre-study 10 (plan: calibration/grain_placement.yaml): where the grain goes.
# Studies 3-9 added grain (SD 8) to the 96-px view the tower sees, after the resize. A world draws its loss on the
# canvas, and the image processor then shrinks a 480-px canvas to the base view by 5 and a 2 x 2 split's 240-px crop
# by 2.5, averaging the two views' grain down unequally. This measures the glyph probe of a pages tower under both
# placements, the split view in its crop's geometry (a 240-px canvas at 0.86 px, the same 2.15 canvas px per cell as
# the base view's 480-px canvas at 0.43 px).
# The tower is a text_pages.py run's, restored from its training state saved 50 steps before its end (resume.py
# resumes bit-identical, tested): the run's own glyph pair is measured again first (an A/A control: the restored
# tower must repeat the run's numbers exactly).
# A tower a run saved (text_pages.py --save-tower) is read from its folder instead (`--tower`); `--canvas-sds` with no
# value measures the run's probe and the crop geometry alone (study 11's report).
#   python calibration/experiments/grain_placement.py --run RUN.json (--state RUN.state | --tower DIR) --out DIR
#       [--canvas-sds 12 24 48] [--glyph 2400 400]
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from vlmlab.paths import git_commit, repo_root

HERE = Path(__file__).resolve().parent
CANVAS, CROP, BASE, SPLIT = 480, 240, 0.43, 0.86  # a v3 canvas, a 2 x 2 split's crop of it, their view cells (px)


def module(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def conditions(view_noise: float, canvas_sds: list[float]) -> dict[str, dict]:
    """name -> the glyph probe's (cell, canvas, grain SD, placement) per view; "run" repeats the study's own probe."""
    out = {"run": {"base": (BASE, CANVAS, view_noise, "view"), "split": (SPLIT, CANVAS, view_noise, "view")},
           "view": {"base": (BASE, CANVAS, view_noise, "view"), "split": (SPLIT, CROP, view_noise, "view")}}
    out.update({f"canvas {sd:g}": {"base": (BASE, CANVAS, sd, "canvas"), "split": (SPLIT, CROP, sd, "canvas")}
                for sd in canvas_sds})
    return out


def restore(run: dict, state: Path, scene_pool: int, pages_pool: int):
    """The run's tower at its last step: its training resumed from `state` (a copy; train_siglip removes the file)."""
    from transformers import PreTrainedTokenizerFast

    from vlmlab.world.vision import VisionSpec, train_siglip

    tok = PreTrainedTokenizerFast.from_pretrained(os.path.expanduser(
        os.environ.get("TOKENIZER", "~/.cache/vlmlab/zoo/vision_strong")))
    spec = replace(VisionSpec(), steps=run["steps"], seed=run["seed"], pool=scene_pool)
    extra = module("text_pages").TextPages(spec.hidden, pages_pool, run["pages batch"], run["noise"], run["seed"],
                                           run["page weight"])
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / state.name
        shutil.copy(state, copy)
        at = int(torch.load(copy, map_location="cpu", weights_only=True)["step"])
        return train_siglip(tok, spec, desc="restore", extra=extra, state_path=copy), at


def tower_args(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of a script that measures a pages run's tower (this one, split_sharpness.py)."""
    ap.add_argument("--run", type=Path, required=True, help="a text_pages.py pages run's json")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--state", type=Path, help="that run's training state, saved before its end")
    src.add_argument("--tower", type=Path, help="that run's saved tower (text_pages.py --save-tower)")
    ap.add_argument("--glyph", type=int, nargs=2, default=(2400, 400))
    ap.add_argument("--scene-pool", type=int, default=4000, help="the run's (text_pages.py's default; smoke: fewer)")
    ap.add_argument("--pages-pool", type=int, default=4000, help="the run's (text_pages.py's default; smoke: fewer)")
    ap.add_argument("--out", type=Path, required=True)
    return ap


def load_tower(a: argparse.Namespace, run: dict):
    """(vision tower, its step): the saved tower (`--tower`: the run's last step) or one restored from `--state`."""
    if a.tower is not None:
        from transformers import SiglipVisionModel

        return SiglipVisionModel.from_pretrained(a.tower).eval(), run["steps"]
    model, at = restore(run, a.state, a.scene_pool, a.pages_pool)
    return model.vision_model, at


def main() -> None:
    from threadpoolctl import threadpool_limits

    ap = tower_args(argparse.ArgumentParser())
    ap.add_argument("--canvas-sds", type=float, nargs="*", default=(12.0, 24.0, 48.0))
    a = ap.parse_args()
    torch.set_num_threads(1)
    threadpool_limits(1)
    t0 = time.time()
    run = json.loads(a.run.read_text())
    L = module("script_legibility")
    vision, at = load_tower(a, run)
    row = {"run": a.run.name, "git": git_commit(repo_root()), "restored from step": at, "glyph": {},
           "grain SD in the view": {f"{c}-px canvas": {f"{sd:g}": round(L.grain_in_view(sd, c), 2)
                                                       for sd in a.canvas_sds} for c in (CANVAS, CROP)}}
    done = {}  # the same probe is measured once
    for name, views in conditions(run["noise"], list(a.canvas_sds)).items():
        for view, (cell, canvas, sd, at_) in views.items():
            if (cell, canvas, sd, at_) not in done:
                done[cell, canvas, sd, at_] = L.glyph_probe(vision, "binary4x4", cell, *a.glyph,
                                                            canvas=canvas, noise=sd, grain_at=at_)
            row["glyph"].setdefault(name, {})[view] = done[cell, canvas, sd, at_]
        print(name, row["glyph"][name], flush=True)
    row["seconds"] = round(time.time() - t0)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / f"grain_{a.run.stem.removeprefix('text_pages_')}.json").write_text(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
