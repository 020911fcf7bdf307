# Diagnostic (docs/world.md, world v2 candidate 3): are the linear probes limited by the encoder or by their own sample
# size? probes.py fits a logistic regression on 600 scenes: 512 features (2 x 2 pooled) for count and position, 48
# classes for the glyph probe. Prints the probe table of a zoo tower at each n_train (400 test scenes), then, for the
# position probe, the share of its pairs whose two objects lie in the same half of the picture (where a 2 x 2 pooled
# read-out cannot tell left from right: its ceiling is about 1 - share / 2) and the probe on other poolings.
#   python calibration/experiments/probe_samples.py vision_strong 600 2400     # a zoo name, or a tower's directory
#   (rc2's tower, after the rc3 bump: ~/.cache/vlmlab/zoo/vision_strong of an rc2 build, by path, as ensure() would
#   rebuild a zoo of another GENERATOR_VERSION)
import sys, time
import torch
import torch.nn.functional as F
torch.set_num_threads(1)
from vlmlab.model.navit import load_vision_encoder
from vlmlab.world import kb
from vlmlab.world.config import WORLD_V2, WorldConfig
from vlmlab.world.probes import _views, probe_table, scenes
from vlmlab.world.scenes import render
from vlmlab.world.vision import _probe
from vlmlab.world.zoo import ensure

# world v2's scenes: the candidate ran before v3 (WorldConfig()'s defaults are v3's since the freeze)
WORLD = WorldConfig(**WORLD_V2)

name, sizes = sys.argv[1], [int(n) for n in sys.argv[2:]]
enc = load_vision_encoder(name if "/" in name else str(ensure(name))).eval()
for n_train in sizes:
    t = time.time()
    table = probe_table(enc, n_train=n_train, world=WORLD)
    print(name, "n_train", n_train, {k: round(100 * v, 1) for k, v in table.items()}, round(time.time() - t), "s",
          flush=True)

n_test = 400
for n_train in sizes:
    n = n_train + n_test
    pairs = [s for s in scenes("probe/pairs", 2 * n, (2, 2), False, WORLD)
             if s.objects[0].colour != s.objects[1].colour][:n]  # probes.py's pairs
    order = list(kb.COLOURS)
    first = [min(s.objects, key=lambda o: order.index(o.colour)) for s in pairs]
    other = [next(o for o in s.objects if o is not f) for s, f in zip(pairs, first)]
    y = torch.tensor([int(f.x < o.x) for f, o in zip(first, other)])
    same = sum((f.x < s.width / 2) == (o.x < s.width / 2) for s, f, o in zip(pairs, first, other)) / n
    proc = _views(enc, 0)
    with torch.no_grad():
        feats = torch.cat([enc(torch.cat([torch.stack(proc(render(s), train=False)) for s in pairs[i:i + 64]]))[0]
                           for i in range(0, n, 64)])  # (n, P, D)
    g = int(feats.shape[1] ** 0.5)
    grid = feats.transpose(1, 2).reshape(n, -1, g, g)
    row = {"same_half_share": round(same, 3), "2x2_ceiling": round(1 - same / 2, 3)}
    for shape in [(2, 2), (1, 4), (1, 6)]:
        x = F.adaptive_avg_pool2d(grid, shape).flatten(1)
        row[f"pooled {shape[0]}x{shape[1]}"] = round(100 * _probe(x[:n_train], y[:n_train], x[n_train:], y[n_train:]), 1)
    print(name, "position n_train", n_train, row, flush=True)
