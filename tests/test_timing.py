"""Isolated timing: every cell's model timed in one process, interleaved, with an A/A control whose difference
is the stated noise; the runner runs it after a sweep that checks a timing, and the report shows it."""
import json
import subprocess
import sys
from dataclasses import asdict

from omegaconf import OmegaConf

from vlmlab.config import compose, repo_root
from vlmlab.report.aggregate import isolated_table
from vlmlab.report.verdicts import evaluate_check
from vlmlab.timing import AA, measure_cells

TINY = ["vision=tiny", "llm=tiny", "debug=smoke"]


def test_cells_are_timed_interleaved_with_an_aa_twin():
    configs = {c: compose(TINY + [c]) for c in ("connector=mlp", "connector=perceiver")}
    per_rep, summary = measure_cells(configs, reps=8, warmup=2)
    assert list(summary["cell"]) == ["connector=mlp", "connector=perceiver", "connector=mlp" + AA]
    assert (per_rep.groupby("cell").size() == 8).all()
    order = list(per_rep[per_rep["rep"] == 1]["cell"])
    assert order == list(reversed(list(per_rep[per_rep["rep"] == 0]["cell"])))  # ABC CBA
    median = summary.set_index("cell")["median_step_ms"]
    assert (summary["samples_per_s"] > 0).all() and summary["aa_ci95_ms"].iloc[0] > 0
    # the twin is the same model on the same batch: of its original's order. Not tighter: `make test` runs another
    # test file on the second core, and 8 reps of ~12 ms steps under that load moved a twin's median by 67% once
    assert abs(median["connector=mlp" + AA] - median["connector=mlp"]) < 1.0 * median["connector=mlp"]


def test_cli_times_finished_runs_and_the_report_states_the_noise(tmp_path, capsys):
    runs = tmp_path / "runs"
    for cell in ("connector=linear", "connector=mlp"):
        cfg = compose(TINY + [cell])
        d = runs / "f4_x" / cell / "seed0"
        d.mkdir(parents=True)
        (d / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(asdict(cfg))))
        (d / "summary.json").write_text(json.dumps({"status": "finished", "metrics": {"avg": 1.0},
                                                    "config": asdict(cfg)}))
    abl = tmp_path / "abl"
    abl.mkdir()
    (abl / "f4_x.yaml").write_text("finding: F4\nquestion: q\nseeds: [0]\ngrid: {connector: 'linear,mlp'}\n"
                                   "checks: [{better: {connector: linear}, worse: {connector: mlp}, "
                                   "metric: train_samples_per_s}]\n")
    out = subprocess.run([sys.executable, "-m", "vlmlab.timing", "f4_x", "--runs", str(runs), "--ablations", str(abl),
                          "--reps", "4", "--warmup", "1"], capture_output=True, text=True, timeout=300,
                         cwd=repo_root())
    assert out.returncode == 0, out.stderr[-2000:]
    assert (runs / "f4_x" / "timing.csv").exists() and "connector=linear (A/A)" in out.stdout
    # the report and the timing command's error path in this process (a fresh one imports torch again, ~8 s each)
    from vlmlab.report.__main__ import main as report
    from vlmlab.timing import main as timing

    report(["--runs", str(runs), "--ablations", str(abl), "--out", str(tmp_path / "results")])
    md = (tmp_path / "results" / "REPORT.md").read_text()
    assert "A/A control: the first cell built twice differs by" in md and "| connector=mlp |" in md
    assert (tmp_path / "results" / "runs" / "f4_x" / "timing_summary.csv").exists()
    capsys.readouterr()
    assert timing(["nothing", "--runs", str(runs)]) == 2 and "no finished runs" in capsys.readouterr().err


def test_aa_control_two_identical_cells_are_not_told_apart_and_a_real_difference_is(tmp_path):
    """Two identical cells timed as cells of their own differ by less than the A/A noise bound (the check
    between them stays inconclusive); 3 x 3 splitting at twice the side (~40x the encoder's work) is told apart."""
    same = compose(TINY)
    heavy = compose(TINY + ["image.split=3", "image.size=64"])  # 10 views of 4x the patches: ~40x the encoder's work
    configs = {"image.split=0": same, "image.split=0,twin=1": same, "image.split=3": heavy}
    per_rep, _ = measure_cells(configs, reps=16, warmup=2)
    per_rep.to_csv(tmp_path / "timing.csv", index=False)
    iso = isolated_table(tmp_path)
    assert set(iso["cell"]) == set(configs) and iso.attrs["aa"][2] == 16
    twin = evaluate_check(iso.iloc[0:0], {"better": {"twin": "1"}, "worse": {"image.split": "0"},
                                          "metric": "isolated_step_ms"}, iso)
    assert twin["n_pairs"] == 16 and twin["verdict"] == "inconclusive", twin
    assert "A/A noise bound" in twin["note"]
    split = evaluate_check(iso.iloc[0:0], {"better": {"image.split": "0"}, "worse": {"image.split": "3"},
                                           "metric": "isolated_step_ms"}, iso)
    assert split["verdict"] == "reproduced", split
    untimed = evaluate_check(iso.iloc[0:0], {"better": {"image.split": "0"}, "worse": {"image.split": "3"},
                                             "metric": "isolated_step_ms"}, isolated_table(tmp_path / "none"))
    assert untimed["verdict"] == "not measured" and "no isolated timing" in untimed["note"]
