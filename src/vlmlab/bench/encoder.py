"""Encoder time of square vs aspect-ratio preserving images: does the preserving path's saving in patches
become a saving in time?

    python -m vlmlab.bench --encoder [--vision toy_strong] [--sizes 64,128,192] [--images 16]

For each side S, the same world pictures (the test split's scenes: aspect ratios up to 3:1) go through the
vision tower three ways, timed interleaved in one process, forward only (a frozen tower) and forward +
backward (a tower that trains: LoRA or full):
  square             every picture resized to S x S (image=square, image.size=S)
  preserve           aspect ratio kept, long side S, short side >= S/2 (image=preserve, max_size=S); the
                     encoder groups views by grid (navit.py's bucketed path), so it computes real patches only
  preserve (padded)  the same views through one padded batch with padded keys masked (the path before
                     bucketing): every view costs the batch's largest grid
  square (A/A)       the square batch timed again as a row of its own: its time relative to square is the
                     noise of this measurement (an A/A control); a ratio inside it is no difference
Rows: patches per image (real, and as computed), median ms per image, and each row's time relative to square.
"""
from __future__ import annotations

import statistics

import torch

from vlmlab.bench.measure import timed
from vlmlab.config import compose
from vlmlab.images import ImageConfig, ImageProcessor, collate_views
from vlmlab.model.navit import load_vision_encoder
from vlmlab.world.questions import make_sample
from vlmlab.world.scenes import render

MODES = ("square", "preserve", "preserve (padded)", "square (A/A)")


def pictures(n: int, data_seed: int = 0) -> list:
    """n test-split pictures of the world (vqa scenes: 2-5 objects, random size and aspect ratio)."""
    world = compose([f"data.seed={data_seed}"]).data
    return [render(make_sample(world, "vqa", "test", i).scene) for i in range(n)]


def batch_for(mode: str, size: int, encoder, pics: list) -> tuple[torch.Tensor, torch.Tensor | None]:
    """pixel_values and patch_mask (None for square) of `pics` under one image mode at side `size`."""
    image = ImageConfig(mode="square" if mode.startswith("square") else "preserve", size=size, max_size=size,
                        min_size=max(encoder.patch_size, size // 2))
    proc = ImageProcessor(image.resolved(encoder.image_size), encoder.patch_size)
    views = [v for pic in pics for v in proc(pic)]
    pixels, mask, _ = collate_views(views, encoder.patch_size)
    return pixels, (None if mode.startswith("square") else mask)


def encoder_rows(vision: str = "toy_strong", sizes=(64, 128, 192), n_images: int = 16, reps: int = 8,
                 warmup: int = 2) -> list[dict]:
    """One row per (size, mode, pass): patches per image and median ms per image, timed interleaved."""
    cfg = compose([f"vision={vision}"])
    encoder = load_vision_encoder(cfg.vision.name_or_path).eval()
    pics = pictures(n_images)
    rows = []
    for size in sizes:
        batches = {m: batch_for(m, size, encoder, pics) for m in MODES}
        for train in (False, True):
            def run(mode, train=train):
                pixels, mask = batches[mode]
                if mode == "preserve (padded)":
                    call = lambda: encoder.navit_forward(pixels, mask)  # noqa: E731
                else:
                    call = lambda: encoder(pixels, mask)  # noqa: E731
                if train:
                    encoder.zero_grad(set_to_none=True)
                    feats, m = call()
                    feats[m].square().mean().backward()
                else:
                    with torch.no_grad():
                        call()
            for mode in MODES:
                for _ in range(warmup):
                    run(mode)
            times = {m: [] for m in MODES}
            for r in range(reps):
                for mode in (MODES if r % 2 == 0 else MODES[::-1]):  # ABC CBA
                    times[mode].append(timed(lambda: run(mode), torch.device("cpu"))[0])
            base = statistics.median(times["square"])
            for mode in MODES:
                pixels, mask = batches[mode]
                p = encoder.patch_size
                real = int(mask.sum()) if mask is not None else pixels.shape[0] * (pixels.shape[2] // p) ** 2
                computed = real if mode != "preserve (padded)" else mask.numel()
                med = statistics.median(times[mode])
                rows.append({"vision": vision, "size": size, "mode": mode, "pass": "fwd+bwd" if train else "fwd",
                             "images": len(pics), "patches_per_image": round(real / len(pics), 1),
                             "computed_patches_per_image": round(computed / len(pics), 1),
                             "ms_per_image": round(1000 * med / len(pics), 3),
                             "time_vs_square": round(med / base, 3)})
    return rows


def format_rows(rows: list[dict]) -> str:
    head = f"{'size':>5} {'pass':<8} {'mode':<18} {'patches':>8} {'computed':>9} {'ms/img':>8} {'vs square':>9}"
    lines = [f"encoder time, square vs aspect-ratio preserving (vision={rows[0]['vision']}, "
             f"{rows[0]['images']} world pictures, 1 thread, medians)", head]
    for r in rows:
        lines.append(f"{r['size']:>5} {r['pass']:<8} {r['mode']:<18} {r['patches_per_image']:>8} "
                     f"{r['computed_patches_per_image']:>9} {r['ms_per_image']:>8.3f} {r['time_vs_square']:>9.2f}")
    return "\n".join(lines)
