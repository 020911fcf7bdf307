# Position's probe split by the pair's geometry (study 16's mechanism, reported, not a check): the probe reads
# left/right from 2 x 2 pooled quadrants, which tell colours apart per half; when both objects' centres lie in the
# same half of the picture, the quadrants alone cannot order them (docs/world.md, candidate 3: ~35% of pairs,
# ceiling near 83%). A tower whose features say where each object sits against the other should gain there.
# Reads the towers' json (text_pages.py / v3_tower.py: probes.position.correct, one entry per test scene, in order)
# and redraws the probe's test pairs (world/probes.py position_set, the same seeds); nothing is re-run.
#   python calibration/experiments/position_halves.py results/script_study/v3_tower_dw2.json [...] [--train 2400]
from __future__ import annotations

import argparse
import json
from pathlib import Path

from scipy.stats import binomtest

from vlmlab.world.config import WORLD_V2, WorldConfig
from vlmlab.world.probes import position_pairs


def same_half(scene) -> bool:
    a, b = scene.objects
    return (a.x < scene.width / 2) == (b.x < scene.width / 2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("towers", type=Path, nargs="+")
    ap.add_argument("--train", type=int, default=2400, help="the probe's train scenes (v3_tower.py --probe-scenes)")
    a = ap.parse_args()
    rows = []
    for path in a.towers:
        row = json.loads(path.read_text())
        correct = row["probes"]["position"]["correct"]
        # the pair scenes do not depend on the grain; the v3 towers' probes drew them on world v2's canvases
        test = position_pairs(a.train + len(correct), WorldConfig(**WORLD_V2))[0][a.train:]
        assert len(test) == len(correct)
        out = {"tower": path.stem, "position %": row["probes"]["position"]["accuracy"]}
        for name, keep in (("different halves", False), ("same half", True)):
            hits = [c for c, s in zip(correct, test) if same_half(s) == keep]
            ci = binomtest(sum(hits), len(hits)).proportion_ci()
            out[name] = f"{100 * sum(hits) / len(hits):.1f} ({100 * ci.low:.0f}-{100 * ci.high:.0f}, n={len(hits)})"
        rows.append(out)
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
