"""Golden loss histories and scores of a few tiny runs, recorded by the code before a restructuring.

    python tests/assets/make_golden.py     (writes tests/assets/golden_runs.json; one torch thread)

tests/test_golden.py reruns the same configs and compares: a change meant to leave behaviour alone must
reproduce these numbers. Recorded at 597408c (before the experiment-contract refactor, issue 14); re-recorded in
session 7 for world-v2-rc1, whose scenes draw textures and the script (the runs train on the world's pictures).
Since world v3 (session 31) the runs pin world v2's knobs (WORLD), so the recorded numbers still hold.
"""
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

import torch  # noqa: E402

from vlmlab.world.config import WORLD_V2  # noqa: E402

CONFIGS = {  # name -> overrides on top of the tiny smoke recipe
    "baseline": [],
    "xattn_lora": ["fusion=cross_attention", "trainable=lora"],
    "split_mlp": ["image=split", "connector=mlp"],
    "preserve_vision_lora": ["image=preserve", "trainable.vision=lora", "seed=1"],
}
BASE = ["vision=tiny", "llm=tiny", "debug=smoke", "optim.max_steps=6", "data.train_size=24"]
# The world the goldens were recorded in: world v2's knobs, pinned since world v3 changed the defaults (session 31).
# The goldens guard the code's behaviour, and world v2 stays reachable through these knobs.
WORLD = [f"data.{k}={v}" for k, v in WORLD_V2.items()]


def record(name: str, extra: list[str], root: Path) -> dict:
    from vlmlab.config import compose
    from vlmlab.runner import run

    cfg = compose(BASE + extra + WORLD)
    cfg.run_dir = str(root / name)
    cfg.reuse_finished = False
    summary = run(cfg)
    preds = json.loads((root / name / "predictions.json").read_text())
    return {"overrides": BASE + extra, "token_ids": token_ids(cfg), "loss_history": summary["loss_history"],
            "metrics": {k: v for k, v in summary["metrics"].items() if "latency" not in k},
            "visual_tokens_per_image": summary["visual_tokens_per_image"], "params": summary["params"],
            "predictions": {t: [p["prediction"] for p in v] for t, v in preds.items()}}


def token_ids(cfg) -> dict:
    """Token ids of the first training sample (ids, labels) and of each task's first 0- and 2-shot eval prompt."""
    import dataclasses

    from vlmlab import benchmarks
    from vlmlab.data import Processor, TaskDataset
    from vlmlab.evaluate import eval_prompts
    from vlmlab.images import build_image_processor
    from vlmlab.model.build import build_vlm
    from vlmlab.world.tasks import load_mixture

    vlm, tok = build_vlm(cfg, seed=cfg.seed)
    images = build_image_processor(cfg.image, vlm.vision, cfg.vision.mean, cfg.vision.std)
    proc = Processor(tok, vlm.ids, images, vlm.visual_tokens_per_view, cfg.fusion.kind, 2048)
    first = TaskDataset(load_mixture(cfg.data, "train"), proc, train=True, with_answer=True)[0]
    out = {"train": [first.input_ids, first.labels]}
    for shots in (0, 2):
        ev = dataclasses.replace(cfg.eval, shots=shots)
        for task in cfg.data.tasks:
            out[f"{task}/{shots}shot"] = benchmarks.encode_few_shot(proc, eval_prompts(ev, cfg.data, task)[0]).input_ids
    return out


def main() -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("VLMLAB_CACHE", str(Path(tmp) / "cache"))
        out = {name: record(name, extra, Path(tmp)) for name, extra in CONFIGS.items()}
    path = Path(__file__).with_name("golden_runs.json")
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
