"""Seed noise split into training and question noise (report/noise.py, python -m vlmlab.noise)."""
import numpy as np
import pandas as pd
import pytest

from vlmlab import noise as cli
from vlmlab.config import repo_root
from vlmlab.contract.ablation import Ablation, Check
from vlmlab.contract.tasks import get_task
from vlmlab.report import noise


def test_the_closed_form_mean_squares_are_statsmodels_two_way_anova():
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    d = np.random.default_rng(0).normal(size=(5, 40)) + np.arange(5)[:, None] * 0.3
    frame = pd.DataFrame({"unit": np.repeat(np.arange(5), 40).astype(str), "item": np.tile(np.arange(40), 5).astype(str),
                          "y": d.ravel()})
    table = anova_lm(smf.ols("y ~ C(unit) + C(item)", data=frame).fit())
    c = noise.components(d)
    assert c["var_questions"] * 40 == pytest.approx(table.loc["Residual", "mean_sq"])
    assert c["var_obs"] * 40 == pytest.approx(table.loc["C(unit)", "mean_sq"])
    assert c["p_training"] == pytest.approx(table.loc["C(unit)", "PR(>F)"])


def _units(train_sd: float, units: int = 8, n: int = 400, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    item = rng.normal(0, 5, size=n)  # question difficulty: shared by every unit, so it is no noise between them
    return item[None, :] + rng.normal(0, train_sd, size=(units, 1)) + rng.normal(0, 10, size=(units, n))


def test_question_noise_alone_is_told_apart_from_a_training_effect():
    alone = noise._row(noise.components(_units(0.0)))
    assert alone["p_training"] > 0.05 and alone["questions_share"] > 0.6 and alone["sd_training"] < 0.3
    assert alone["sd_4x"] < 0.6 * alone["sd"]  # question noise halves with 4x the questions
    trained = noise._row(noise.components(_units(3.0)))
    assert trained["p_training"] < 0.001 and trained["questions_share"] < 0.2
    assert 1.5 < trained["sd_training"] < 5.0  # 3.0 estimated from 8 units
    assert trained["sd_4x"] > 0.9 * trained["sd"]  # more questions barely help: seeds do
    # the projection is the components' sum: var = training + questions / k
    assert trained["sd_2x"] ** 2 == pytest.approx(trained["sd_training"] ** 2 + trained["sd_questions"] ** 2 / 2)


def _answers(preds: dict[str, list[str]], gold: list[str], task: str = "vqa") -> pd.DataFrame:
    return pd.DataFrame({"task": task, "id": [f"{task}-test-{i:06d}-colour" for i in range(len(gold))],
                         "answers": gold, **preds})


def test_a_checks_units_are_its_cell_pairs_at_each_seed_and_avg_adds_the_tasks_question_noise():
    rng = np.random.default_rng(1)
    n, seeds = 60, range(4)
    gold = [str(g) for g in rng.choice(["red", "blue"], size=n)]
    other = lambda g: "blue" if g == "red" else "red"  # noqa: E731
    runs = {}
    for s in seeds:
        runs[f"connector=perceiver/seed{s}"] = [g if rng.random() < 0.8 else other(g) for g in gold]
        runs[f"connector=mlp/seed{s}"] = [g if rng.random() < 0.5 else other(g) for g in gold]
    vqa = _answers(runs, gold)
    ok = _answers(runs, gold, "okvqa").assign(id=lambda t: t["id"].str.replace("vqa", "okvqa"))
    answers = pd.concat([vqa, ok], ignore_index=True)
    abl = Ablation(name="fx", finding="FX", question="?", paper={}, grid={"connector": "perceiver,mlp"},
                   seeds=list(seeds), metrics=["avg"],
                   checks=[Check.parse({"better": {"connector": "perceiver"}, "worse": {"connector": "mlp"},
                                        "metric": "vqa", "primary": True}),
                           Check.parse({"better": {"connector": "perceiver"}, "worse": {"connector": "mlp"},
                                        "metric": "avg"})])
    t = noise.noise_table(answers, abl).set_index(["kind", "metric", "name"])
    row = t.loc[("check", "vqa", "connector=perceiver vs connector=mlp")]
    score = lambda col: 100 * np.mean([p == g for p, g in zip(runs[col], gold)])  # noqa: E731
    d = [score(f"connector=perceiver/seed{s}") - score(f"connector=mlp/seed{s}") for s in seeds]
    assert row["units"] == 4 and row["mean"] == pytest.approx(np.mean(d)) and row["sd"] == pytest.approx(np.std(d, ddof=1))
    assert row["primary"] and row["seeds_to_decide"] >= 2
    # the two tasks here answer alike, so avg's d equals vqa's and its question variance is the two tasks' over 2^2
    both = t.loc[("check", "avg", "connector=perceiver vs connector=mlp")]
    assert both["mean"] == pytest.approx(row["mean"]) and both["sd"] == pytest.approx(row["sd"])
    assert both["sd_questions"] ** 2 == pytest.approx(2 * row["sd_questions"] ** 2 / 4)
    cell = t.loc[("cell", "vqa", "connector=perceiver")]
    assert cell["units"] == 4 and cell["mean"] == pytest.approx(np.mean([score(f"connector=perceiver/seed{s}") for s in seeds]))


def test_a_run_without_the_questions_is_left_out_not_scored_as_wrong():
    answers = _answers({"a=1/seed0": ["red", "red"], "a=1/seed1": ["red", None]}, ["red", "blue"])
    assert noise.QuestionScores(answers).matrix("vqa", ["a=1/seed0", "a=1/seed1"]) is None


COMMITTED = repo_root() / "results"


@pytest.mark.skipif(not (COMMITTED / "noise.csv").is_file(), reason="no committed noise table")
def test_the_committed_noise_table_regenerates_and_its_cell_means_are_the_runs_scores():
    # F0 alone (every file's captions cost ~45 s of CIDEr): its rows from the committed answers equal noise.csv's
    got, _ = cli.table(COMMITTED, repo_root() / "ablations", only=["f0_blind"])
    want = pd.read_csv(COMMITTED / "noise.csv")
    want = want[want["ablation"] == "f0_blind"].reset_index(drop=True)
    pd.testing.assert_frame_equal(got[want.columns], want, check_dtype=False, atol=1e-9)
    cells = pd.read_csv(COMMITTED / "f0_blind" / "cells.csv").set_index("cell")
    for r in got[got["kind"] == "cell"].itertuples():
        assert r.mean == pytest.approx(cells.loc[r.name, f"{r.metric}_mean"], abs=1e-6)  # per question = the run's


def test_per_question_scores_average_to_the_tasks_score():
    preds = ["a small red star", "two objects: a blue cross and a red star", "a heart"]
    gold = [["a small red star", "a red star"], ["a blue cross and a red star", "two objects"], ["a green heart"]]
    for task in ("caption", "vqa"):
        spec = get_task(task)
        assert np.mean(spec.item_scores(preds, gold)) == pytest.approx(spec.score(preds, gold))


def test_the_cli_writes_the_tables_and_names_what_it_could_not_split(tmp_path):
    res, abl_dir = tmp_path / "results", tmp_path / "ablations"
    (res / "fy").mkdir(parents=True)
    abl_dir.mkdir()
    (abl_dir / "fy.yaml").write_text(
        "finding: FY\nquestion: q?\npaper: {claim: c, numbers: n}\ngrid: {connector: 'perceiver,mlp'}\nseeds: [0]\n"
        "metrics: [avg]\nchecks:\n  - {better: {connector: perceiver}, worse: {connector: mlp}, metric: vqa, "
        "primary: true}\n")
    _answers({"connector=perceiver/seed0": ["red"], "connector=mlp/seed0": ["blue"]}, ["red"]).to_csv(
        res / "fy" / "answers.csv.gz", index=False)
    spec = (abl_dir / "fy.yaml").read_text().replace("FY", "FX")
    (abl_dir / "fx.yaml").write_text(spec)  # never run: no run folders at all
    (abl_dir / "fw.yaml").write_text(spec.replace("FX", "FW"))  # run, but its answers were not kept
    (res / "runs" / "fw" / "connector=mlp" / "seed0").mkdir(parents=True)
    assert cli.main(["--results", str(res), "--ablations", str(abl_dir)]) == 0
    text = (res / "NOISE.md").read_text()
    assert "fy (answers of 1 seed(s) a cell at most)" in text
    assert "fx (not run here)" in text and "fw (no answers table)" in text
    assert "## Checks" not in text and (res / "noise.csv").read_text().strip() == ""  # one seed: nothing to split


def test_the_answers_of_a_carried_runs_folder_are_split_too(tmp_path):
    # a calibration keeps its runs carried (vlmlab.carry: predictions.json.gz), with no answers table beside them
    import gzip
    import json

    runs, abl_dir, out = tmp_path / "runs", tmp_path / "ablations", tmp_path / "out"
    abl_dir.mkdir()
    (abl_dir / "fz.yaml").write_text(
        "finding: FZ\nquestion: q?\npaper: {claim: c, numbers: n}\ngrid: {image.blind: 'false,true'}\nseeds: [0, 1]\n"
        "metrics: [avg]\nchecks:\n  - {better: {image.blind: 'false'}, worse: {image.blind: 'true'}, metric: vqa, "
        "primary: true}\n")
    gold = ["red", "blue", "red", "green"]
    said = {("False", 0): gold, ("False", 1): ["red", "blue", "red", "red"],
            ("True", 0): ["red"] * 4, ("True", 1): ["red", "red", "blue", "red"]}
    for (blind, seed), preds in said.items():
        d = runs / "fz" / f"image.blind={blind}" / f"seed{seed}"
        d.mkdir(parents=True)
        items = [{"id": f"vqa-validation-{i:06d}-colour", "prediction": p, "normalized": p, "answers": [g]}
                 for i, (p, g) in enumerate(zip(preds, gold))]
        (d / "predictions.json.gz").write_bytes(gzip.compress(json.dumps({"vqa": items}).encode()))
    assert cli.main(["--runs", str(runs), "--ablations", str(abl_dir), "--results", str(out)]) == 0
    t = pd.read_csv(out / "noise.csv").set_index(["kind", "name"])
    check = t.loc[("check", "image.blind=false vs image.blind=true")]
    assert check["units"] == 2 and check["mean"] == pytest.approx(((100 - 50) + (75 - 25)) / 2)
    assert t.loc[("cell", "image.blind=False"), "mean"] == pytest.approx(87.5)
    median = t.xs("cell")["questions_share"].median()  # the README quotes NOISE.md's medians over cells
    assert f"Median question share over cells: vqa {median:.2f}." in (out / "NOISE.md").read_text()
