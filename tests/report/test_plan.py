"""The seed plan: a pilot's paired differences give each primary check its seeds for 80% power, written into the file."""
import math

import pandas as pd
import pytest
from report_fakes import make_run, write_ablation
from statsmodels.stats.power import TTestPower

from vlmlab import plan
from vlmlab.contract.ablation import load_ablation

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


def test_a_check_beyond_the_cap_says_so_and_the_file_gets_the_cap(pilot):
    runs, abl = pilot
    for seed, p in enumerate([50.5, 51.6]):  # d = +0.5, +0.6 (mlp 50, 51), sd 0.07: few seeds; then a tiny effect
        make_run(runs, "f4", "connector=perceiver", seed, avg=p)
    assert plan.plan(["f4"], runs, folder=abl, controls_csv=NONE)["file_seeds"].iloc[0] == 3  # the floor
    for seed, p in enumerate([50.1, 50.95]):  # d = +0.1, -0.05: a pilot effect far below its noise
        make_run(runs, "f4", "connector=perceiver", seed, avg=p)
    df = plan.plan(["f4"], runs, cap=7, folder=abl, controls_csv=NONE)
    assert bool(df["beyond_cap"].iloc[0]) and df["file_seeds"].iloc[0] == 7


def test_write_sets_the_files_seeds_and_plan_and_the_file_still_loads(pilot, tmp_path):
    runs, abl = pilot
    assert plan.main(["f4", "--runs", str(runs), "--ablations", str(abl), "--out", str(tmp_path / "out"),
                      "--calibration", str(NONE), "--write"]) == 0
    spec = load_ablation(abl / "f4.yaml")
    df = pd.read_csv(tmp_path / "out" / "plan.csv")
    assert spec.seeds == list(range(int(df["file_seeds"].iloc[0])))
    assert spec.plan.startswith(f"{len(spec.seeds)} seeds: the pilot's figure for 80% power")
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
