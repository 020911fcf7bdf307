# Vision-pretraining experiment toward world v2 (docs/world.md): train a SigLIP tower with VisionSpec overrides, probe it.
#   python calibration/experiments/vision_pretraining.py NAME '{"dense_weight": 1.0, "steps": 800}' [out.jsonl]
#   WORLD='{"word_height": 0.048}' ...   the world's WorldConfig overrides, for the tower's scenes and the probes' alike
# (world v1's experiments ran this script with the captioning head of commit 5b8fa22.)
import json, os, sys, time, torch
from dataclasses import replace
from transformers import PreTrainedTokenizerFast
from vlmlab.world.vision import VisionSpec, train_siglip
from vlmlab.world.probes import probe_table
from vlmlab.model.navit import VisionEncoder
torch.set_num_threads(int(os.environ.get("THREADS", "1")))
if os.environ.get("WORLD"):  # world overrides: every WorldConfig the tower's views and the probes build takes them
    import functools
    import vlmlab.world.probes as P, vlmlab.world.vision as V
    P.WorldConfig = V.WorldConfig = functools.partial(V.WorldConfig, **json.loads(os.environ["WORLD"]))
name = sys.argv[1]
kw = json.loads(sys.argv[2])
tok = PreTrainedTokenizerFast.from_pretrained(os.path.expanduser(os.environ.get("TOKENIZER", "~/.cache/vlmlab/zoo/tokenizer")))
spec = replace(VisionSpec(), **{k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()})
t0 = time.time()
model = train_siglip(tok, spec, desc=name)
t1 = time.time()
enc = VisionEncoder(model.vision_model).eval()
res = probe_table(enc, 600, 400)
out = {"name": name, "spec": kw, **({"world": json.loads(os.environ["WORLD"])} if os.environ.get("WORLD") else {}), "train_s": round(t1 - t0), "probe_s": round(time.time() - t1), **{k: round(100 * v, 1) for k, v in res.items()}}
print(json.dumps(out))
open(sys.argv[3] if len(sys.argv) > 3 else "results/calibration/vision_experiments.jsonl", "a").write(json.dumps(out) + "\n")
if os.environ.get("SAVE"):
    model.save_pretrained(os.environ["SAVE"])
