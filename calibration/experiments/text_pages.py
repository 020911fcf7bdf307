# World v3 pre-study 5 (plan: calibration/script_study_zoo.yaml): text pages in the zoo's own pretraining.
# Studies 1-4 trained a tower on text alone. A v3 zoo would train one tower on the world's scenes (SigLIP's loss and the
# dense heads, world/vision.py) and on text pages at once. This trains the base zoo's tower recipe (VisionSpec()'s
# defaults, 1,200 steps, one seed) in two arms and measures both:
#   control  the zoo's recipe as it is
#   pages    the same, plus every step a batch of text pages (script_legibility.py's sparse binary4x4 pages with
#            grain, cells 0.25-2.0 px) through the same tower, read by a per-patch letter head and word head
# Measures: the world's probes on the tower (world/probes.py's read-outs, the tuned probe, 2,400 + 400 scenes; each
# test scene's correctness kept for McNemar's test between the arms) and the script's glyph probe at the plan's cells
# (script_legibility.glyph_probe, same pages and grain as studies 3-4).
#   python calibration/experiments/text_pages.py ARM --out results/script_study [--steps 1200] [--noise 8]
#       [--pages-batch 32] [--page-weight 1] [--tag _w3] [--seed 0] [--state PATH: save every 50 steps, resume]
#       [--save-tower DIR: the trained vision tower, save_pretrained, for later measurements]
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import torch

from vlmlab.paths import git_commit, repo_root

HERE = Path(__file__).resolve().parent
CV = {"Cs": [1.0e-4, 3.0e-4, 1.0e-3, 3.0e-3, 1.0e-2, 3.0e-2, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0],
      "folds": 5, "max_iter": 2000}  # calibration/probe_followup.yaml's tuned probe


def legibility():
    spec = importlib.util.spec_from_file_location("script_legibility", HERE / "script_legibility.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class TextPages(torch.nn.Module):
    """A pool of text pages and the heads that read them; `loss(vision_model)` is one batch's letter and word loss
    (script_legibility.page_loss)."""

    def __init__(self, hidden: int, pool: int, batch: int, noise: float, seed: int = 0,  # seed 0: study 5's
                 weight: float = 1.0):
        super().__init__()
        L = self.legibility = legibility()
        self.batch, self.weight = batch, weight
        self.px, self.tg, _ = L.pages(f"train/binary4x4/zoo{seed}", "binary4x4", pool, None, train_cells=(0.25, 2.0),
                                      canvas=480, max_words=40, noise=noise)
        with torch.random.fork_rng():  # the heads' init from the seed (studies 5-8 drew it from torch's unseeded default)
            torch.manual_seed(seed + 2)
            self.letter = torch.nn.Linear(hidden, len(L.LETTERS) + 1)
            self.word = torch.nn.Linear(hidden, len(L.kb.WORDS) + 1)
        self.gen = torch.Generator().manual_seed(seed)

    def loss(self, vision_model) -> torch.Tensor:
        i = torch.randint(0, len(self.px), (self.batch,), generator=self.gen)
        f = vision_model(pixel_values=self.px[i].float() / 127.5 - 1).last_hidden_state
        return self.weight * self.legibility.page_loss((self.letter, self.word), f, self.tg[i])


def measure(vision_model, row: dict, cells, glyph, probe_scenes, noise: float, world=None) -> None:
    """Fill `row` with the script's glyph probe at `cells` (480-px pages, grain `noise`) and the world's probes (the
    tuned probe, each test scene's correctness kept), the probes' views under `world` (None: world v2's)."""
    from vlmlab.calibrate_probes import fits
    from vlmlab.model.navit import VisionEncoder
    from vlmlab.world.probes import probe_sets

    L = legibility()
    row["glyph % by cell px"] = {str(c): L.glyph_probe(vision_model, "binary4x4", c, *glyph, canvas=480, noise=noise)
                                 for c in cells}
    enc = VisionEncoder(vision_model).eval()
    n_train, n_test = probe_scenes
    rows = fits(probe_sets(enc, n_train + n_test, world), n_train, n_test, {"estimators": ["cv"], "cv": CV})
    row["probes"] = {r["probe"]: {"accuracy": round(r["accuracy"], 2), "C": r["C"], "correct": r["correct"]}
                     for r in rows}


def start(out: Path):
    """One thread (torch's and the BLAS's), the output folder made; returns the zoo tower's tokenizer."""
    from threadpoolctl import threadpool_limits
    from transformers import PreTrainedTokenizerFast

    torch.set_num_threads(1)
    threadpool_limits(1)
    out.mkdir(parents=True, exist_ok=True)
    return PreTrainedTokenizerFast.from_pretrained(os.path.expanduser(
        os.environ.get("TOKENIZER", "~/.cache/vlmlab/zoo/vision_strong")))


def main() -> None:
    from vlmlab.world.vision import VisionSpec, train_siglip

    ap = argparse.ArgumentParser()
    ap.add_argument("arm", choices=("control", "pages"))
    ap.add_argument("--steps", type=int, default=VisionSpec().steps)
    ap.add_argument("--pages-batch", type=int, default=32)
    ap.add_argument("--page-weight", type=float, default=1.0, help="the pages' loss weight against the zoo's loss")
    ap.add_argument("--pages-pool", type=int, default=4000)
    ap.add_argument("--scene-pool", type=int, default=VisionSpec().pool, help="the zoo's scenes (a smoke test: fewer)")
    ap.add_argument("--noise", type=float, default=8.0, help="grain on the text pages (and the glyph probe's), SD")
    ap.add_argument("--cells", type=float, nargs="+", default=(0.43, 0.86), help="the script glyph probe's cells")
    ap.add_argument("--probe-scenes", type=int, nargs=2, default=(2400, 400))
    ap.add_argument("--glyph", type=int, nargs=2, default=(2400, 400))
    ap.add_argument("--seed", type=int, default=0,
                    help="the zoo recipe's seed (scenes, init, order) and the pages' pool and order; 0 = study 5")
    ap.add_argument("--tag", default="", help="suffix of the output's name: text_pages_<arm><tag>[_seed<s>].json")
    ap.add_argument("--state", type=Path, default=None,
                    help="a training state file: saved every 50 steps, a run that finds it resumes (resume.py)")
    ap.add_argument("--save-tower", type=Path, default=None,
                    help="keep the trained vision tower there (save_pretrained) for measurements after the run")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    tok = start(a.out)
    spec = replace(VisionSpec(), steps=a.steps, pool=a.scene_pool, seed=a.seed)
    row = {"arm": a.arm, "git": git_commit(repo_root()), "steps": a.steps, "noise": a.noise, "seed": a.seed,
           "pages batch": a.pages_batch if a.arm == "pages" else 0,
           "page weight": a.page_weight if a.arm == "pages" else 0}
    if a.state is not None and a.state.exists():  # "train seconds" then counts this process's steps alone
        row["resumed at step"] = int(torch.load(a.state, map_location="cpu", weights_only=True)["step"])
    t0 = time.time()
    extra = (TextPages(spec.hidden, a.pages_pool, a.pages_batch, a.noise, a.seed, a.page_weight)
             if a.arm == "pages" else None)
    model = train_siglip(tok, spec, desc=a.arm, extra=extra, state_path=a.state)
    row["train seconds"] = round(time.time() - t0)
    if a.save_tower is not None:
        model.vision_model.save_pretrained(a.save_tower)
    measure(model.vision_model, row, a.cells, a.glyph, a.probe_scenes, a.noise)
    row["seconds"] = round(time.time() - t0)
    (a.out / f"text_pages_{a.arm}{a.tag}{f'_seed{a.seed}' if a.seed else ''}.json").write_text(json.dumps(row) + "\n")
    print(json.dumps({k: v for k, v in row.items() if k != "probes"}), flush=True)


if __name__ == "__main__":
    main()
