# Diagnostic (docs/world.md, world v2 candidate 4): where does text reading break, at the letters or at the word? A
# linear probe reads the letter under each patch centre (world/vision_targets.py letter_map; 25 letters, chance 4%) from
# that patch's own feature, on the word's patches of one-word scenes, in the whole picture (base) and in the 2 x 2 crop
# that holds the word (split); beside it, the glyph probe (the word from the mean of its patches, 48 words).
#   python calibration/experiments/letter_probe.py TOWER_DIR_OR_ZOO_NAME [WORD_HEIGHT] [N_TRAIN]
import sys, time
import numpy as np, torch
torch.set_num_threads(1)
from vlmlab.images import split_boxes
from vlmlab.model.navit import load_vision_encoder
from vlmlab.world import kb
from vlmlab.world.config import WORLD_V2, WorldConfig
from vlmlab.world.probes import _views, local_features, scenes
from vlmlab.world.scenes import render
from vlmlab.world.vision import _probe
from vlmlab.world.vision_targets import letter_map, word_box
from vlmlab.world.zoo import ensure

name = sys.argv[1]
# world v2's scenes: the candidate ran before v3 (WorldConfig()'s defaults are v3's since the freeze)
world = WorldConfig(**{**WORLD_V2, **({"word_height": float(sys.argv[2])} if len(sys.argv) > 2 else {})})
n_train, n_test = (int(sys.argv[3]) if len(sys.argv) > 3 else 600), 400
enc = load_vision_encoder(name if "/" in name else str(ensure(name, build_if_missing=False))).eval()
words = scenes("probe/words", n_train + n_test, (1, 1), True, world)
out = {"tower": name, "word_height": world.word_height, "n_train": n_train}
t = time.time()
for split in (0, 2):
    proc = _views(enc, split)
    xs, ys, owner = [], [], []
    with torch.no_grad():
        for i, s in enumerate(words):
            canvas = (0, 0, s.width, s.height)
            crops = split_boxes(s.width, s.height, split) if split else [canvas]
            x, y = s.word_xy
            k = next(j for j, c in enumerate(crops) if c[0] <= x <= c[2] and c[1] <= y <= c[3])
            feats, _ = enc(proc(render(s), train=False)[k][None])  # (1,P,D)
            g = int(feats.shape[1] ** 0.5)
            l, tp, r, b = crops[k]
            c = (np.arange(g) + 0.5) / g
            letters = letter_map(s, l + c * (r - l), tp + c * (b - tp)).reshape(-1)
            on = np.nonzero(letters)[0]
            xs.append(feats[0, on]); ys += (letters[on] - 1).tolist(); owner += [i] * len(on)
    x, y, owner = torch.cat(xs), torch.tensor(ys), torch.tensor(owner)
    train = owner < n_train
    out[f"letter ({'split' if split else 'base'})"] = round(100 * _probe(x[train], y[train], x[~train], y[~train]), 1)
    out[f"letter patches ({'split' if split else 'base'})"] = int(train.sum())
    wy = torch.tensor([kb.WORDS.index(s.word) for s in words])
    wx = local_features(enc, words, [word_box(s) for s in words], split=split)
    out[f"glyph ({'split' if split else 'base'})"] = round(100 * _probe(wx[:n_train], wy[:n_train], wx[n_train:], wy[n_train:]), 1)
out["seconds"] = round(time.time() - t)
print(__import__("json").dumps(out), flush=True)
