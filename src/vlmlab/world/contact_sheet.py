"""Draw docs/world_contact_sheet.png: sample scenes of every task with their questions and answers.

    python -m vlmlab.world.contact_sheet [--out docs/world_contact_sheet.png] [--per-task 4]

Each tile shows the scene at its native size (scaled to fit) and, beside it, the scene at 64 px and
128 px square, the resolutions a 64-px encoder sees without and with image splitting.
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from PIL import Image, ImageDraw

from vlmlab.world.config import DEFAULT_TASKS as TASKS, WorldConfig
from vlmlab.world.questions import make_sample
from vlmlab.world.scenes import font, render

TILE_W, TILE_H, IMG_BOX = 560, 300, 200


def tile(cfg: WorldConfig, task: str, index: int) -> Image.Image:
    s = make_sample(cfg, task, "validation", index)
    img = render(s.scene)
    out = Image.new("RGB", (TILE_W, TILE_H), "white")
    big = img.copy()
    big.thumbnail((IMG_BOX, IMG_BOX), Image.Resampling.LANCZOS)
    out.paste(big, (10, 10))
    for j, res in enumerate((64, 128)):  # what a square encoder sees, shown at 2x / 1x
        small = img.resize((res, res), Image.Resampling.BICUBIC).resize((128, 128), Image.Resampling.NEAREST)
        out.paste(small, (IMG_BOX + 30 + j * 148, 10))
    draw = ImageDraw.Draw(out)
    draw.text((IMG_BOX + 30, 142), "64 px square", font=font(12), fill=(90, 90, 90))
    draw.text((IMG_BOX + 178, 142), "128 px square", font=font(12), fill=(90, 90, 90))
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
