"""The image pipeline's cost per sample, with and without the view store (images.py, view_store.py).

    python -m vlmlab.bench --views [--images 64] [--reps 8]

For each world (world v2's defaults; a v3-like world: canvases of 720-960 px, the binary4x4 script, grain 8 at
the encoder's input) and image setting (square; 2 x 2 split), the same test-split samples are loaded as a run loads
them (a datasets row, then the ImageProcessor), timed interleaved in one process with one thread:
  no store          the decoded column, every view made (decode, resizes, grain, normalisation)
  store (filling)   the undecoded column into an empty store: every picture a miss, made and written (once)
  store (reading)   the same pictures again: every picture a hit, read back and normalised
  no store (A/A)    the first row timed again as a row of its own; its ratio to it is this measurement's noise
Rows: median CPU ms per sample over the reps (filling: one pass), and each row's time relative to "no store".
The pictures are rendered into a throwaway cache first (not timed).
"""
from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import torch

from vlmlab.bench.measure import timed
from vlmlab.images import ImageConfig, ImageProcessor
from vlmlab.view_store import ViewStore, undecoded
from vlmlab.world.config import WORLD_V2, WorldConfig

WORLDS = {"v2": WorldConfig(**WORLD_V2),
          "v3-like": WorldConfig(long_side_min=720, long_side_max=960, script="binary4x4", word_height=0.018, grain=8.0)}
IMAGES = {"square": ImageConfig(size=96), "split 2x2": ImageConfig(size=96, split=2)}
MODES = ("no store", "store (filling)", "store (reading)", "no store (A/A)")


def _cpu(fn) -> float:
    return timed(fn, torch.device("cpu"))[1]  # process CPU seconds


def view_rows(n_images: int = 64, reps: int = 8, task: str = "textvqa") -> list[dict]:
    from vlmlab.world.tasks import build_split

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for wname, world in WORLDS.items():
            decoded = build_split(world, task, "test", n_images, progress=False)
            raw = undecoded(decoded)
            for iname, image in IMAGES.items():
                cfg = image.resolved(96)
                plain = ImageProcessor(cfg, 8, world.grain)
                stored = ImageProcessor(cfg, 8, world.grain, ViewStore(Path(tmp) / f"{wname}-{iname}.sqlite", 1024))

                def load(ds, proc):
                    for i in range(len(ds)):
                        row = ds[i]
                        proc(row["image"], row["id"], train=False)

                times = {m: [] for m in MODES}
                times["store (filling)"].append(_cpu(lambda: load(raw, stored)))
                timed = [m for m in MODES if m != "store (filling)"]
                for r in range(reps):
                    for mode in (timed if r % 2 == 0 else timed[::-1]):  # ABC CBA
                        ds, proc = (raw, stored) if mode == "store (reading)" else (decoded, plain)
                        times[mode].append(_cpu(lambda: load(ds, proc)))
                base = statistics.median(times["no store"])
                for mode in MODES:
                    med = statistics.median(times[mode])
                    rows.append({"world": wname, "image": iname, "mode": mode, "samples": n_images,
                                 "ms_per_sample_cpu": round(1000 * med / n_images, 3),
                                 "time_vs_no_store": round(med / base, 3), "reps": len(times[mode])})
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = [f"image pipeline per sample, with and without the view store ({rows[0]['samples']} test samples, "
             "1 thread, median CPU ms)", f"{'world':<8} {'image':<10} {'mode':<16} {'ms/sample':>10} {'vs no store':>11}"]
    for r in rows:
        lines.append(f"{r['world']:<8} {r['image']:<10} {r['mode']:<16} {r['ms_per_sample_cpu']:>10.3f} "
                     f"{r['time_vs_no_store']:>11.2f}")
    return "\n".join(lines)
