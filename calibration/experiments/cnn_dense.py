# Diagnostic (docs/world.md, negative results): can a small CNN learn the per-patch colour / shape / word targets
# of vision pretraining (world/vision_targets.py dense_targets) faster than the toy ViT? Prints held-out accuracy on the
# patches that carry each target.   python calibration/experiments/cnn_dense.py
import time, torch
torch.set_num_threads(1)
from vlmlab.world import vision as V
spec = V.VisionSpec(pool=2000)
sc = V.pretraining_scenes("d", 2200, 0.5)
views = V.make_views(sc, spec, "dv")
px, tg = views["pixels"], views["targets"]
tr, te = slice(0, 2000), slice(2000, 2200)
C = 96
net = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.GELU(), torch.nn.MaxPool2d(2),  # 48
    torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.GELU(), torch.nn.MaxPool2d(2),  # 24
    torch.nn.Conv2d(64, 128, 3, padding=1), torch.nn.GELU(), torch.nn.MaxPool2d(2),  # 12
    torch.nn.Conv2d(128, 128, 3, padding=1), torch.nn.GELU(), torch.nn.Conv2d(128, 128, 3, padding=1), torch.nn.GELU())
heads = torch.nn.ModuleDict({"colour": torch.nn.Linear(128, 9), "shape": torch.nn.Linear(128, 9), "word": torch.nn.Linear(128, 49)})
params = list(net.parameters()) + list(heads.parameters())
opt = torch.optim.AdamW(params, lr=1e-3)
g = torch.Generator().manual_seed(0)
f_ = lambda x: net(x).flatten(2).transpose(1, 2)
def ev():
    with torch.no_grad():
        x = px[te].flatten(0, 1).float() / 127.5 - 1; t = tg[te].flatten(0, 1)
        f = f_(x); res = []
        for k, h in enumerate(heads.values()):
            pred = h(f).argmax(-1); fg = t[:, k] > 0
            res.append(round((pred[fg] == t[:, k][fg]).float().mean().item() * 100, 1))
    return res
t0 = time.time()
for step in range(401):
    i = torch.randint(0, 2000, (32,), generator=g); v = torch.randint(0, 2, (32,), generator=g)
    f, t = f_(px[i, v].float() / 127.5 - 1), tg[i, v]
    loss = 0
    for k, h in enumerate(heads.values()):  # per patch: objects (or the word) and background averaged apart
        ce = torch.nn.functional.cross_entropy(h(f).flatten(0, 1), t[:, k].flatten(), reduction="none"); fg = t[:, k].flatten() > 0
        loss = loss + ce[~fg].mean() + (ce[fg].mean() if fg.any() else 0)
    loss.backward(); opt.step(); opt.zero_grad()
    if step % 100 == 0: print(step, round(loss.item(), 3), ev(), round(time.time() - t0), flush=True)
