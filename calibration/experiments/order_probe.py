# Study 16's mechanism, post hoc (not a check): does a tower's region feature say where its object sits against the
# other? On the position probe's pair scenes (world/probes.py position_set: two objects of different colours, the
# same seeds), a linear probe (world/vision.py `_probe`) reads from one object's own patches (the mean over its box,
# as the colour probe reads) whether it is the left one of the two; its colour is fixed as the one first in
# kb.COLOURS, so a tower that only knows colour reads chance. The region order heads train exactly this read-out
# (rank 0 of 2); the position probe needs it through 2 x 2 pooled quadrants instead.
#   python calibration/experiments/order_probe.py TOWER_DIR [...] [--scenes 2400 400] [--grain 8]
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def main() -> None:
    from transformers import SiglipVisionModel

    from vlmlab.model.navit import VisionEncoder
    from vlmlab.world.config import WORLD_V2, WorldConfig
    from vlmlab.world.probes import local_features, position_pairs
    from vlmlab.world.vision import _probe
    from vlmlab.world.vision_targets import object_box

    ap = argparse.ArgumentParser()
    ap.add_argument("towers", type=Path, nargs="+")
    ap.add_argument("--scenes", type=int, nargs=2, default=(2400, 400))
    ap.add_argument("--grain", type=float, default=8.0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    n_train, n_test = a.scenes
    world = WorldConfig(**{**WORLD_V2, "grain": a.grain})  # study 16 ran in world v2's scenes (the default until v3)
    pairs, first, labels = position_pairs(n_train + n_test, world)
    y = torch.tensor(labels)
    for tower in a.towers:
        enc = VisionEncoder(SiglipVisionModel.from_pretrained(tower)).eval()
        x = local_features(enc, pairs, [object_box(f) for f in first], grain=a.grain)
        acc = _probe(x[:n_train], y[:n_train], x[n_train:], y[n_train:])
        print(json.dumps({"tower": str(tower), "left one, from its own patches %": round(100 * acc, 1),
                          "test scenes": n_test}), flush=True)


if __name__ == "__main__":
    main()
