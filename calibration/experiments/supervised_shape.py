# python calibration/experiments/supervised_shape.py  (appends to results/calibration/vision_experiments.jsonl)
# Diagnostic: can the toy ViT (SigLIP vision config, 64 px, patch 8) learn a lone object's shape when told it?
# It ran in world v1 (results/calibration is v1's record). Today's generator cannot draw v1's scenes: a rerun
# draws today's world's (WorldConfig()'s defaults, v3's), and its line in the jsonl names that world.
import json, random, time, torch
import torch.nn.functional as F
from transformers import SiglipVisionConfig, SiglipVisionModel
from vlmlab.world import kb
from vlmlab.world.config import GENERATOR_VERSION, WorldConfig
from vlmlab.world.questions import random_scene
from vlmlab.world.scenes import render
from vlmlab.world.vision import to_pixels
from vlmlab.world.probes import probe_table
from vlmlab.model.navit import VisionEncoder
torch.set_num_threads(1); torch.manual_seed(0)
w = WorldConfig(); rng = random.Random("sup")
sc = [random_scene(rng, w, 1, None, square=True) for _ in range(4000)]
px = torch.stack([to_pixels(render(s), 64) for s in sc]); y = torch.tensor([kb.SHAPES.index(s.objects[0].shape) for s in sc])
m = SiglipVisionModel(SiglipVisionConfig(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4, image_size=64, patch_size=8))
head = torch.nn.Linear(128, 8)
opt = torch.optim.AdamW(list(m.parameters()) + list(head.parameters()), lr=1e-3)
t0 = time.time()
for step in range(800):
    idx = torch.randint(0, 3600, (64,))
    h = m(pixel_values=px[idx]).last_hidden_state.mean(1)
    loss = F.cross_entropy(head(h), y[idx]); loss.backward(); opt.step(); opt.zero_grad()
    if step % 200 == 0: print(step, loss.item(), flush=True)
with torch.no_grad():
    acc = (head(m(pixel_values=px[3600:]).last_hidden_state.mean(1)).argmax(1) == y[3600:]).float().mean().item()
res = probe_table(VisionEncoder(m).eval(), 600, 400)
out = {"name": "supervised", "world": GENERATOR_VERSION, "supervised_shape_acc": round(100 * acc, 1), "train_s": round(time.time() - t0), **{k: round(100 * v, 1) for k, v in res.items()}}
print(json.dumps(out))
open("results/calibration/vision_experiments.jsonl", "a").write(json.dumps(out) + "\n")
