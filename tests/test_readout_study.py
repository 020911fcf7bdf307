"""The read-out follow-up: its pooled features are the probes' at 2 x 2, its parts are fit once and kept, and the
comparison and the primary are computed from them."""
import json

import pytest
import torch
import yaml

from vlmlab.paths import repo_root
from vlmlab.readout_study import comparisons, load_plan, main, primary, report

PLAN = """
encoders: [[base, tiny]]
primary: {scale: base, vision: tiny, probe: count, against: 2, pools: [1]}
probes: [count, position]
pools: [1, 2]
train_scenes: 30
test_scenes: 10
target: 80
alpha: 0.05
cv: {Cs: [0.1, 1.0], folds: 2, max_iter: 200}
"""


def test_the_committed_plan_loads_and_names_what_exists():
    plan = load_plan(repo_root() / "calibration" / "count_readout.yaml")
    assert [plan["primary"]["scale"], plan["primary"]["vision"]] == plan["encoders"][0]  # the primary is fit first
    assert plan["primary"]["against"] in plan["pools"] and set(plan["primary"]["pools"]) <= set(plan["pools"])
    for scale, vision in plan["encoders"]:
        assert (repo_root() / "conf" / "vision" / f"{vision}.yaml").is_file()


def test_a_plan_with_an_unknown_key_is_refused(tmp_path):
    (tmp_path / "p.yaml").write_text(PLAN + "seeds: 3\n")
    with pytest.raises(ValueError, match="unknown keys \\['seeds'\\]"):
        load_plan(tmp_path / "p.yaml")


def test_pooled_features_nest_and_the_probes_read_out_is_2x2():
    from vlmlab.config import compose
    from vlmlab.model.navit import load_vision_encoder
    from vlmlab.world.config import WorldConfig
    from vlmlab.world.probes import count_set, features, probe_sets, scenes

    enc = load_vision_encoder(compose(["scale=base", "vision=tiny"]).vision.name_or_path).eval()
    world = WorldConfig()
    some = scenes("probe/multi", 3, (1, 5), False, world)
    two, one = features(enc, some, grid=2, grain=world.grain), features(enc, some, grid=1, grain=world.grain)
    d = one.shape[1]
    assert two.shape[1] == 4 * d  # (N, D x 4): each channel's four quadrants side by side
    assert torch.allclose(two.view(3, d, 4).mean(-1), one, atol=1e-5)  # the mean of equal quadrants is the mean
    x, labels = count_set(enc, 3, WorldConfig())
    assert torch.equal(x, two) and labels == [len(s.objects) - 1 for s in some]
    assert torch.equal(probe_sets(enc, 3)["count"][0], x)  # probe_sets reads count as before


def _part(rows):
    return {"scale": "base", "vision": "tiny", "rows": [
        {"probe": p, "pool": g, "C": 1.0, "accuracy": 100 * sum(c) / len(c), "seconds": 1.0, "correct": c}
        for p, g, c in rows]}


def test_each_pooling_is_compared_with_the_reference_on_the_same_scenes():
    ref, finer, same = [1] * 60 + [0] * 40, [1] * 90 + [0] * 10, [1] * 60 + [0] * 40
    part = _part([("count", 2, ref), ("count", 4, finer), ("count", 1, same)])
    tests = {t["pool"]: t for t in comparisons(part, reference=2)}
    assert set(tests) == {1, 4} and tests[4]["only_pool"] == 30 and tests[4]["only_reference"] == 0
    assert tests[4]["p_holm"] < 1e-6 and tests[1]["p"] == 1.0 and tests[4]["difference"] == 30.0
    plan = yaml.safe_load(PLAN) | {"pools": [1, 2, 4], "primary": {"scale": "base", "vision": "tiny", "probe": "count",
                                                                   "against": 2, "pools": [1, 4]}}
    keyed = {("base", "tiny", t["probe"], t["pool"]): t for t in tests.values()}
    text = primary([part], keyed, plan)
    assert "**a pooling reads it at the target**: 4 x 4 (90.0)" in text
    assert "4 x 4 against 2 x 2: **gains**, +30.0 (30 against 0" in text and "1 x 1 against 2 x 2: **no difference" in text
    low = _part([("count", 2, ref), ("count", 4, [1] * 70 + [0] * 30), ("count", 1, same)])
    assert "**no pooling reads it at 80 or more** (best 70.0, pool 4)" in primary([low], {}, plan)
    assert "**not run**" in primary([], {}, plan)


@pytest.mark.filterwarnings("ignore::UserWarning")  # sklearn on 30 scenes: folds with few of a class
def test_the_command_fits_each_encoder_once_and_rebuilds_from_its_parts(tmp_path):
    (tmp_path / "p.yaml").write_text(PLAN)
    out = tmp_path / "out"
    assert main([str(tmp_path / "p.yaml"), "--out", str(out)]) == 0
    part = json.loads((out / "parts" / "base_tiny.json").read_text())
    assert [(r["probe"], r["pool"]) for r in part["rows"]] == [("count", 1), ("count", 2), ("position", 1),
                                                                ("position", 2)]
    assert all(len(r["correct"]) == 10 for r in part["rows"]) and part["git_commit"]
    assert [r["features"] for r in part["rows"]][:2] == [part["rows"][0]["features"], 4 * part["rows"][0]["features"]]
    text = (out / "READOUT.md").read_text()
    assert "| base tiny | count |" in text and "## Primary" in text
    (out / "READOUT.md").unlink()
    assert main([str(tmp_path / "p.yaml"), "--out", str(out)]) == 0  # the kept part, not a refit
    assert (out / "READOUT.md").read_text() == text
    assert text == report([part], load_plan(tmp_path / "p.yaml"), str(tmp_path / "p.yaml"))


def test_the_committed_follow_up_regenerates_and_its_2x2_fits_repeat_the_estimator_follow_ups():
    """The A/A control the plan states: at 2 x 2 the read-out study fits what calibrate-probes fit (same encoder bits,
    scenes, features and estimator), so each test scene is read the same, not only the accuracy."""
    committed = repo_root() / "results" / "calibration_probes"
    plan = load_plan(repo_root() / "calibration" / "count_readout.yaml")
    parts = [json.loads((committed / "readout" / "parts" / f"{s}_{v}.json").read_text()) for s, v in plan["encoders"]]
    assert {p["git_commit"][:7] for p in parts} == {"96ac516"}  # the plan's commit: fit after it, before any change
    assert report(parts, plan, "calibration/count_readout.yaml") == (committed / "readout" / "READOUT.md").read_text()
    for part in parts:
        earlier = json.loads((committed / "parts" / f"{part['scale']}_{part['vision']}_2400.json").read_text())
        cv = {r["probe"]: r["correct"] for r in earlier["rows"] if r["estimator"] == "cv"}
        for r in part["rows"]:
            if r["pool"] == 2:
                assert r["correct"] == cv[r["probe"]], (part["vision"], r["probe"])
