# Diagnostic (docs/world.md, world v2): can the toy ViT learn the world's script at all? A per-patch head reads the
# letter whose glyph covers each patch centre (0 = none); trained on whole + crop views of scenes that all show a
# word; prints held-out per-patch letter accuracy on word patches, whole views and crops apart.
#   WORLD='{"word_height": 0.05}' python calibration/experiments/letter_heads.py STEPS LR BATCH
import functools, json, os, random, sys, time
import numpy as np, torch
torch.set_num_threads(1)
from transformers import PreTrainedTokenizerFast
from vlmlab.world import vision as V
from vlmlab.world.lm import cosine_lr
from vlmlab.world.scenes import GLYPHS
from vlmlab.world.script import word_cells
tok = PreTrainedTokenizerFast.from_pretrained(os.path.expanduser("~/.cache/vlmlab/zoo/tokenizer"))
STEPS, LR, B = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
spec = V.VisionSpec(pool=4000)
V.WorldConfig = functools.partial(V.WorldConfig, **json.loads(os.environ.get("WORLD", "{}")))
LETTERS = sorted(GLYPHS)
sc = V.pretraining_scenes("letters", 4200, 1.0)
views = V.make_views(sc, spec, "lv")
rng = random.Random(0)
grid = spec.image_size // spec.patch
def letter_targets(s, box):
    l, t, r, b = box
    c = (np.arange(grid) + 0.5) / grid
    xs, ys = l + c * (r - l), t + c * (b - t)
    out = np.zeros((grid, grid), np.int64)
    for i, ch in enumerate(s.word):
        cells = word_cells(s.word, *s.word_xy, s.cell)[4 * i: 4 * i + 4]
        x0, y0 = cells[0][0][0], cells[0][0][1]
        x1, y1 = cells[3][0][2], cells[3][0][3]
        out[np.ix_((ys >= y0) & (ys < y1), (xs >= x0) & (xs < x1))] = LETTERS.index(ch) + 1
    return out.reshape(-1)
# the views' boxes are not returned by make_views: recompute them with its rng sequence
rngv = random.Random("lv")
tg = []
for s in sc:
    side = rngv.uniform(*spec.crop_side) * min(s.width, s.height)
    x0, y0 = rngv.uniform(0, s.width - side), rngv.uniform(0, s.height - side)
    tg.append(np.stack([letter_targets(s, (0, 0, s.width, s.height)), letter_targets(s, (x0, y0, x0 + side, y0 + side))]))
tg = torch.from_numpy(np.stack(tg))  # (N, 2, P)
model = V.build_siglip(tok, spec).vision_model
head = torch.nn.Linear(spec.hidden, len(LETTERS) + 1)
params = list(model.parameters()) + list(head.parameters())
opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.05)
g = torch.Generator().manual_seed(0)
def ev():
    model.eval(); res = []
    with torch.no_grad():
        for v in (0, 1):
            px = views["pixels"][4000:, v].float() / 127.5 - 1
            f = torch.cat([model(pixel_values=x).last_hidden_state for x in px.split(100)])
            y = tg[4000:, v]; ok = y > 0
            res.append(round((head(f).argmax(-1)[ok] == y[ok]).float().mean().item() * 100, 1))
    model.train(); return res
t0 = time.time()
for step in range(STEPS):
    for gr in opt.param_groups: gr["lr"] = cosine_lr(step, STEPS, LR)
    i = torch.randint(0, 4000, (B,), generator=g); v = torch.randint(0, 2, (B,), generator=g)
    f = model(pixel_values=views["pixels"][i, v].float() / 127.5 - 1).last_hidden_state
    y = tg[i, v]
    ce = torch.nn.functional.cross_entropy(head(f).flatten(0, 1), y.flatten(), reduction="none")
    fg = y.flatten() > 0
    loss = ce[fg].mean() + ce[~fg].mean()
    loss.backward(); torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step(); opt.zero_grad()
    if (step + 1) % 100 == 0: print(step + 1, round(loss.item(), 3), "letter acc whole/crop", ev(), round(time.time() - t0), flush=True)
