"""Ablation files and the sweep runner: every file composes, smoke wins, skip-finished, failures recorded."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vlmlab import ablate
from vlmlab.config import ConfigError, check_command_line, compose, repo_root
from vlmlab.contract.ablation import available, findings, first_looks, load_ablation

NAMES = first_looks(ablate.ABLATIONS)  # first looks; a follow-up shares its first look's grid and checks
FOLLOW_UPS = sorted(set(available(ablate.ABLATIONS)) - set(NAMES))


def test_findings_are_read_from_the_files():
    found = findings(ablate.ABLATIONS)
    assert found == sorted({ablate.load(n).finding for n in NAMES}, key=lambda f: int(f[1:]))
    assert all(re.fullmatch(r"F\d+", f) for f in found)
    assert {"F1", "F2", "F3", "F4", "F5", "F6"} <= set(found)  # the paper's six findings each have a file


@pytest.mark.parametrize("name", NAMES)
def test_ablation_file_is_complete_and_composes(name):
    abl = ablate.load(name)
    assert abl.question and abl.paper["claim"] and abl.paper["numbers"]
    assert (len(abl.seeds) >= 3 or "no seed count decides" in abl.plan) and abl.metrics and abl.checks
    first = (repo_root() / "ablations" / f"{name}.yaml").read_text().splitlines()[0]
    assert first.startswith("#")
    check_command_line(["-m", *abl.overrides()])


@pytest.mark.parametrize("name", FOLLOW_UPS)
def test_follow_up_files_state_their_plan_and_compose(name):
    abl = ablate.load(name)
    assert abl.follow_up_of in NAMES and abl.plan and abl.checks == ablate.load(abl.follow_up_of).checks
    assert (repo_root() / "ablations" / f"{name}.yaml").read_text().startswith("#")
    check_command_line(["-m", *abl.overrides()])
    for chk in abl.checks:  # every check names cells that exist in the grid
        for side in ("better", "worse"):
            for k, v in getattr(chk, side).items():
                assert k in abl.grid and str(v) in str(abl.grid[k]).split(","), (name, k, v)


@pytest.mark.parametrize("name", NAMES)
def test_smoke_settings_win_over_every_cell(name):
    abl = ablate.load(name)
    first = {k: v.split(",")[0] for k, v in abl.grid.items()}
    for key, values in abl.grid.items():
        for v in values.split(","):
            cell = [f"name={name}", *abl.fixed] + [f"{k}={v if k == key else first[k]}" for k in abl.grid]
            cfg = compose(cell + ["debug=smoke"])
            assert cfg.optim.max_steps == 2 and cfg.data.train_size == 16 and cfg.eval.max_samples == 4
            assert cfg.runs_root == "runs/smoke" and "tiny_" in cfg.llm.name_or_path


ABL = "# t\nfinding: F4\nquestion: q\npaper: {claim: c, numbers: n}\nseeds: [0]\nmetrics: [avg]\n"


def test_an_ablation_may_sweep_any_recipe_key(tmp_path):
    grid = "{optim.max_steps: '10,20', connector.depth: '1,2', image.size: '32,64', optim.lr: '1e-3,3e-3'}"
    (tmp_path / "ok.yaml").write_text(ABL + f"grid: {grid}\nfixed: ['data.tasks=[vqa]', 'eval.max_samples=8']\n"
                                      "checks: [{better: {connector.depth: 2}, worse: {connector.depth: 1}, metric: avg}]\n")
    abl = ablate.load("ok", tmp_path)
    assert len(abl.cells()) == 16 and abl.fixed == ["data.tasks=[vqa]", "eval.max_samples=8"]
    check_command_line(["-m", *abl.overrides()])


@pytest.mark.parametrize("grid,why", [("{eval.split: 'validation,test'}", "evaluation data or protocols"),
                                      ("{data.test_size: '10,20'}", "different test splits"),
                                      ("{data.seed: '0,1'}", "different test split"),
                                      ("{seed: '0,1'}", "unpair"), ("{debug: 'none,smoke'}", "command line"),
                                      ("{scale: 'base,large'}", "vlmlab.report.scale")])
def test_an_ablation_may_not_sweep_what_makes_cells_incomparable(tmp_path, grid, why):
    (tmp_path / "bad.yaml").write_text(ABL + f"grid: {grid}\nchecks: [{{better: {{}}, worse: {{}}, metric: avg}}]\n")
    with pytest.raises(ConfigError, match=why):
        ablate.load("bad", tmp_path)


def test_a_debug_profile_wins_over_the_file(tmp_path, capsys):
    (tmp_path / "steps.yaml").write_text(ABL + "grid: {optim.max_steps: '600,1200', connector: 'mlp,perceiver'}\n"
                                         "checks: [{better: {connector: perceiver}, worse: {connector: mlp}, metric: avg}]\n")
    abl = ablate.under_debug(ablate.load("steps", tmp_path), ["debug=smoke"])
    assert abl.grid == {"connector": "mlp,perceiver"} and "optim.max_steps" in capsys.readouterr().out
    for cell in abl.cells():
        assert compose([cell, "debug=smoke"]).optim.max_steps == 2
    assert ablate.under_debug(ablate.load("steps", tmp_path), []).grid["optim.max_steps"] == "600,1200"


def test_unknown_name_lists_the_ablations_and_fails():
    out = subprocess.run([sys.executable, "-m", "vlmlab.ablate", "nope"], capture_output=True, text=True)
    assert out.returncode != 0
    for n in NAMES:
        assert n in out.stderr


def _sweep(tmp_path, axis, *extra):
    """A 2-cell x 2-seed smoke multirun into tmp_path (the runner's own command, without the report)."""
    cmd = [sys.executable, "-m", "vlmlab.train", "-m", "name=sweeptest", "debug=smoke", f"runs_root={tmp_path}",
           axis, "seed=0,1", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=repo_root())


def test_sweep_folders_skip_finished_and_failed_cell_does_not_stop_it(tmp_path):
    # a cell that fails at run time (12 px is no multiple of the tiny encoder's 8 px patches) next to a working one
    out = _sweep(tmp_path, "image.size=12,8")
    root = tmp_path / "sweeptest"
    assert out.returncode == 0, out.stderr[-3000:]
    bad, ok = root / "image.size=12", root / "image.size=8"
    assert (bad / "seed0" / "failed.json").exists() and not (bad / "seed0" / "summary.json").exists()
    assert "patch size 8" in json.loads((bad / "seed0" / "failed.json").read_text())["error"]
    assert (ok / "seed1" / "summary.json").exists()  # the sweep went on past the failed cell
    summary = ok / "seed0" / "summary.json"
    before = summary.stat().st_mtime
    out = _sweep(tmp_path, "image.size=12,8")
    assert out.returncode == 0
    assert summary.stat().st_mtime == before and "skipping" in out.stdout
    assert json.loads(summary.read_text())["status"] == "finished"


def test_cpu_sweeps_default_to_two_single_thread_jobs(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert ablate.launch_defaults([]) == ["hydra/launcher=local", "threads=1"]
    assert ablate.launch_defaults(["hydra/launcher=slurm"]) == ["threads=1"]
    assert ablate.launch_defaults(["threads=2", "hydra/launcher=basic"]) == []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert ablate.launch_defaults([]) == []


def test_seeds_option_refuses_what_is_not_a_seed_list(capsys):
    # that --seeds runs only the seeds named is checked by every smoke ablation (test_ablation_smoke.py: --seeds 0,
    # one seed0 folder per cell, while the files name 3 or more seeds)
    assert ablate.main(["f0_blind", "--seeds", "x"]) == 2 and "--seeds takes" in capsys.readouterr().err


def test_smollm2_experiment_preset_changes_the_lm_and_scale_and_smoke_still_wins():
    c = compose(["experiment=smollm2_cpu", "fusion=cross_attention"])
    assert c.llm.name_or_path == "HuggingFaceTB/SmolLM2-135M" and c.runs_root == "runs/smollm2"
    assert (c.optim.max_steps, c.optim.batch_size, c.eval.max_samples) == (200, 8, 50)
    assert c.fusion.kind == "cross_attention" and c.vision.name_or_path == compose([]).vision.name_or_path
    smoke = compose(["experiment=smollm2_cpu", "debug=smoke"])
    assert smoke.optim.max_steps == 2 and smoke.runs_root == "runs/smoke"


def test_ablations_that_check_a_runs_own_timing_train_every_cell_themselves(tmp_path):
    (tmp_path / "f4_t.yaml").write_text("finding: F4\nquestion: q\nseeds: [0]\ngrid: {connector: 'mlp,perceiver'}\nchecks: [{better: "
                                        "{connector: perceiver}, worse: {connector: mlp}, metric: train_samples_per_s}]\n")
    sweep_timed = load_ablation(tmp_path / "f4_t.yaml")
    assert ablate.reuse_policy(sweep_timed, []) == ["reuse_finished=false"]  # the sweep's own samples/s
    assert ablate.reuse_policy(sweep_timed, ["reuse_finished=true"]) == []
    # isolated timings (timing.py after the sweep) and FLOPs do not depend on who trained the run: reuse stays on
    assert any(c.metric == "isolated_step_ms" for c in ablate.load("f4_pooling").checks)
    assert ablate.reuse_policy(ablate.load("f4_pooling"), []) == []
    assert ablate.reuse_policy(ablate.load("f1_backbones"), []) == []  # scores only: the baseline is reused
    assert "reuse_finished" not in ablate.load("f4_pooling").overrides()
    from vlmlab.contract.run import cell_name

    assert cell_name(["connector=mlp", "reuse_finished=false", "seed=1", "threads=1"]) == "connector=mlp"


def test_one_ablation_file_of_a_folder_that_holds_other_plans():
    """calibration/ holds ablation files (margins.yaml) beside study plans that are not (count_readout.yaml), so
    `python -m vlmlab.noise --ablations` names the one file its runs ran (make calibrate-margins)."""
    from vlmlab.contract.ablation import ablation_files, load_all

    one = repo_root() / "calibration" / "margins_v3.yaml"
    assert ablation_files(one) == [one]
    assert list(load_all(one)) == ["margins_v3"]
    with pytest.raises(ConfigError, match="unknown key"):
        load_all(repo_root() / "calibration")


def test_a_file_named_by_its_path_reports_alone(monkeypatch, tmp_path):
    """calibration/ holds study plans that are not ablation files (count_readout.yaml): a sweep of one file named by
    its path regenerates the report over that file, not its folder (the folder's report failed on the plans)."""
    from vlmlab import ablate
    from vlmlab.report.__main__ import main as report

    reported = []
    monkeypatch.setattr(ablate, "run_ablation", lambda a, args, timing=True: 0)
    monkeypatch.setattr(ablate, "regenerate_report", lambda args, folder, scale="base": reported.append(Path(folder)))
    plan = repo_root() / "calibration" / "split_share.yaml"
    assert ablate.main([str(plan), "runs_root=runs/x"]) == 0 and reported == [plan]
    assert ablate.main([str(plan), "--ablations", str(plan.parent)]) == 0 and reported[-1] == plan.parent
    with pytest.raises(SystemExit, match=r"\.yaml: unknown key"):  # what the folder's report met (a study plan)
        report(["--runs", str(tmp_path), "--ablations", str(plan.parent), "--out", str(tmp_path / "out")])
    report(["--runs", str(tmp_path), "--ablations", str(plan), "--out", str(tmp_path / "out")])  # the file alone
