"""The world's calibration runs end to end from one command: probes, blind controls, learning curve, targets."""
import subprocess
import sys

import pandas as pd
import pytest

from vlmlab.config import repo_root


@pytest.mark.slow
def test_calibration_command_writes_probes_controls_curve_and_targets(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "vlmlab.calibrate", "--runs", str(tmp_path / "runs"), "--out", str(out),
           "--seeds", "0,1", "--visions", "tiny", "--probe-scenes", "60,40", "--sweeps", "controls",
           "vision=tiny", "llm=tiny", "debug=smoke"]  # the curve and the ladder are more sweeps through the same
    # runner: their tables and targets are tested on the committed calibrations' runs (test_committed_calibration...)
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=repo_root())
    assert run.returncode == 0, run.stderr[-3000:]
    probes = pd.read_csv(out / "probes.csv")
    assert list(probes["probe"]) == ["colour", "shape", "count", "position", "glyph (base)", "glyph (split)"]
    assert probes["accuracy"].between(0, 100).all() and (probes["vision"] == "tiny").all()
    assert (probes["train_scenes"] == 60).all() and (probes["test_scenes"] == 40).all()  # the probe's size, recorded
    controls = pd.read_csv(out / "controls.csv")
    assert sorted(set(controls["split"])) == [0, 2] and len(controls) == 8  # 4 tasks x without/with splitting
    assert (controls["seeds"] == "2/2").all() and controls["prior"].notna().all()
    assert not (out / "curve.csv").exists() and not (out / "ladder.csv").exists()  # not trained (--sweeps): no table
    md = (out / "CALIBRATION.md").read_text()
    for target in ("vqa beats blind by >= 5 seed SDs", "textvqa with splitting beats blind",
                   "no accuracy task above 90%", "probe glyph (split) (tiny)"):
        assert target in md
    from vlmlab.calibrate import main  # --no-train in this process: the report again from the same runs
    (out / "CALIBRATION.md").unlink()
    assert main(cmd[3:] + ["--no-train"]) == 0 and (out / "CALIBRATION.md").read_text().split("## Probes")[1:] != []
    assert "fit on 60 scenes, scored on 40" in (out / "CALIBRATION.md").read_text()
    bad = subprocess.run(cmd[:3] + ["--sweeps", "controls,nope"], capture_output=True, text=True, cwd=repo_root())
    assert bad.returncode == 2 and "--sweeps takes" in bad.stderr


def test_the_ceiling_is_for_accuracy_tasks_not_cider():
    from vlmlab.calibrate_report import targets

    controls = pd.DataFrame([{"split": 0, "task": t, "trained": v, "margin": 10.0, "margin_in_sd": 6.0}
                             for t, v in (("vqa", 60.0), ("okvqa", 40.0), ("caption", 104.0))])
    ceiling = [r for r in targets(controls, pd.DataFrame(), pd.DataFrame(columns=["vision", "probe", "accuracy"]))
               if r[0].startswith("no accuracy task above")]
    assert ceiling[0][1:] == ["highest: vqa 60.00", "met"]  # CIDEr 104 is 13% of a reference caption's ~770
    controls.loc[0, "trained"] = 91.0
    assert [r for r in targets(controls, pd.DataFrame(), pd.DataFrame(columns=["vision", "probe", "accuracy"]))
            if r[0].startswith("no accuracy")][0][2] == "NOT met"


def test_largest_stable_learning_rate_stops_at_the_first_diverged_rung():
    from vlmlab.calibrate_report import largest_stable

    ladder = pd.DataFrame({"trainable": ["full"] * 3 + ["lora"] * 3, "lr": [0.01, 0.003, 0.03] * 2,
                           "status": ["finished", "finished", "diverged", "finished", "diverged", "finished"]})
    stable = largest_stable(ladder)
    assert stable["full"] == 0.01  # 0.003 and 0.01 finished, 0.03 diverged
    assert stable["lora"] != stable["lora"]  # nan: its lowest rung (0.003) diverged, so 0.03 finishing does not count


COMMITTED = sorted(p.parent.name for p in (repo_root() / "results").glob("calibration*/CALIBRATION.md"))


@pytest.mark.parametrize("folder", COMMITTED or ["calibration"])
def test_committed_calibration_regenerates_from_its_committed_runs(tmp_path, folder):
    from vlmlab.calibrate_report import FOLDER, SWEEPS, build
    from vlmlab.contract.ablation import load_ablation

    committed = repo_root() / "results" / folder
    if not (committed / "runs").is_dir():
        pytest.skip("no committed calibration")
    follow_ups = {("curve" if "optim.max_steps" in load_ablation(f).grid else "controls"): f  # --curve / --controls FILE
                  for f in FOLDER.glob("*.yaml") if f.stem not in SWEEPS and (committed / "runs" / f.stem).is_dir()}
    probes = pd.read_csv(committed / "probes.csv") if (committed / "probes.csv").is_file() else pd.DataFrame()
    build(str(committed / "runs"), tmp_path, probes, follow_ups)
    for name in ("controls.csv", "curve.csv", "curve_gains.csv", "ladder.csv"):
        if (committed / name).exists():
            pd.testing.assert_frame_equal(pd.read_csv(tmp_path / name), pd.read_csv(committed / name))
    strip = lambda p: (p / "CALIBRATION.md").read_text().split("\n", 3)[3]  # noqa: E731 -- after the line naming the folder
    assert strip(tmp_path) == strip(committed)


def test_the_curve_criterion_is_on_seed_means_with_an_interval():
    from vlmlab.calibrate_report import targets
    from vlmlab.calibrate_curve import curve_check, curve_table

    rows = [{"max_steps": s, "seed": k, "avg": base + d, "vqa": 0.0}
            for s, base in ((150, 40.0), (300, 45.0), (600, 50.0), (1200, 51.0)) for k, d in enumerate((-1.0, 0.0, 1.0))]
    curve = curve_table(pd.DataFrame(rows), ["vqa", "avg"])
    assert curve["seeds"].tolist() == [3] * 4 and curve["avg_sd"].tolist() == [1.0] * 4
    late, early, lo, hi = curve_check(curve)
    assert (late, early) == (1.0, 10.0)
    half = 1.959964 * ((1 + 1.25 ** 2 + 0.25 ** 2) / 3) ** 0.5  # SD 1 at every budget, 3 seeds each
    assert abs(lo - (1.0 - 2.5 - half)) < 1e-4 and abs(hi - (1.0 - 2.5 + half)) < 1e-4
    row = [r for r in targets(pd.DataFrame(), curve, pd.DataFrame(columns=["vision", "probe", "accuracy"]))
           if r[0].startswith("600 -> 1200")][0]
    assert row[2] == "met" and "spans 0: unresolved" in row[1]  # 1.0 <= 2.5, but [-3.6, 0.6] holds 0
    one = curve_table(pd.DataFrame([r for r in rows if r["seed"] == 0]), ["vqa", "avg"])
    assert curve_check(one)[2] != curve_check(one)[2]  # one seed: no interval
    assert curve_check(one.iloc[1:]) is None  # 150 missing


def test_the_paired_curve_criterion_takes_differences_within_each_seed():
    from scipy.stats import t

    from vlmlab.calibrate_curve import curve_check_paired, late_gains
    from vlmlab.calibrate_report import targets

    # seed k scores base + 3k at every budget: a seed effect the unpaired interval counts and the paired one cancels
    late_by_seed = {0: 2.0, 1: 3.0, 2: 4.0}  # the last doubling's gain per seed; early is 10 for every seed
    rows = [{"max_steps": s, "seed": k, "avg": {150: 40.0, 600: 50.0, 1200: 50.0 + late_by_seed[k]}[s] + 3 * k,
             "vqa": float(k)} for s in (150, 600, 1200) for k in range(3)]
    rows.append({"max_steps": 1200, "seed": 3, "avg": 99.0, "vqa": 0.0})  # seed 3 ran one budget only: left out
    late, early, lo, hi, n = curve_check_paired(pd.DataFrame(rows))
    assert (late, early, n) == (3.0, 10.0, 3)
    half = t.ppf(0.975, 2) * 1.0 / 3 ** 0.5  # d = late - 2.5 per seed: -0.5, 0.5, 1.5, SD 1
    assert abs(lo - (0.5 - half)) < 1e-9 and abs(hi - (0.5 + half)) < 1e-9
    row = [r for r in targets(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(columns=["vision", "probe", "accuracy"]),
                              paired=(late, early, lo, hi, n)) if "paired by seed" in r[0]][0]
    assert row[2] == "NOT met" and "spans 0: unresolved" in row[1]  # 3.0 > 2.5, but the interval holds 0
    gains = late_gains(pd.DataFrame(rows), ["avg", "vqa"]).set_index("metric")
    assert gains.at["avg", "gain"] == 3.0 and gains.at["vqa", "gain"] == 0.0 and (gains["seeds"] == 3).all()
    one = [r for r in rows if r["seed"] == 0]
    assert curve_check_paired(pd.DataFrame(one))[4] == 1  # one seed: no interval, and no target row
    assert not [r for r in targets(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(columns=["vision", "probe", "accuracy"]),
                                   paired=curve_check_paired(pd.DataFrame(one))) if "paired" in r[0]]
    assert curve_check_paired(pd.DataFrame([r for r in rows if r["max_steps"] != 150])) is None  # a budget missing


def test_a_follow_up_replaces_only_its_own_sweep():
    from vlmlab.calibrate_report import FOLDER, sweep_files

    files = sweep_files({"curve": "calibration/curve_followup.yaml"})
    assert files["curve"].name == "curve_followup.yaml" and files["controls"] == FOLDER / "controls.yaml"
    with pytest.raises(ValueError, match="replaces one of"):
        sweep_files({"probes": "x.yaml"})


def test_the_curve_follow_ups_600_step_runs_repeat_the_margins_runs_exactly():
    """An A/A check of determinism across commits and sessions: at 600 steps, seeds 0-4 of the curve follow-up have
    the configs of the margins follow-up's sighted cells (calibration/curve_followup.yaml says so before its runs)."""
    from vlmlab.contract.ablation import load_ablation
    from vlmlab.report import aggregate

    res = repo_root() / "results"
    if not ((res / "calibration_curve" / "runs").is_dir() and (res / "calibration_margins" / "runs").is_dir()):
        pytest.skip("the follow-ups are not committed")
    curve_abl, margins_abl = (load_ablation(repo_root() / "calibration" / f) for f in ("curve_followup.yaml", "margins.yaml"))
    curve = aggregate.seeds_table(res / "calibration_curve" / "runs", curve_abl.name, curve_abl.__dict__)
    margins = aggregate.seeds_table(res / "calibration_margins" / "runs", margins_abl.name, margins_abl.__dict__)
    cols = ["vqa", "textvqa", "okvqa", "caption", "final_train_loss"]
    a = curve[curve["max_steps"].astype(int) == 600].set_index("seed")[cols]
    b = margins[margins["image.blind"].astype(str).str.lower() == "false"].set_index("seed")[cols]
    shared = sorted(set(a.index) & set(b.index))
    assert shared == [0, 1, 2, 3, 4]
    pd.testing.assert_frame_equal(a.loc[shared], b.loc[shared])  # bit for bit, not within a tolerance
    assert curve.loc[curve["seed"] == 0, "git_commit"].iloc[0] != margins.loc[margins["seed"] == 0, "git_commit"].iloc[0]


def test_the_curve_criterion_judges_the_recipes_own_budget():
    """A recipe of B steps is judged on B -> 2B against B/4 -> B (a 1200-step recipe: 300, 1200, 2400), and the
    budget is read from the controls' runs; controls at two budgets are not one recipe."""
    from vlmlab.calibrate_curve import curve_check, curve_check_paired, curve_table, late_gains
    from vlmlab.calibrate_report import recipe_steps, targets

    rows = [{"max_steps": s, "seed": k, "avg": base + k, "vqa": float(s)}
            for s, base in ((150, 10.0), (300, 40.0), (600, 45.0), (1200, 50.0), (2400, 52.0)) for k in range(3)]
    curve = curve_table(pd.DataFrame(rows), ["vqa", "avg"])
    assert curve_check(curve)[:2] == (5.0, 35.0)  # B = 600: 600 -> 1200 against 150 -> 600
    assert curve_check(curve, 1200)[:2] == (2.0, 10.0)  # B = 1200: 1200 -> 2400 against 300 -> 1200
    assert curve_check_paired(pd.DataFrame(rows), 1200)[:2] == (2.0, 10.0)
    assert late_gains(pd.DataFrame(rows), ["vqa"], 1200).at[0, "gain"] == 1200.0
    assert curve_check(curve[curve["steps"] != 2400], 1200) is None  # 2B not run
    row = [r for r in targets(pd.DataFrame(), curve, pd.DataFrame(columns=["vision", "probe", "accuracy"]),
                              budget=1200) if "steps adds" in r[0]][0]
    assert row[0].startswith("1200 -> 2400 steps adds <= 0.25 x the 300 -> 1200 gain") and row[2] == "met"
    assert recipe_steps(pd.DataFrame({"max_steps": [1200, 1200]})) == 1200
    assert recipe_steps(pd.DataFrame()) == 600
    with pytest.raises(ValueError, match="several step budgets"):
        recipe_steps(pd.DataFrame({"max_steps": [600, 1200]}))


def test_study_21b_times_the_1200_step_run_alone_as_its_plan_scores_it():
    """Study 21b (calibration/budget_1200_timing.yaml): study 21's split-0 sighted run at 1,200 steps, trained twice
    alone (an A/A pair), re-scored from the committed summaries: both under the plan's budget_s, the pair within its
    aa_tolerance, and the same scores as study 21's seed-0 run (a run is deterministic)."""
    import json

    import yaml

    plan = yaml.safe_load((repo_root() / "calibration" / "budget_1200_timing.yaml").read_text())
    root = repo_root() / "results" / "calibration_budget_1200"
    runs = {n: json.loads(next((root / "timing" / n).glob("*/seed0/summary.json")).read_text()) for n in plan["runs"]}
    walls = [r["wall_time_s"] for r in runs.values()]
    assert all(w <= plan["budget_s"] for w in walls)  # 173.2 and 168.7 s
    assert abs(walls[0] - walls[1]) / (sum(walls) / 2) < plan["aa_tolerance"]  # 2.6 %
    study21 = json.loads(next((root / "runs" / "budget_1200").glob("*image.blind=False,image.split=0*/seed0/"
                                                                   "summary.json")).read_text())
    for r in runs.values():
        assert r["metrics"]["avg"] == study21["metrics"]["avg"] and r["config"]["optim"]["max_steps"] == 1200
        assert r["feature_store"]["misses"] == 0 and r["torch_threads"] == 1
