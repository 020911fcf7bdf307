# Does a probe's accuracy depend on the torch/BLAS thread count? (session 22, docs/world.md "The probes, with a
# tuned estimator"). Large toy_strong's count probe, 2,400 + 400 scenes as world/probes.py lays them out:
#   python calibration/experiments/probe_threads.py 1 ; python calibration/experiments/probe_threads.py 2
# prints the features' checksum, the calibrated (Adam) probe's accuracy and the tuned (cv) probe's at that thread count.
import sys, torch, yaml
from threadpoolctl import threadpool_limits
from vlmlab.calibrate_probes import cv_predict
from vlmlab.config import compose
from vlmlab.model.navit import load_vision_encoder
from vlmlab.world import probes
from vlmlab.world.vision import _probe
n = int(sys.argv[1])
torch.set_num_threads(n)
cfg = compose(["scale=large", "vision=toy_strong"])
enc = load_vision_encoder(cfg.vision.name_or_path).eval()
multi = probes.scenes("probe/multi", 2800, (1, 5), False, cfg.data)  # the large scale's world (its canvases, script)
x = probes.features(enc, multi)
y = torch.tensor([len(s.objects) - 1 for s in multi])
adam = 100 * _probe(x[:2400], y[:2400], x[2400:], y[2400:])
cv = yaml.safe_load(open("calibration/probe_followup.yaml"))["cv"]
with threadpool_limits(n):
    pred, c = cv_predict(x[:2400], y[:2400].tolist(), x[2400:], cv["Cs"], cv["folds"], cv["max_iter"])
tuned = 100 * sum(int(p == t) for p, t in zip(pred, y[2400:].tolist())) / 400
print(f"{n} thread(s): features sum {x.double().sum().item():.6f}, adam {adam:.2f}, cv {tuned:.2f} (C {c})")
