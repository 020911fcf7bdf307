"""Draw docs/world_contact_sheet.png: sample scenes of every task with their questions and answers.

    python -m vlmlab.world.contact_sheet [--out docs/world_contact_sheet.png] [--per-task 4]

Each tile shows the scene at its native size (scaled to fit) and, beside it, what the zoo's 96-px encoder sees:
the whole picture squashed to 96 px square (the base view) and, with 2 x 2 splitting, the crop holding the word
(or the first object), also at 96 px, each with the world's view grain (data.grain) as the encoder gets it. Both
are shown enlarged 1.5x with nearest-neighbour pixels.
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from vlmlab.images import add_view_grain, split_boxes
from vlmlab.world.config import DEFAULT_TASKS as TASKS, WorldConfig
from vlmlab.world.questions import make_sample
from vlmlab.world.scenes import font, render
from vlmlab.world.script import word_extent

VIEW = 96  # the zoo encoder's resolution (world/vision.py VisionSpec.image_size)

TILE_W, TILE_H, IMG_BOX = 560, 300, 200


def tile(cfg: WorldConfig, task: str, index: int) -> Image.Image:
    s = make_sample(cfg, task, "validation", index)
    img = render(s.scene)
    out = Image.new("RGB", (TILE_W, TILE_H), "white")
    big = img.copy()
    big.thumbnail((IMG_BOX, IMG_BOX), Image.Resampling.LANCZOS)
    out.paste(big, (10, 10))
    sc = s.scene
    if sc.word is not None:
        w, h = word_extent(sc.word, sc.cell, sc.script)
        cx, cy = sc.word_xy[0] + w / 2, sc.word_xy[1] + h / 2
    else:
        cx, cy = sc.objects[0].x, sc.objects[0].y
    crop = next(b for b in split_boxes(sc.width, sc.height, 2) if b[0] <= cx <= b[2] and b[1] <= cy <= b[3])
    for j, view in enumerate((img, img.crop(crop))):  # what the encoder sees, shown at 1.5x
        seen = add_view_grain(np.asarray(view.resize((VIEW, VIEW), Image.Resampling.BICUBIC)), cfg.grain)
        small = Image.fromarray(seen).resize((144, 144), Image.Resampling.NEAREST)
        out.paste(small, (IMG_BOX + 20 + j * 160, 10))
    draw = ImageDraw.Draw(out)
    draw.text((IMG_BOX + 20, 158), f"base view, {VIEW} px", font=font(12), fill=(90, 90, 90))
    draw.text((IMG_BOX + 180, 158), f"a 2x2 split crop, {VIEW} px", font=font(12), fill=(90, 90, 90))
    lines = [f"{s.id}  ({img.width}x{img.height})"]
    lines += textwrap.wrap(f"Q: {s.question}", 80) if s.question else []
    lines += textwrap.wrap(f"A: {' | '.join(s.answers[:2])}", 80)
    draw.multiline_text((10, IMG_BOX + 20), "\n".join(lines[:5]), font=font(11), fill=(20, 20, 20), spacing=3)
    return out


def contact_sheet(cfg: WorldConfig, per_task: int = 4) -> Image.Image:
    sheet = Image.new("RGB", (TILE_W * 2, TILE_H * per_task * len(TASKS) // 2), (235, 235, 235))
    tiles = [tile(cfg, task, i) for task in TASKS for i in range(per_task)]
    for k, t in enumerate(tiles):
        sheet.paste(t, ((k % 2) * TILE_W, (k // 2) * TILE_H))
    return sheet


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m vlmlab.world.contact_sheet", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="docs/world_contact_sheet.png")
    ap.add_argument("--per-task", type=int, default=4)
    args = ap.parse_args(argv)
    contact_sheet(WorldConfig(), args.per_task).save(Path(args.out), optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
