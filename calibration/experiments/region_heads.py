# Diagnostic (docs/world.md, negative results): the toy ViT (SigLIP vision tower) trained on the dense and region
# heads alone (world/vision.py DenseHeads, no contrastive loss); prints held-out region accuracy of colour, shape and
# word on whole views and on crops.   SPEC='{"patch": 6}' WORLD='{"word_height": 0.04}' EVERY=100 \
#   python calibration/experiments/region_heads.py STEPS LR BATCH
import functools, os, sys, time, torch
torch.set_num_threads(1)
from transformers import PreTrainedTokenizerFast
from vlmlab.world import vision as V
from vlmlab.world.lm import cosine_lr
tok = PreTrainedTokenizerFast.from_pretrained(os.path.expanduser("~/.cache/vlmlab/zoo/tokenizer"))
STEPS, LR, B = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
import json
spec = V.VisionSpec(pool=4000, **json.loads(os.environ.get("SPEC", "{}")))
V.WorldConfig = functools.partial(V.WorldConfig, **json.loads(os.environ.get("WORLD", "{}")))  # the scenes' knobs
sc = V.pretraining_scenes("d", 4200, 0.5)
views = V.make_views(sc, spec, "dv")
model = V.build_siglip(tok, spec).vision_model
heads = V.DenseHeads(spec.hidden)
params = list(model.parameters()) + list(heads.parameters())
opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.05)
g = torch.Generator().manual_seed(0)
def ev():
    model.eval()
    with torch.no_grad():
        res = []
        for v in (0, 1):
            b = {k: t[4000:, v] for k, t in views.items()}
            f = torch.cat([model(pixel_values=x).last_hidden_state for x in (b["pixels"].float() / 127.5 - 1).split(100)])
            for k, lg in enumerate(heads.region_logits(f, b["masks"])):
                y = b["labels"][..., k].flatten(); ok = y >= 0
                res.append(round((lg.argmax(-1)[ok] == y[ok]).float().mean().item() * 100, 1))
    model.train(); return res
t0 = time.time()
for step in range(STEPS):
    for gr in opt.param_groups: gr["lr"] = cosine_lr(step, STEPS, LR)
    i = torch.randint(0, 4000, (B,), generator=g); v = torch.randint(0, 2, (B,), generator=g)
    batch = {k: t[i, v] for k, t in views.items()}
    f = model(pixel_values=batch["pixels"].float() / 127.5 - 1).last_hidden_state
    loss = heads.loss(f, batch); loss.backward(); torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step(); opt.zero_grad()
    if (step + 1) % 100 == 0: print(step + 1, round(loss.item(), 3), "whole c/s/w, crop c/s/w", ev(), round(time.time() - t0), flush=True)
