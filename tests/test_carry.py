"""carry.py: finished runs saved into the repository and restored on the next machine."""
import json
import shutil
from pathlib import Path

import pandas as pd

from vlmlab import carry
from vlmlab.contract.ablation import load_ablation
from vlmlab.report import aggregate, long_tables

REPO = Path(__file__).resolve().parents[1]


def _run(root: Path, rel: str, finished: bool, answer: str = "red") -> Path:
    d = root / rel
    (d / "checkpoint").mkdir(parents=True)
    (d / "checkpoint" / "state.pt").write_bytes(b"weights")
    (d / "config.yaml").write_text("seed: 0\n")
    (d / "metrics.jsonl").write_text('{"step": 1, "train/loss": 2.0}\n')
    (d / "train.log").write_text("log\n")
    if finished:
        preds = {"vqa": [{"id": "q1", "answers": ["red"], "prediction": answer, "normalized": answer}]}
        (d / "predictions.json").write_text(json.dumps(preds))
        (d / "summary.json").write_text(json.dumps({"status": "finished", "metrics": {"vqa": 1.0}}))
    return d


def _tree(root: Path) -> None:
    _run(root, "f/connector=mlp/seed0", finished=True)
    _run(root, "f/connector=mlp/seed1", finished=False)
    _run(root, "f/connector=perceiver/seed0", finished=True, answer="blue")
    (root / "f" / "timing.csv").write_text("cell,rep,cpu_ms\n")
    (root / "sweeps.jsonl").write_text('{"ablation": "f", "wall_time_s": 10}\n')
    (root / "prior.json").write_text('{"scores": {}}')


def test_save_keeps_finished_runs_small_and_restore_brings_them_back(tmp_path):
    runs, saved, fresh = tmp_path / "runs", tmp_path / "saved", tmp_path / "fresh"
    _tree(runs)
    assert sorted(carry.save(runs, saved)) == ["f/connector=mlp/seed0", "f/connector=perceiver/seed0"]
    kept = saved / "f/connector=mlp/seed0"
    assert sorted(p.name for p in kept.iterdir()) == ["config.yaml", "metrics.jsonl", "predictions.json.gz",
                                                       "summary.json"]  # no checkpoint, no log
    assert not (saved / "f/connector=mlp/seed1").exists()  # unfinished: restarts anyway
    assert (saved / "f/timing.csv").is_file() and (saved / "prior.json").is_file()
    first = (kept / "predictions.json.gz").read_bytes()
    carry.save(runs, saved)  # saving again: same bytes, sweeps not duplicated
    assert (kept / "predictions.json.gz").read_bytes() == first
    assert (saved / "sweeps.jsonl").read_text().count("\n") == 1
    (runs / "f" / "timing.csv").write_text("cell,rep,cpu_ms\nmlp,0,5\n")  # retimed after a later sweep
    carry.save(runs, saved)
    assert (saved / "f" / "timing.csv").read_text().endswith("mlp,0,5\n")

    assert len(carry.restore(saved, fresh)) == 2
    for rel in ("f/connector=mlp/seed0", "f/connector=perceiver/seed0"):
        for name in ("summary.json", "metrics.jsonl", "config.yaml", "predictions.json"):
            assert (fresh / rel / name).read_bytes() == (runs / rel / name).read_bytes()
    pd.testing.assert_frame_equal(long_tables.answers_table(fresh, "f"), long_tables.answers_table(runs, "f"))
    assert carry.restore(saved, fresh) == []  # finished here: nothing to do


def test_restore_never_overwrites_a_finished_run_and_replaces_an_unfinished_one(tmp_path):
    runs, saved, other = tmp_path / "runs", tmp_path / "saved", tmp_path / "other"
    _tree(runs)
    carry.save(runs, saved)
    mine = _run(other, "f/connector=mlp/seed0", finished=True, answer="green")  # finished on this machine
    partial = _run(other, "f/connector=perceiver/seed0", finished=False)        # stopped half-way here
    (other / "sweeps.jsonl").write_text('{"ablation": "g", "wall_time_s": 5}\n')
    assert carry.restore(saved, other) == ["f/connector=perceiver/seed0"]
    assert "green" in (mine / "predictions.json").read_text()
    assert (partial / "summary.json").is_file() and not (partial / "checkpoint").exists()
    assert "blue" in (partial / "predictions.json").read_text()
    assert (other / "sweeps.jsonl").read_text().splitlines() == ['{"ablation": "g", "wall_time_s": 5}',
                                                                 '{"ablation": "f", "wall_time_s": 10}']


def test_a_restored_committed_ablation_reads_as_the_original(tmp_path):
    """The committed F4 runs, saved and restored: the report's seeds table is the same, run for run."""
    src = tmp_path / "runs"
    shutil.copytree(REPO / "results" / "runs" / "f4_pooling", src / "f4_pooling")
    carry.save(src, tmp_path / "saved")
    carry.restore(tmp_path / "saved", tmp_path / "back")
    spec = load_ablation(REPO / "ablations" / "f4_pooling.yaml")
    a = aggregate.seeds_table(src, "f4_pooling", spec).drop(columns=["run_dir"])
    b = aggregate.seeds_table(tmp_path / "back", "f4_pooling", spec).drop(columns=["run_dir"])
    assert len(a) and (a["status"] == "finished").any()
    pd.testing.assert_frame_equal(a, b)
    assert (tmp_path / "back" / "f4_pooling" / "timing.csv").read_bytes() == \
        (src / "f4_pooling" / "timing.csv").read_bytes()


def test_save_of_named_ablations_leaves_other_sweeps_out(tmp_path):
    """runs/large holds the scale files' runs beside the large calibration and pilot (runs roots of their own, one
    level deeper): neither is carried with the scale files' runs, and --ablations keeps to the named files."""
    runs, saved = tmp_path / "runs", tmp_path / "saved"
    _tree(runs)
    _run(runs, "g/connector=mlp/seed0", finished=True)
    _run(runs, "calibration/controls/image.blind=True/seed0", finished=True)
    (runs / "calibration" / "controls" / "timing.csv").write_text("x\n")
    assert carry.save(runs, saved, ["f"]) == ["f/connector=mlp/seed0", "f/connector=perceiver/seed0"]
    assert not (saved / "g").exists() and not (saved / "calibration").exists()
    carry.main(["save", str(runs), str(tmp_path / "all")])
    assert (tmp_path / "all" / "g/connector=mlp/seed0/summary.json").is_file()
    assert not (tmp_path / "all" / "calibration").exists()
    carry.main(["save", str(runs / "calibration"), str(tmp_path / "cal")])  # its own root: carried from there
    assert (tmp_path / "cal" / "controls/image.blind=True/seed0/summary.json").is_file()
    assert (tmp_path / "cal" / "controls/timing.csv").is_file()


def test_a_sweeps_report_under_the_runs_root_is_not_carried_as_runs(tmp_path):
    """The runner's report of a sweep lands under its runs root (<root>/results/runs/...): copies, not runs."""
    runs, saved = tmp_path / "runs", tmp_path / "saved"
    _tree(runs)
    _run(runs, "results/runs/f/connector=mlp/seed0", finished=True)
    (runs / "results" / "runs" / "f" / "timing.csv").write_text("copy\n")
    assert len(carry.save(runs, saved)) == 2
    assert not (saved / "results").exists()
