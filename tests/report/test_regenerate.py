"""Regenerating never loses a result: `make report` merges new runs into the committed ones (results/runs); a
finding with no new runs keeps what is committed, and a rerun replaces only the runs it reran."""
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from vlmlab.config import repo_root
from vlmlab.report.render import build

V1 = repo_root() / "results" / "v1"  # the world-v1 run, archived with the ablation files it ran
COMMITTED = V1 / "runs"
NAME = "f5_aspect_ratio"

pytestmark = pytest.mark.skipif(not (COMMITTED / NAME).is_dir(), reason="no committed findings run")


@pytest.fixture
def clone(tmp_path):
    """A fresh clone's view: the committed runs under results/runs, an empty runs/ (all findings: Holm's
    correction is over the report's primary checks, so the family must be whole)."""
    out, abl = tmp_path / "results", tmp_path / "ablations"
    shutil.copytree(COMMITTED, out / "runs")
    if (repo_root() / "results" / "calibration").is_dir():  # a clone has the committed calibration too
        shutil.copytree(repo_root() / "results" / "calibration", out / "calibration")
    shutil.copytree(V1 / "ablations", abl)
    (tmp_path / "runs").mkdir()
    return tmp_path, out, abl


def _files(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())


def test_a_fresh_clone_regenerates_the_committed_verdicts_and_deletes_nothing(clone):
    tmp, out, abl = clone
    before = _files(out / "runs")
    res = build(tmp / "runs", abl, out)
    assert _files(out / "runs") == before
    committed = pd.read_csv(V1 / NAME / "verdicts.csv")
    got = pd.read_csv(out / NAME / "verdicts.csv")
    assert list(got["verdict"]) == list(committed["verdict"])
    assert res["findings"].set_index("finding")["verdict"]["F5"] != "not run yet"


def test_a_partial_rerun_replaces_only_the_runs_it_reran_and_its_answers_become_a_table(clone):
    # one report build for both (a build over every finding takes ~12 s): seed 0 of a cell is rerun with another
    # avg, seeds 0 and 1 bring their per-question answers (predictions.json); the committed seed 2 is untouched
    tmp, out, abl = clone
    cell = sorted(p.name for p in (out / "runs" / NAME).iterdir() if p.is_dir())[0]
    for seed, said in ((0, "shoe"), (1, "red")):
        d = tmp / "runs" / NAME / cell / f"seed{seed}"
        shutil.copytree(out / "runs" / NAME / cell / f"seed{seed}", d)
        (d / "predictions.json").write_text(json.dumps({"vqa": [
            {"id": "vqa-test-000000-colour", "prediction": said.upper(), "normalized": said, "answers": ["red"]}]}))
    rerun = tmp / "runs" / NAME / cell / "seed0"
    summary = json.loads((rerun / "summary.json").read_text())
    summary["metrics"]["avg"] = 99.0
    (rerun / "summary.json").write_text(json.dumps(summary))
    before = _files(out / "runs")
    build(tmp / "runs", abl, out)
    added = {Path(NAME, cell, f"seed{s}", "predictions.json.gz") for s in (0, 1)}  # carried gzipped (carry.py)
    assert set(_files(out / "runs")) - set(before) <= added and set(before) <= set(_files(out / "runs"))  # nothing lost
    assert json.loads((out / "runs" / NAME / cell / "seed0" / "summary.json").read_text())["metrics"]["avg"] == 99.0
    seeds = pd.read_csv(out / NAME / "seeds.csv")
    mine = seeds[seeds["cell"] == cell].set_index("seed")["avg"]
    assert mine[0] == 99.0 and mine[1] != 99.0 and len(mine) == 3  # the other seeds are the committed ones

    table = pd.read_csv(out / NAME / "answers.csv.gz")
    assert list(table.columns) == ["task", "id", "answers", f"{cell}/seed0", f"{cell}/seed1"]
    assert table.iloc[0].tolist() == ["vqa", "vqa-test-000000-colour", "red", "shoe", "red"]
    shutil.rmtree(tmp / "runs" / NAME)  # a fresh clone has no predictions.json: the committed table stays
    build(tmp / "runs", abl, out)
    assert pd.read_csv(out / NAME / "answers.csv.gz").shape == (1, 5)
