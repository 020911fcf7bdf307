# Diagnostic (docs/world.md, world v2 candidate 4): can a trainable pooler read the word from a tower's patches, where
# the linear glyph probe (the mean of the word's patches) cannot? The VLM's perceiver is such a pooler; if this one,
# trained on a few thousand one-word scenes, cannot read the word either, no recipe of the VLM will. Features: all
# patches of the view that holds the word (the whole picture, base; the 2 x 2 crop holding the word centre, split);
# the reader: 4 learned queries with a position embedding per patch, one cross-attention layer, an MLP, 48 words
# (chance ~2%), Adam for EPOCHS epochs on N_TRAIN scenes, scored on 400 others. The views carry the world's grain
# (world v3: 8; v2: none) as the VLM's do, and the split crop is the one holding the word's centre (until session 32
# it was the crop holding the word's top-left corner, which the probe table never used).
#   python calibration/experiments/word_probe.py TOWER_DIR_OR_ZOO_NAME [N_TRAIN] [EPOCHS] [OUT_JSON]
import json, sys, time
from pathlib import Path
import torch
from torch import nn
torch.set_num_threads(1)
from vlmlab.images import split_boxes
from vlmlab.model.navit import load_vision_encoder
from vlmlab.world import kb
from vlmlab.world.config import WorldConfig
from vlmlab.world.probes import scene_views, scenes
from vlmlab.world.vision_targets import word_box
from vlmlab.world.zoo import ensure


class Reader(nn.Module):
    def __init__(self, dim: int, patches: int, classes: int, queries: int = 4, width: int = 128):
        super().__init__()
        self.inp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, width))
        self.pos = nn.Parameter(torch.zeros(patches, width))
        self.q = nn.Parameter(torch.randn(queries, width) * 0.02)
        self.attn = nn.MultiheadAttention(width, 4, batch_first=True)
        self.out = nn.Sequential(nn.Flatten(), nn.Linear(queries * width, 256), nn.GELU(), nn.Linear(256, classes))

    def forward(self, x):
        h = self.inp(x) + self.pos
        q, _ = self.attn(self.q.expand(len(x), -1, -1), h, h)
        return self.out(q)


def view_features(enc, words: list, split: int, grain: float) -> torch.Tensor:
    """(N, P, D): every patch feature of the view holding each word's centre (the whole picture when split=0)."""
    out = []
    with torch.no_grad():
        for s, views in zip(words, scene_views(enc, words, split, grain)):
            crops = split_boxes(s.width, s.height, split) if split else [(0, 0, s.width, s.height)]
            box = word_box(s)
            x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            k = next(j for j, c in enumerate(crops) if c[0] <= x <= c[2] and c[1] <= y <= c[3])
            out.append(enc(views[k][None])[0][0])
    return torch.stack(out)


def read(x: torch.Tensor, y: torch.Tensor, n_train: int, epochs: int, seed: int = 0, make=None) -> float:
    """Test accuracy of a reader trained on x[:n_train] and scored on the rest (`fit_correct`'s mean)."""
    correct = fit_correct(x, y, n_train, epochs, seed, make)
    return sum(correct) / len(correct)


def fit_correct(x: torch.Tensor, y: torch.Tensor, n_train: int, epochs: int, seed: int = 0, make=None) -> list[int]:
    """1 or 0 for each test scene (x[n_train:]): did a reader trained on x[:n_train] read its word? `make()` builds
    the reader (after seeding), by default the Reader over x's patches."""
    torch.manual_seed(seed)
    model = make() if make else Reader(x.shape[-1], x.shape[1], len(kb.WORDS))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(n_train).split(32):
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(); loss.backward(); opt.step()
    model.eval()
    with torch.no_grad():
        return (model(x[n_train:]).argmax(-1) == y[n_train:]).int().tolist()


if __name__ == "__main__":
    name = sys.argv[1]
    n_train = int(sys.argv[2]) if len(sys.argv) > 2 else 2400
    epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    enc = load_vision_encoder(name if "/" in name else str(ensure(name, build_if_missing=False))).eval()
    world = WorldConfig()
    words = scenes("probe/words", n_train + 400, (1, 1), True, world)
    y = torch.tensor([kb.WORDS.index(s.word) for s in words])
    row, t = {"tower": name, "n_train": n_train, "epochs": epochs, "grain": world.grain}, time.time()
    for split in (0, 2):
        x = view_features(enc, words, split, world.grain)
        row[f"word reader ({'split' if split else 'base'})"] = round(100 * read(x, y, n_train, epochs), 1)
    row["seconds"] = round(time.time() - t)
    print(json.dumps(row), flush=True)
    if len(sys.argv) > 4:
        Path(sys.argv[4]).write_text(json.dumps(row) + "\n")
