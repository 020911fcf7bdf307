"""The probes' estimator follow-up: its plan governs the fits, both estimators see the same scenes, the comparison and
the primary are computed from the kept parts."""
import json

import numpy as np
import pytest

from vlmlab.calibrate_probes import build, cv_predict, jobs_of, load_plan, main, primary, tables
from vlmlab.contract.errors import UserError
from vlmlab.paths import repo_root
from vlmlab.world.probes import TARGETS

PLAN = """
question: test
encoders: [[base, tiny]]
train_scenes: 40
test_scenes: 20
secondary: {scale: base, vision: tiny, train_scenes: 60}
estimators: [adam, cv]
cv: {Cs: [0.1, 1.0], folds: 2, max_iter: 200}
primary: {scale: base, vision: tiny, train_scenes: 40, estimator: cv, probes: [colour, shape, count, position]}
alpha: 0.05
"""


def test_the_committed_plan_loads_and_names_what_exists():
    plan = load_plan(repo_root() / "calibration" / "probe_followup.yaml")
    assert set(plan["primary"]["probes"]) <= set(TARGETS)
    for scale, vision in plan["encoders"]:
        assert (repo_root() / "conf" / "scale" / f"{scale}.yaml").is_file()
        assert (repo_root() / "conf" / "vision" / f"{vision}.yaml").is_file()
    assert [plan["primary"]["scale"], plan["primary"]["vision"]] in plan["encoders"]
    jobs = jobs_of(plan)  # the primary's part first, the secondary's last: a stopped run has the primary
    assert jobs[0] == ("base", "toy_strong", 2400) and jobs[-1] == ("base", "toy_strong", 9600)
    assert len(jobs) == len(set(jobs)) == len(plan["encoders"]) + 1


def test_a_plan_with_an_unknown_key_or_estimator_is_refused(tmp_path):
    (tmp_path / "p.yaml").write_text(PLAN + "seeds: 3\n")
    with pytest.raises(UserError, match="unknown keys \\['seeds'\\]"):
        load_plan(tmp_path / "p.yaml")
    (tmp_path / "p.yaml").write_text(PLAN.replace("[adam, cv]", "[adam, svm]"))
    with pytest.raises(UserError, match="svm"):
        load_plan(tmp_path / "p.yaml")


def test_the_tuned_estimator_reads_a_separable_problem_and_picks_c_from_the_grid():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 40)
    x = rng.normal(size=(120, 5)) + 4 * np.eye(3, 5)[y]
    pred, c = cv_predict(x[::2], y[::2], x[1::2], [0.01, 1.0], folds=3, max_iter=500)
    assert np.mean(np.array(pred) == y[1::2]) > 0.95 and c in (0.01, 1.0)


def _part(acc: dict, correct_adam: list[int], correct_cv: list[int]) -> dict:
    rows = []
    for probe, (a, c) in acc.items():
        rows += [{"probe": probe, "estimator": "adam", "train_scenes": 40, "test_scenes": 4, "accuracy": a, "C": None,
                  "correct": correct_adam},
                 {"probe": probe, "estimator": "cv", "train_scenes": 40, "test_scenes": 4, "accuracy": c, "C": 1.0,
                  "correct": correct_cv}]
    return {"scale": "base", "vision": "tiny", "train_scenes": 40, "rows": rows}


def test_the_comparison_counts_discordant_scenes_and_the_primary_reads_the_targets(tmp_path):
    plan = load_plan(_write(tmp_path, PLAN))
    met = {"colour": (100, 100), "shape": (70, 95), "count": (60, 85), "position": (75, 80)}
    probes, tests = tables([_part(met, [1, 1, 0, 0], [1, 0, 1, 1])], plan)
    row = tests[tests.probe == "shape"].iloc[0]
    assert (row.only_cv_right, row.only_adam_right) == (2, 1) and row.p == pytest.approx(1.0)  # exact binomial, 3 pairs
    assert not row.differ and tests.differ.dtype == bool
    assert primary(probes, plan)[0] == "met: every probe reads at its target"
    probes, _ = tables([_part({**met, "shape": (70, 89.9)}, [1] * 4, [1] * 4)], plan)
    assert primary(probes, plan)[0] == "missed: shape under target"
    assert primary(probes[probes.probe != "count"], plan)[0] == "not run"
    text = build([_part(met, [1, 1, 0, 0], [1, 0, 1, 1])], plan, "p.yaml", tmp_path)
    assert "**met: every probe reads at its target**" in text and (tmp_path / "PROBES.md").read_text() == text


def _write(tmp_path, text):
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    return path


@pytest.mark.filterwarnings("ignore::UserWarning")  # sklearn on 40 scenes: glyph's 48 classes, folds of one scene
def test_the_command_fits_every_encoder_once_and_rebuilds_from_its_parts(tmp_path):
    plan, out = _write(tmp_path, PLAN), tmp_path / "out"
    assert main([str(plan), "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "parts").iterdir()) == ["base_tiny_40.json", "base_tiny_60.json"]  # + secondary
    part = json.loads((out / "parts" / "base_tiny_40.json").read_text())
    assert {(r["train_scenes"], r["estimator"]) for r in part["rows"]} == {(40, "adam"), (40, "cv")}
    assert all(len(r["correct"]) == 20 for r in part["rows"]) and part["git_commit"] and part["train_scenes"] == 40
    report = (out / "PROBES.md").read_text()
    assert "tiny at the base scale, 40 train scenes, estimator cv: **" in report
    (out / "PROBES.md").unlink()
    assert main([str(plan), "--out", str(out)]) == 0  # nothing left to fit: the report from the kept part
    assert (out / "PROBES.md").read_text() == report
    assert json.loads((out / "parts" / "base_tiny_40.json").read_text()) == part


def test_the_committed_follow_up_regenerates_from_its_parts(tmp_path):
    from vlmlab.calibrate_probes import _part

    committed = repo_root() / "results" / "calibration_probes"
    plan = load_plan(repo_root() / "calibration" / "probe_followup.yaml")
    parts = [json.loads(_part(committed, *j).read_text()) for j in jobs_of(plan)]  # every part ran
    assert {p["git_commit"][:7] for p in parts} <= {"fba4bcf", "507860c"}  # the plan's commit, then its amendment's
    build(parts, plan, "calibration/probe_followup.yaml", tmp_path)
    for name in ("PROBES.md", "probes.csv", "tests.csv"):
        assert (tmp_path / name).read_text() == (committed / name).read_text(), name
