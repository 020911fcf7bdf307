"""Studies 17-18 (calibration/word_path*.yaml): the committed STUDY files are made from the committed runs by the
study's own scoring, and the paired test is McNemar's."""
import json

import pytest
import yaml

from vlmlab.paths import repo_root


@pytest.fixture(scope="module")
def word_path(load_script):
    return load_script(repo_root() / "calibration" / "experiments" / "word_path.py")


def test_paired_is_mcnemars_exact_test_on_the_discordant_questions(word_path):
    t = word_path.paired([1.0, 1.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0, 1.0])
    assert (t["diff"], t["only_a"], t["only_b"]) == (60.0, 3, 0)
    assert t["p"] == pytest.approx(0.25)  # 3 against 0 discordant: 2 x 0.5^3
    assert word_path.paired([0.0, 1.0], [1.0, 0.0])["p"] == pytest.approx(1.0)
    with pytest.raises(AssertionError):
        word_path.paired([1.0], [1.0, 0.0])


@pytest.mark.parametrize("plan, out", [("word_path.yaml", "word_path"), ("word_path_data.yaml", "word_path_data")])
def test_the_committed_study_is_scored_from_the_committed_runs(word_path, plan, out):
    folder = repo_root() / "results" / "calibration_v3" / out
    if not (folder / "study.json").exists():
        pytest.skip(f"{out} has not been run")
    spec = yaml.safe_load((repo_root() / "calibration" / plan).read_text())
    spec["runs"] = str(repo_root() / "results" / "calibration_v3" / "word_path" / "runs") if out == "word_path" \
        else str(folder / "runs")
    spec = {**spec, **{k: {n: str(repo_root() / f) for n, f in v.items()} for k, v in spec.items() if k == "references"}}
    if "reference" in spec:
        spec["reference"] = str(repo_root() / spec["reference"])
    committed = json.loads((folder / "study.json").read_text())
    scored = word_path.score(spec)
    assert scored["checks"] == committed["checks"]
    assert {a: r["textvqa"] for a, r in scored["arms"].items()} == {a: r["textvqa"] for a, r in committed["arms"].items()}
    assert len(scored["arms"]) == len(spec["arms"]) + len(word_path.references(spec))  # every arm finished


def test_study_19_scores_its_arms_by_the_plan(load_script, tmp_path):
    """connector_reader.py --score: the A/A anchor against study 17's 70.7, P1's bar, and McNemar by test scene."""
    cr = load_script(repo_root() / "calibration" / "experiments" / "connector_reader.py")
    plan = yaml.safe_load((repo_root() / "calibration" / "word_path_connector.yaml").read_text())
    arms = {"reader_crop_aa": [1] * 69 + [0] * 31, "reader_crop": [1] * 60 + [0] * 40,
            "perceiver_views": [0] * 60 + [1] * 19 + [0] * 21}
    for arm, correct in arms.items():
        (tmp_path / f"{arm}.json").write_text(json.dumps({"arm": arm, "epochs": 10, "seconds": 1, "correct": correct,
                                                          "accuracy": round(100 * sum(correct) / len(correct), 1)}))
    res = cr.score(tmp_path, plan)
    assert res["checks"]["A/A"]["met"] and not res["checks"]["P1"]["met"]  # 69 within 3 of 70.7; 19 < 20
    pair = res["checks"]["perceiver_views vs reader_crop"]
    assert (pair["only_a"], pair["only_b"], pair["diff"]) == (19, 60, -41.0) and pair["p"] < 1e-4
    assert "perceiver_crop vs reader_crop" not in res["checks"]  # an arm that has not run is not scored


@pytest.mark.parametrize("plan, out", [("word_path_connector.yaml", "word_path_connector"),
                                       ("word_path_connector_attn.yaml", "word_path_connector_attn")])
def test_the_committed_connector_studies_are_scored_from_their_arms(load_script, plan, out):
    cr = load_script(repo_root() / "calibration" / "experiments" / "connector_reader.py")
    folder = repo_root() / "results" / "calibration_v3" / out
    if not (folder / "study.json").exists():
        pytest.skip(f"{out} has not been run")
    spec = yaml.safe_load((repo_root() / "calibration" / plan).read_text())
    assert cr.score(folder, spec) == json.loads((folder / "study.json").read_text())
