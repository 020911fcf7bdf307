# Study 19 (calibration/word_path_connector.yaml): can the VLM's own connector read the word when it is trained as a
# classifier, with no LM behind it? Study 17's word reader (word_probe.py: 4 learned queries with a position
# embedding per patch) reads the word from the crop that holds it at 70.7 %; the VLM with splitting does not learn
# to read it. This trains four readers on the same one-word scenes (probe/words, the world's canvases and grain, the
# zoo's vision_strong frozen), each with word_probe.read's optimiser (AdamW 1e-3, batch 32, EPOCHS epochs on
# N_TRAIN scenes, scored on 400 others):
#   reader_crop_aa   study 17's reader_strong split arm again (the word reader on the crop holding the word's centre,
#                    30 epochs whatever EPOCHS is): an A/A anchor, 70.7 in study 17
#   reader_crop      the same reader for EPOCHS epochs
#   reader_views     the word reader over all five split views' patches (the 2 x 2 crops and the whole picture)
#   perceiver_crop   the baseline recipe's connector (conf: the perceiver, built and initialised as build_vlm does for
#                    seed 0) on the crop holding the word, its tokens flattened into word_probe's head (-> 48 words)
#   perceiver_views  the same connector on each of the five views, as the VLM applies it, all 80 tokens into the head
# Study 19b (calibration/word_path_connector_attn.yaml) reads the connector's tokens with the word reader instead of
# the flattened head (4 learned queries attending over the tokens, a position embedding per token):
#   perceiver_crop_attn, perceiver_views_attn   as perceiver_crop and perceiver_views, with that head
# Each arm's json keeps every test scene's 1 / 0 ("correct"), so arms pair by scene (McNemar).
# Each arm writes DIR/<arm>.json; arms given to separate processes (--arms) run side by side.
#   python calibration/experiments/connector_reader.py --out DIR [--n-train 2400] [--epochs 10] [--arms ...]
#   python calibration/experiments/connector_reader.py --out DIR --score PLAN   (DIR/STUDY.md from the arms' files)
import argparse, json, sys, time
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from word_probe import Reader, fit_correct  # noqa: E402

from vlmlab.images import split_boxes  # noqa: E402
from vlmlab.paths import repo_root  # noqa: E402
from vlmlab.world import kb  # noqa: E402
from vlmlab.world.config import WorldConfig  # noqa: E402
from vlmlab.world.probes import scene_views, scenes  # noqa: E402
from vlmlab.world.vision_targets import word_box  # noqa: E402

ARMS = ("reader_crop_aa", "reader_crop", "reader_views", "perceiver_crop", "perceiver_views", "perceiver_crop_attn",
        "perceiver_views_attn")
AA_EPOCHS = 30  # study 17's reader


class ConnectorHead(nn.Module):
    """The VLM's connector applied to each view alone, its tokens from every view read by a head: flattened into
    word_probe's MLP head (attend=False, study 19), or by word_probe's Reader over the tokens (attend=True, 19b)."""

    def __init__(self, connector: nn.Module, tokens: int, classes: int, attend: bool = False):
        super().__init__()
        self.connector, self.attend = connector, attend
        self.out = Reader(connector.out_dim, tokens, classes) if attend else nn.Sequential(
            nn.Linear(tokens * connector.out_dim, 256), nn.GELU(), nn.Linear(256, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (N, V, P, D)
        n, v = x.shape[:2]
        tokens = self.connector(x.flatten(0, 1))  # (N * V, T, out_dim)
        return self.out(tokens.reshape(n, -1, tokens.shape[-1]) if self.attend else tokens.reshape(n, -1))


def word_crop(scene, split: int = 2) -> int:
    """The index of the split crop holding the word's centre (the views are the crops, then the whole picture)."""
    box = word_box(scene)
    x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return next(j for j, c in enumerate(split_boxes(scene.width, scene.height, split))
                if c[0] <= x <= c[2] and c[1] <= y <= c[3])


def score(folder: Path, plan: dict) -> dict:
    """The plan's checks from the arms' files: the A/A anchor, P1, and each arm against reader_crop (McNemar's exact
    test on the paired test scenes, Holm over the arms)."""
    from statsmodels.stats.multitest import multipletests
    from word_path import paired

    arms = {f.stem: json.loads(f.read_text()) for f in sorted(folder.glob("*.json")) if f.stem in ARMS}
    arms.update({a: json.loads((repo_root() / f).read_text()) for a, f in plan.get("reference_arms", {}).items()})
    aa, p1 = plan.get("aa"), plan["primary"]["P1"]
    checks = {}
    if aa and aa["arm"] in arms:
        v = arms[aa["arm"]]["accuracy"]
        checks["A/A"] = {"arm": aa["arm"], "accuracy": v, "reference": aa["reference"],
                         "met": abs(v - aa["reference"]) <= aa["within"]}
    if p1["arm"] in arms:
        v = arms[p1["arm"]]["accuracy"]
        checks["P1"] = {"arm": p1["arm"], "accuracy": v, "met": v >= p1["at_least"]}
    against = plan.get("against_reader_crop", ["reader_views", "perceiver_crop", "perceiver_views"])
    others = [a for a in against if a in arms and "reader_crop" in arms]
    tests = [paired(arms[a]["correct"], arms["reader_crop"]["correct"]) for a in others]
    if tests:
        adj = multipletests([t["p"] for t in tests], method="holm")[1]
        for a, t, q in zip(others, tests, adj):
            checks[f"{a} vs reader_crop"] = {**t, "p_holm": float(q)}
    for a, b in plan.get("pairs", []):
        if a in arms and b in arms:
            checks[f"{a} vs {b}"] = paired(arms[a]["correct"], arms[b]["correct"])
    return {"arms": {a: {k: r[k] for k in ("accuracy", "epochs", "seconds")} for a, r in arms.items()}, "checks": checks}


def markdown(plan: dict, res: dict) -> str:
    lines = [f"# {plan['study']}: {plan['question']}", "",
             "Made by calibration/experiments/connector_reader.py --score from the arms' files and the plan "
             f"{plan.get('plan', 'calibration/word_path_connector.yaml')} (pre-registered; its header states the "
             "arms, predictions and decisions). One-word scenes of world v3 (48 words, chance ~2 %), vision_strong frozen, 2,400 train and "
             "400 test scenes.", "", "| arm | accuracy (%) | epochs | seconds |", "|---|---|---|---|"]
    lines += [f"| {a} | {r['accuracy']} | {r['epochs']} | {r['seconds']} |" for a, r in res["arms"].items()]
    lines += ["", "| check | result |", "|---|---|"] + [f"| {k} | {json.dumps(c)} |" for k, c in res["checks"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n-train", type=int, default=2400)
    ap.add_argument("--n-test", type=int, default=400)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    ap.add_argument("--score", type=Path, help="the plan: write DIR/STUDY.md and study.json from DIR's arms, train nothing")
    a = ap.parse_args()
    if a.score:
        import yaml

        plan = yaml.safe_load(a.score.read_text())
        res = score(a.out, plan)
        (a.out / "study.json").write_text(json.dumps(res, indent=1) + "\n")
        (a.out / "STUDY.md").write_text(markdown(plan, res))
        print(markdown(plan, res))
        return
    torch.set_num_threads(1)
    from vlmlab.config import compose
    from vlmlab.model.build import build_vlm

    cfg = compose(["image.split=2", "logger=none"])
    vlm, _ = build_vlm(cfg, seed=0)
    enc, world = vlm.vision.eval(), WorldConfig()
    words = scenes("probe/words", a.n_train + a.n_test, (1, 1), True, world)
    y = torch.tensor([kb.WORDS.index(s.word) for s in words])
    t0 = time.time()
    with torch.no_grad():  # (N, 5, P, D): every view's patch features, the crops first
        x = torch.stack([enc(v)[0] for v in scene_views(enc, words, 2, world.grain)])
    crop = x[torch.arange(len(words)), torch.tensor([word_crop(s) for s in words])]  # (N, P, D)
    row = {"tower": cfg.vision.name_or_path, "n_train": a.n_train, "n_test": a.n_test,
           "grain": world.grain, "features_seconds": round(time.time() - t0), "connector": asdict(cfg.connector)}
    state = {k: v.clone() for k, v in vlm.connector.state_dict().items()}  # the seed-0 init, for both perceiver arms

    def perceiver(views: int, attend: bool = False):
        def make():
            vlm.connector.load_state_dict(state)
            return ConnectorHead(vlm.connector, views * vlm.connector.num_tokens(x.shape[2]), len(kb.WORDS), attend)
        return make

    inputs = {"reader_crop_aa": (crop, None), "reader_crop": (crop, None), "reader_views": (x.flatten(1, 2), None),
              "perceiver_crop": (crop[:, None], perceiver(1)), "perceiver_views": (x, perceiver(x.shape[1])),
              "perceiver_crop_attn": (crop[:, None], perceiver(1, True)),
              "perceiver_views_attn": (x, perceiver(x.shape[1], True))}
    a.out.mkdir(parents=True, exist_ok=True)
    for arm in a.arms:
        t = time.time()
        xs, make = inputs[arm]
        epochs = AA_EPOCHS if arm == "reader_crop_aa" else a.epochs
        correct = fit_correct(xs, y, a.n_train, epochs, make=make)
        out = {**row, "arm": arm, "epochs": epochs, "accuracy": round(100 * sum(correct) / len(correct), 1),
               "seconds": round(time.time() - t), "correct": correct}
        (a.out / f"{arm}.json").write_text(json.dumps(out) + "\n")
        print(arm, out["accuracy"], out["seconds"], flush=True)


if __name__ == "__main__":
    main()
