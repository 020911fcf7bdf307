"""The seed plan: a pilot's paired differences give each primary check its seeds for 80% power, written into the file."""
import math
import shutil

import pandas as pd
import pytest
from report_fakes import make_run, write_ablation
from statsmodels.stats.power import TTestPower

from vlmlab import plan, plan_cost, plan_power
from vlmlab.contract.ablation import load_ablation
from vlmlab.report.stats import seeds_for_power

NONE = "/nonexistent/controls.csv"  # no world calibration: no task is set aside as blind-level


@pytest.fixture
def pilot(tmp_path):
    """f4: perceiver vs mlp (primary, d = +2 and +4 over two seeds), linear (secondary); fx: a fact and a timing."""
    runs, abl = tmp_path / "runs", tmp_path / "ablations"
    write_ablation(abl, "f4", "F4", {"connector": "mlp,perceiver,linear"},
                   [{"better": {"connector": "perceiver"}, "worse": {"connector": "mlp"}, "metric": "avg",
                     "primary": True},
                    {"better": {"connector": "perceiver"}, "worse": {"connector": "linear"}, "metric": "avg"},
                    {"better": {"connector": "perceiver"}, "worse": {"connector": "mlp"},
                     "metric": "isolated_step_ms", "primary": True}])
    for seed, (p, m) in enumerate([(52.0, 50.0), (55.0, 51.0)]):
        make_run(runs, "f4", "connector=perceiver", seed, avg=p)
        make_run(runs, "f4", "connector=mlp", seed, avg=m)
        make_run(runs, "f4", "connector=linear", seed, avg=40.0)
    return runs, abl


def test_a_primary_check_gets_the_seeds_of_a_paired_t_test_at_80_percent(pilot):
    runs, abl = pilot
    df = plan.plan(["f4"], runs, floor=3, cap=20, folder=abl, controls_csv=NONE)
    assert list(df["metric"]) == ["avg", "isolated_step_ms"]  # primary checks only
    row = df.iloc[0]
    sd = pd.Series([2.0, 4.0]).std(ddof=1)
    alpha = 0.05 / 1  # one powered primary check: the timing is powered by reps, not seeds
    want = math.ceil(TTestPower().solve_power(effect_size=3.0 / sd, alpha=alpha, power=0.8))
    assert (row["effect"], row["sd"], row["seeds"], row["alpha"]) == (3.0, pytest.approx(sd), max(2, want), alpha)
    assert "reps" in df.iloc[1]["note"] and df.iloc[1]["seeds"] != df.iloc[1]["seeds"]
    assert df["file_seeds"].iloc[0] == max(3, want)


def test_a_check_beyond_the_cap_says_so_and_adds_no_seeds_to_its_file(pilot):
    runs, abl = pilot
    for seed, p in enumerate([50.5, 51.6]):  # d = +0.5, +0.6 (mlp 50, 51), sd 0.07: few seeds; then a tiny effect
        make_run(runs, "f4", "connector=perceiver", seed, avg=p)
    assert plan.plan(["f4"], runs, folder=abl, controls_csv=NONE)["file_seeds"].iloc[0] == 3  # the floor
    for seed, p in enumerate([50.1, 50.95]):  # d = +0.1, -0.05: a pilot effect far below its noise
        make_run(runs, "f4", "connector=perceiver", seed, avg=p)
    df = plan.plan(["f4"], runs, cap=7, folder=abl, controls_csv=NONE)
    assert bool(df["beyond_cap"].iloc[0]) and df["file_seeds"].iloc[0] == 3  # the floor: 7 would not decide it


def test_write_sets_the_files_seeds_and_plan_and_the_file_still_loads(pilot, tmp_path):
    runs, abl = pilot
    assert plan.main(["f4", "--runs", str(runs), "--ablations", str(abl), "--out", str(tmp_path / "out"),
                      "--calibration", str(NONE), "--write"]) == 0
    spec = load_ablation(abl / "f4.yaml")
    df = pd.read_csv(tmp_path / "out" / "plan.csv")
    n = int(df["file_seeds"].iloc[0])
    assert spec.seeds == list(range(2, 2 + n))  # past the pilot's seeds 0-1: the test does not rerun the pilot
    assert spec.plan.startswith(f"{n} seeds: the pilot's figure for 80% power") and "none of the pilot's" in spec.plan
    assert plan.main(["f4", "--runs", str(runs), "--ablations", str(abl), "--out", str(tmp_path / "out"),
                      "--calibration", str(NONE), "--write", "--first-seed", "0"]) == 0
    assert load_ablation(abl / "f4.yaml").seeds == list(range(n))
    assert "Seed plan from the pilot" in (tmp_path / "out" / "PLAN.md").read_text()


def test_a_blind_level_task_is_not_planned_and_a_file_without_a_pilot_keeps_its_seeds(pilot, tmp_path):
    runs, abl = pilot
    controls = tmp_path / "controls.csv"
    pd.DataFrame([{"split": 0, "task": t, "margin": m, "margin_in_sd": z}
                  for t, m, z in (("vqa", 9.0, 6.0), ("avg", 0.5, 0.3))]).to_csv(controls, index=False)
    df = plan.plan(["f4"], runs, folder=abl, controls_csv=controls)
    assert df.iloc[0]["note"].startswith("untestable here") and df.iloc[0]["seeds"] != df.iloc[0]["seeds"]
    assert df["file_seeds"].iloc[0] != df["file_seeds"].iloc[0]  # nothing to plan from
    before = (abl / "f4.yaml").read_text()
    assert plan.main(["f4", "--runs", str(tmp_path / "no-pilot"), "--ablations", str(abl), "--out",
                      str(tmp_path / "out"), "--calibration", str(NONE), "--write"]) == 0
    assert (abl / "f4.yaml").read_text() == before


def test_power_falls_back_to_scipy_where_statsmodels_returns_nan():
    """statsmodels' TTestPower returns nan for large effects at small alpha (n = 5-8 at d = 4.9, alpha 0.05 / 15),
    which once planned 9 seeds for a check that 5 give 97.6% power."""
    from vlmlab.report.stats import paired_t_power, seeds_for_power

    powers = [paired_t_power(17.17 / 3.54, n, 0.05 / 15) for n in range(2, 12)]
    assert all(p == p for p in powers) and powers[:4] == sorted(powers[:4])  # finite, rising to n = 5
    assert powers[2] < 0.8 <= min(powers[3:])
    assert seeds_for_power(3.535534, 17.166667, alpha=0.05 / 15) == 5


def _one_seed_file(runs, abl, d):
    """f5: preserve vs square, primary, one pilot seed with difference d."""
    write_ablation(abl, "f5", "F5", {"image": "square,preserve"},
                   [{"better": {"image": "preserve"}, "worse": {"image": "square"}, "metric": "avg", "primary": True}])
    make_run(runs, "f5", "image=preserve", 0, avg=50.0 + d)
    make_run(runs, "f5", "image=square", 0, avg=50.0)


def test_a_one_seed_pilot_borrows_the_pooled_sd_of_the_pilots_other_comparisons(pilot):
    runs, abl = pilot
    _one_seed_file(runs, abl, 3.0)
    df = plan.plan(["f4", "f5"], runs, folder=abl, controls_csv=NONE).set_index("ablation")
    # f4's comparisons with two seeds: perceiver - mlp = (2, 4), perceiver - linear = (12, 15)
    pooled = math.sqrt((pd.Series([2.0, 4.0]).var() + pd.Series([12.0, 15.0]).var()) / 2)
    row = df.loc["f5"]
    assert row["sd"] == pytest.approx(pooled) and row["effect"] == 3.0 and "pooled" in row["note"]
    assert row["seeds"] == seeds_for_power(pooled, 3.0, alpha=row["alpha"])


def test_an_sd_floor_raises_a_pilots_too_small_sd_and_is_written_into_the_plan(pilot, tmp_path):
    runs, abl = pilot
    own = pd.Series([2.0, 4.0]).std(ddof=1)  # perceiver - mlp
    pooled = math.sqrt((pd.Series([2.0, 4.0]).var() + pd.Series([12.0, 15.0]).var()) / 2)  # with perceiver - linear
    assert pooled > own
    none = plan.plan(["f4"], runs, folder=abl, controls_csv=NONE).iloc[0]
    floored = plan.plan(["f4"], runs, folder=abl, controls_csv=NONE, sd_floor="pooled").iloc[0]
    assert none["sd"] == pytest.approx(own) and "floor" not in none["note"]
    assert floored["sd"] == pytest.approx(pooled) and "raised to the floor" in floored["note"]
    assert floored["seeds"] == seeds_for_power(pooled, 3.0, alpha=floored["alpha"]) >= none["seeds"]
    with pytest.raises(ValueError, match="sd floor"):
        plan.plan(["f4"], runs, folder=abl, controls_csv=NONE, sd_floor="max")
    assert plan.main(["f4", "--runs", str(runs), "--ablations", str(abl), "--out", str(tmp_path / "out"),
                      "--calibration", str(NONE), "--write", "--sd-floor", "pooled"]) == 0
    assert "SD floor: pooled" in load_ablation(abl / "f4.yaml").plan


def test_an_sd_floor_never_lowers_a_pilots_sd(pilot):
    runs, abl = pilot
    for seed, p in enumerate([52.0, 60.0]):  # perceiver - mlp = (2, 9): its own SD above the pooled one
        make_run(runs, "f4", "connector=perceiver", seed, avg=p)
    for seed, l in enumerate([40.0, 48.0]):  # perceiver - linear = (12, 12): SD 0
        make_run(runs, "f4", "connector=linear", seed, avg=l)
    own = pd.Series([2.0, 9.0]).std(ddof=1)
    row = plan.plan(["f4"], runs, folder=abl, controls_csv=NONE, sd_floor="pooled").iloc[0]
    assert row["sd"] == pytest.approx(own) and "floor" not in row["note"]


def test_a_one_seed_pilot_without_other_comparisons_takes_the_calibrations_seed_sd(tmp_path):
    runs, abl, cal = tmp_path / "runs", tmp_path / "ablations", tmp_path / "calibration_vx"
    _one_seed_file(runs, abl, 3.0)
    cal.mkdir()
    pd.DataFrame([{"split": 0, "task": "vqa", "trained_sd": 2.0, "margin": 9.0, "margin_in_sd": 6.0, "seeds": "3/3"}]
                 ).to_csv(cal / "controls.csv", index=False)
    pd.DataFrame([{"steps": 600, "avg": 50.0, "seeds": 3, "avg_sd": 1.5}]).to_csv(cal / "curve.csv", index=False)
    row = plan.plan(["f5"], runs, folder=abl, controls_csv=cal / "controls.csv").iloc[0]
    assert row["sd"] == pytest.approx(math.sqrt(2) * 1.5) and "calibration" in row["note"]
    assert plan_power.calibration_sd("vqa", cal / "controls.csv")[0] == 2.0
    assert math.isnan(plan_power.calibration_sd("okvqa", cal / "controls.csv")[0])


def test_the_pilot_needs_only_the_cells_of_powered_primary_checks(pilot):
    runs, abl = pilot
    from vlmlab.ablate import load

    spec = load("f4", abl)
    assert plan.needed_cells(spec) == ["connector=mlp", "connector=perceiver"]  # not linear: a secondary's
    assert plan.needed_cells(spec, {"avg": "untestable here"}) == []  # the timing is powered by reps


def test_ablate_cells_primary_runs_one_sweep_per_needed_cell(pilot, monkeypatch):
    runs, abl = pilot
    from vlmlab import ablate

    monkeypatch.setattr(plan, "untestable_today", lambda scale="base": {})
    ran = []
    monkeypatch.setattr(ablate, "run_ablation", lambda a, args, timing=True: ran.append((a.grid, timing)) or 0)
    monkeypatch.setattr(ablate, "regenerate_report", lambda args, folder, scale="base": None)
    assert ablate.main(["f4", "--ablations", str(abl), "--seeds", "0", "--cells", "primary"]) == 0
    assert ran == [({"connector": "mlp"}, False), ({"connector": "perceiver"}, False)]
    assert ablate.main(["f4", "--ablations", str(abl), "--cells", "some"]) == 2


def test_the_cost_counts_every_cell_at_its_pilot_time_and_says_whether_it_fits(pilot, tmp_path):
    runs, abl = pilot
    for seed in (0, 1):  # perceiver runs take 10 s, mlp 30 s; linear (2 s, the fakes' default) stays
        make_run(runs, "f4", "connector=perceiver", seed, avg=(52.0, 55.0)[seed], wall=10.0)
        make_run(runs, "f4", "connector=mlp", seed, avg=(50.0, 51.0)[seed], wall=30.0)
    df = plan.plan(["f4"], runs, folder=abl, controls_csv=NONE)
    cost = plan_cost.cost_table(df, runs, abl, jobs=2).iloc[0]
    n = int(df["file_seeds"].iloc[0])
    assert (cost["cells"], cost["unmeasured_cells"], cost["runs"]) == (3, 0, 3 * n)
    assert cost["est_min"] == pytest.approx((10 + 30 + 2) * n / 2 / 60)
    md = plan.report(df, str(runs), tmp_path / "out", plan_cost.cost_table(df, runs, abl), budget=0.01).read_text()
    assert "DOES NOT FIT" in md and (tmp_path / "out" / "cost.csv").exists()


def test_a_cell_the_pilot_did_not_run_is_costed_at_the_calibrations_runs_of_the_same_training(pilot, tmp_path):
    """linear has no pilot run; the calibration trained exactly its model (another seed and evaluation set) in
    120 and 140 s, and linear with another learning rate in 999 s, which must not count."""
    from dataclasses import asdict

    from vlmlab.ablate import launch_defaults
    from vlmlab.config import compose

    runs, abl = pilot
    for seed in (0, 1):
        make_run(runs, "f4", "connector=perceiver", seed, avg=(52.0, 55.0)[seed], wall=10.0)
        make_run(runs, "f4", "connector=mlp", seed, avg=(50.0, 51.0)[seed], wall=30.0)
        shutil.rmtree(runs / "f4" / "connector=linear" / f"seed{seed}")
    cal = tmp_path / "calibration_vx" / "runs"
    sweep = [d for d in launch_defaults([]) if d.startswith("threads=")]
    for seed, wall in ((0, 120.0), (1, 140.0)):
        cfg = asdict(compose(["connector=linear", f"seed={seed}", "eval.max_samples=300", "eval.split=validation",
                              "data.validation_size=300", *sweep]))
        make_run(cal, "controls", "eval.split=validation", seed, wall=wall, cfg=cfg)
    make_run(cal, "ladder", "connector=linear,optim.lr=0.5", 0, wall=999.0,
             cfg=asdict(compose(["connector=linear", "optim.lr=0.5", *sweep])))
    df = plan.plan(["f4"], runs, folder=abl, controls_csv=NONE)
    n = int(df["file_seeds"].iloc[0])
    plain = plan_cost.cost_table(df, runs, abl, jobs=2).iloc[0]
    assert (plain["unmeasured_cells"], plain["from_calibration"]) == (1, 0)
    assert plain["est_min"] == pytest.approx((10 + 30 + 20) * n / 2 / 60)  # linear at the file's median, 20 s
    cost = plan_cost.cost_table(df, runs, abl, jobs=2, calibration_runs=cal).iloc[0]
    assert (cost["unmeasured_cells"], cost["from_calibration"]) == (0, 1)
    assert cost["est_min"] == pytest.approx((10 + 30 + 130) * n / 2 / 60)
    one = plan_cost.cost_table(df.assign(file_seeds=1.0), runs, abl, jobs=8, calibration_runs=cal).iloc[0]
    assert one["est_min"] == pytest.approx(130 / 60)  # 3 runs on 8 jobs: the longest run, not (10 + 30 + 130) / 8


def test_a_file_no_seed_count_decides_gets_the_undecided_seeds_and_says_why(pilot, tmp_path):
    runs, abl = pilot
    for seed, p in enumerate([50.1, 50.95]):  # d = +0.1, -0.05 against mlp's 50, 51: beyond any cap
        make_run(runs, "f4", "connector=perceiver", seed, avg=p)
    assert plan.plan(["f4"], runs, folder=abl, controls_csv=NONE, undecided=1)["file_seeds"].iloc[0] == 1
    assert plan.main(["f4", "--runs", str(runs), "--ablations", str(abl), "--out", str(tmp_path / "out"),
                      "--calibration", str(NONE), "--undecided", "1", "--write"]) == 0
    spec = load_ablation(abl / "f4.yaml")
    assert spec.seeds == [2] and spec.plan.startswith("1 seed: no seed count decides this file's primary checks")


def test_the_committed_plan_regenerates_and_fixed_the_files_seeds():
    """results/plan/plan.csv comes from the committed pilot runs (results/plan/pilot_runs) by `python -m vlmlab.plan
    all --runs results/plan/pilot_runs --undecided 1`, and each planned file's seeds are its figure, from seed 2."""
    from vlmlab.ablate import load
    from vlmlab.config import repo_root
    from vlmlab.contract.ablation import first_looks

    folder = repo_root() / "results" / "plan"
    if not (folder / "plan.csv").exists():
        pytest.skip("no committed plan")
    committed = pd.read_csv(folder / "plan.csv")
    names = first_looks(repo_root() / "ablations")
    again = plan.plan(names, folder / "pilot_runs", undecided=1)
    # divergence checks were sized at 3402c54 with a z test's power (3 seeds per arm at shares 1 vs 0), where the
    # report's Fisher test cannot reach the corrected alpha; the planner now sizes them for Fisher (6). The
    # committed count stands for that run; every other figure regenerates as it was.
    event = set(committed.loc[committed["metric"] == "diverged", "ablation"])
    keep = ~committed["ablation"].isin(event)
    assert list(again.loc[keep.values, "file_seeds"].fillna(-1)) == list(committed.loc[keep, "file_seeds"].fillna(-1))
    fisher = again[again["metric"] == "diverged"]
    assert event == {"f3_unfreezing"} and (fisher["seeds"] == 6).all()
    assert (committed.loc[committed["metric"] == "diverged", "seeds"] == 3).all()
    for name, g in committed.groupby("ablation"):
        n, spec = g["file_seeds"].iloc[0], load(name)
        if n == n and (spec.findings_run or spec.plan):
            assert spec.seeds == list(range(2, 2 + int(n))), name


def test_divergence_seeds_are_sized_for_the_fisher_test_the_report_runs():
    """At shares 1 vs 0 Fisher's smallest two-sided p with n runs per arm is 2 / C(2n, n): 0.1 at 3, 0.0286 at 4,
    0.0022 at 6; the plan asks for the first n whose power reaches 80%."""
    from scipy.stats import fisher_exact

    assert plan_power.event_seeds(1.0, 0.0, 0.05, 20) == 4 and plan_power.event_seeds(1.0, 0.0, 0.05 / 15, 20) == 6
    assert fisher_exact([[3, 0], [0, 3]]).pvalue > 0.05 / 15 > fisher_exact([[6, 0], [0, 6]]).pvalue
    assert plan_power.event_seeds(0.5, 0.5, 0.05, 20) == float("inf")
    assert plan_power.event_seeds(0.3, 0.0, 0.05 / 15, 20) == float("inf")  # beyond the cap


def test_the_committed_large_plan_regenerates_and_fixed_the_scale_files_seeds():
    """results/plan_large/plan.csv comes from the committed large pilot (results/plan_large/pilot_runs) by `make
    plan-large ARGS='--write --cap 9 --undecided 1'` (the cap from the budget: ablations/large/f4_pooling.yaml's
    cut:), and each scale file's seeds are its figure, from seed 2, with the pilot's seeds 0-1 left out."""
    from vlmlab.ablate import load
    from vlmlab.config import repo_root
    from vlmlab.contract.ablation import first_looks

    folder, abl = repo_root() / "results" / "plan_large", repo_root() / "ablations" / "large"
    if not (folder / "plan.csv").exists():
        pytest.skip("no committed large plan")
    committed = pd.read_csv(folder / "plan.csv")
    # `plan all` plans the first looks; a later look (f7_pixel_shuffle_decide) has a plan of its own
    again = plan.plan(first_looks(abl), folder / "pilot_runs", cap=9, folder=abl, undecided=1)
    assert list(again["file_seeds"].fillna(-1)) == list(committed["file_seeds"].fillna(-1))
    assert list(again["seeds"].fillna(-1)) == list(committed["seeds"].fillna(-1))
    for name, g in committed.groupby("ablation"):
        n = int(g["file_seeds"].iloc[0])
        assert load(name, abl).seeds == list(range(2, 2 + n)), name
    assert "9" in load("f4_pooling", abl).cut and bool(committed.loc[committed["ablation"] == "f4_pooling", "beyond_cap"].any())


def test_the_calibration_floor_for_avg_reads_the_control_runs_where_there_is_no_learning_curve(tmp_path):
    """The large world's calibration has controls but no curve.csv: avg's seed SD comes from its sighted,
    unsplit control runs (the blind and split ones are not the recipe)."""
    import json

    cal = tmp_path / "calibration_large"
    (cal / "controls.csv").parent.mkdir()
    pd.DataFrame([{"split": 0, "task": "vqa", "trained_sd": 2.0}]).to_csv(cal / "controls.csv", index=False)
    for cell, avgs in (("image.blind=False,image.split=0", (40.0, 42.0, 47.0)),
                       ("image.blind=True,image.split=0", (10.0, 90.0, 50.0)),
                       ("image.blind=False,image.split=2", (0.0, 100.0, 50.0))):
        for seed, a in enumerate(avgs):
            run = cal / "runs" / "controls" / f"eval.split=validation,{cell}" / f"seed{seed}"
            run.mkdir(parents=True)
            (run / "summary.json").write_text(json.dumps({"metrics": {"avg": a}}))
    sd, where = plan_power.calibration_sd("avg", cal / "controls.csv")
    assert sd == pytest.approx(pd.Series([40.0, 42.0, 47.0]).std(ddof=1)) and "3 seeds" in where
    assert plan_power.sd_floor("avg", "calibration", None, cal / "controls.csv")[0] == pytest.approx(math.sqrt(2) * sd)
    assert math.isnan(plan_power.sd_floor("avg", "pooled", None, cal / "controls.csv")[0])  # no pilot: no floor
