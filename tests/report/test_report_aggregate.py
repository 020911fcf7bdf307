"""Aggregation from synthetic run folders: statuses, per-cell mean ± CI, diverged share, failed cells, CSVs."""
import json
import math

import pandas as pd
import pytest
from report_fakes import make_run, write_ablation

from vlmlab.contract.ablation import load_ablation
from vlmlab.report import aggregate, long_tables
from vlmlab.report.stats import mean_ci, t_quantile


def test_t_quantiles_are_scipys():
    assert t_quantile(2) == pytest.approx(4.303, abs=1e-3) and t_quantile(30) == pytest.approx(2.042, abs=1e-3)
    with pytest.raises(ValueError):
        t_quantile(0)


def test_mean_ci_of_three_values():
    mean, half, n = mean_ci([1.0, 2.0, 3.0, float("nan")])
    assert (mean, n) == (2.0, 3) and half == pytest.approx(4.303 / math.sqrt(3), rel=1e-3)
    assert math.isnan(mean_ci([5.0])[1]) and mean_ci([])[2] == 0


def test_grid_cells_follow_hydra_override_dirname():
    cells = aggregate.grid_cells({"trainable": "lora,full", "optim.lr": "1e-3,0.01"})
    assert sorted(cells) == ["optim.lr=0.001,trainable=full", "optim.lr=0.001,trainable=lora",
                             "optim.lr=0.01,trainable=full", "optim.lr=0.01,trainable=lora"]
    assert aggregate.parse_cell("fusion=cross_attention,trainable.llm=lora") == \
        {"fusion": "cross_attention", "trainable.llm": "lora"}
    assert aggregate.parse_cell("baseline") == {}


@pytest.fixture
def f4(tmp_path):
    """perceiver finished x3; mlp: 2 finished + 1 diverged; linear: failed, interrupted, never started."""
    runs, abl = tmp_path / "runs", tmp_path / "ablations"
    spec = load_ablation(write_ablation(abl, "f4", "F4", {"connector": "mlp,perceiver,linear"}, []))
    for seed, avg in enumerate([60.0, 62.0, 61.0]):
        make_run(runs, "f4", "connector=perceiver", seed, avg=avg, sps=20.0 + seed, mem=400.0, vtok=64)
    make_run(runs, "f4", "connector=mlp", 0, tasks={"vqa": 40, "textvqa": 50, "okvqa": 60, "caption": 70}, vtok=729)
    make_run(runs, "f4", "connector=mlp", 1, tasks={"vqa": 42, "textvqa": 52, "okvqa": 62, "caption": 72}, vtok=729)
    make_run(runs, "f4", "connector=mlp", 2, status="diverged", vtok=729)
    make_run(runs, "f4", "connector=linear", 0, status="failed")
    make_run(runs, "f4", "connector=linear", 1, status="missing")
    seeds = aggregate.seeds_table(runs, "f4", spec)
    return seeds, aggregate.cells_table(seeds, spec), tmp_path


def test_seed_rows_have_one_status_each(f4):
    seeds, _, _ = f4
    assert len(seeds) == 9
    st = seeds.set_index(["cell", "seed"])["status"]
    assert st["connector=perceiver", 1] == "finished" and st["connector=mlp", 2] == "diverged"
    assert st["connector=linear", 0] == "failed"
    assert st["connector=linear", 1] == "missing" and st["connector=linear", 2] == "missing"
    failed = seeds[seeds["status"] == "failed"].iloc[0]
    assert failed["error"] == "RuntimeError: boom"
    div = seeds[seeds["status"] == "diverged"].iloc[0]
    assert div["diverged"] == 1.0 and math.isnan(div["avg"])  # no task metrics for a diverged run
    assert seeds.loc[seeds["status"] == "finished", "diverged"].eq(0.0).all()
    assert seeds.loc[seeds["status"] == "finished", "connector"].notna().all()


def test_cells_table_mean_ci_and_counts(f4):
    _, cells, _ = f4
    c = cells.set_index("cell")
    p, m, lin = c.loc["connector=perceiver"], c.loc["connector=mlp"], c.loc["connector=linear"]
    assert p["avg_mean"] == pytest.approx(61.0) and p["avg_ci95"] == pytest.approx(4.303 / math.sqrt(3), rel=1e-3)
    assert p["train_samples_per_s_mean"] == pytest.approx(21.0) and p["peak_memory_mb_mean"] == 400.0
    assert p["visual_tokens_per_image"] == 64 and p["total_params"] == 1_000_000 and p["trainable_params"] == 200_000
    assert (m["n_finished"], m["n_diverged"], m["n_seeds"]) == (2, 1, 3)
    assert m["diverged_share"] == pytest.approx(1 / 3)
    assert m["vqa_mean"] == pytest.approx(41.0) and m["caption_mean"] == pytest.approx(71.0)
    assert m["avg_mean"] == pytest.approx(56.0) and m["avg_ci95"] == pytest.approx(12.706, rel=1e-3)  # 55, 57: sd sqrt(2), n 2
    assert (lin["n_failed"], lin["n_missing"], lin["n_finished"]) == (1, 2, 0)
    assert math.isnan(lin["avg_mean"]) and math.isnan(lin["diverged_share"])
    assert p["n_diverged"] == 0 and p["diverged_share"] == 0.0
    assert list(cells.columns[:3]) == ["ablation", "cell", "connector"]


def test_tables_written_as_csv(f4):
    seeds, cells, tmp = f4
    aggregate.write_tables(seeds, cells, tmp / "results" / "f4")
    back = pd.read_csv(tmp / "results" / "f4" / "cells.csv").set_index("cell")
    assert back.loc["connector=mlp", "n_diverged"] == 1 and back.loc["connector=linear", "n_failed"] == 1
    assert back.loc["connector=perceiver", "avg_mean"] == pytest.approx(61.0)
    assert len(pd.read_csv(tmp / "results" / "f4" / "seeds.csv")) == 9


def test_fixed_overrides_in_the_folder_name_still_match_the_grid(tmp_path):
    runs = tmp_path / "runs"
    make_run(runs, "f5", "image=preserve,llm=toy_strong", 0)
    seeds = aggregate.seeds_table(runs, "f5", {"grid": {"image": "preserve,square"}, "seeds": [0]})
    assert sorted(seeds["cell"]) == ["image=preserve,llm=toy_strong", "image=square"]
    assert dict(zip(seeds["cell"], seeds["status"]))["image=square"] == "missing"


def test_unreadable_summary_is_failed_and_loss_curves_skip_cut_lines(tmp_path):
    runs = tmp_path / "runs"
    d = make_run(runs, "a", "connector=mlp", 0, losses=(2.0, 1.0))
    with open(d / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "train/lo')  # a line cut short by a crash
    bad = make_run(runs, "a", "connector=mlp", 1)
    (bad / "summary.json").write_text("{not json")
    seeds = aggregate.seeds_table(runs, "a", {"seeds": [0, 1]})
    assert list(seeds["status"]) == ["finished", "failed"] and "unreadable" in seeds["error"].iloc[1]
    curves = long_tables.loss_curves(seeds)
    assert list(curves[curves["seed"] == 0]["loss"]) == [2.0, 1.0]


def test_no_runs_and_no_grid_gives_an_empty_table(tmp_path):
    assert aggregate.seeds_table(tmp_path / "runs", "nothing", {}).empty
    assert aggregate.cells_table(pd.DataFrame(), {}).empty
    assert json.loads(json.dumps(load_ablation(write_ablation(tmp_path, "z", "F2", {}, []))["paper"]))
