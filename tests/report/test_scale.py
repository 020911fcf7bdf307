"""Scale transfer: the same ablation reported at two scales is compared check by check (holds, flips, appears,
vanishes, with the change's Welch interval) and cell by cell (Kendall's tau with a bootstrap interval)."""
import math

import numpy as np
import pandas as pd
from report_fakes import make_run, write_ablation

from vlmlab.report import scale
from vlmlab.report.render import build as report

CONNECTORS = {"avgpool": 0.0, "mlp": 1.0, "perceiver": 2.0, "pixel_shuffle": 3.0}
CHECKS = [{"better": {"connector": "perceiver"}, "worse": {"connector": "avgpool"}, "metric": "avg", "primary": True},
          {"better": {"connector": "mlp"}, "worse": {"connector": "avgpool"}, "metric": "avg"},
          {"better": {"connector": "pixel_shuffle"}, "worse": {"connector": "mlp"}, "metric": "avg"}]


def reported(tmp_path, name: str, effects: dict, seed: int):
    """A report folder of one ablation whose cells score 40 + effect + noise on 4 seeds."""
    abl, runs, out = tmp_path / name / "ablations", tmp_path / name / "runs", tmp_path / name / "results"
    write_ablation(abl, "f4_x", "F4", {"connector": ",".join(CONNECTORS)}, CHECKS, seeds=(0, 1, 2, 3))
    rng = np.random.default_rng(seed)
    for s in range(4):
        for c in CONNECTORS:
            make_run(runs, "f4_x", f"connector={c}", s, avg=40 + effects[c] + 0.3 * s + rng.normal(0, 0.2))
    report(runs, abl, out)
    return out


def test_checks_transfer_and_ranks_agree_across_scales(tmp_path):
    base = reported(tmp_path, "base", {"avgpool": 0.0, "mlp": 2.0, "perceiver": 4.0, "pixel_shuffle": 6.0}, 0)
    # large: the primary check holds (bigger), the mlp check flips, the third vanishes (equal cells)
    large = reported(tmp_path, "large", {"avgpool": 0.0, "mlp": -3.0, "perceiver": 8.0, "pixel_shuffle": -3.0}, 1)
    res = scale.build(base, large, tmp_path / "scale")
    checks = res["checks"].set_index("index")
    assert list(res["checks"]["primary"])[0]  # primary checks first
    assert checks.loc[0, "transfer"] == "holds" and checks.loc[0, "same_sign"]
    assert checks.loc[0, "change_lo"] > 0 and abs(checks.loc[0, "change"] - 4.0) < 1  # the effect grew by ~4
    assert checks.loc[1, "transfer"] == "flips" and not checks.loc[1, "same_sign"]
    assert checks.loc[2, "transfer"] == "vanishes"
    assert (checks["base_lo"] <= checks["base_diff"]).all() and (checks["large_diff"] <= checks["large_hi"]).all()
    rank = res["ranks"].iloc[0]
    assert rank["cells"] == 4 and rank["metric"] == "avg"
    # base order avgpool < mlp < perceiver < pixel_shuffle; large: mlp = pixel_shuffle < avgpool < perceiver
    assert rank["tau_lo"] <= rank["kendall_tau"] <= rank["tau_hi"] and rank["kendall_tau"] < 0.5
    md = (tmp_path / "scale" / "SCALE.md").read_text()
    assert "**holds**" in md and "**flips**" in md and "Kendall's tau" in md
    assert pd.read_csv(tmp_path / "scale" / "checks.csv").shape[0] == 3


def test_identical_scales_hold_with_perfect_rank_agreement(tmp_path):
    effects = {"avgpool": 0.0, "mlp": 2.0, "perceiver": 4.0, "pixel_shuffle": 6.0}
    base, large = reported(tmp_path, "base", effects, 0), reported(tmp_path, "large", effects, 0)
    res = scale.build(base, large, tmp_path / "scale")
    assert set(res["checks"]["transfer"]) == {"holds"} and (res["checks"]["change"].abs() < 1e-9).all()
    assert res["ranks"].iloc[0]["kendall_tau"] == 1.0


def test_transfer_labels_and_the_welch_interval():
    assert [scale.transfer(b, la) for b, la in [("reproduced", "reproduced"), ("reproduced", "contradicted"),
                                               ("inconclusive", "contradicted"), ("reproduced", "untestable here"),
                                               ("inconclusive", "not run yet")]] == \
        ["holds", "flips", "appears", "vanishes", "undecided"]
    # a fact (FLOPs, parameters) is decided: it holds across scales, or flips when it fails at one of them
    assert [scale.transfer(b, la) for b, la in [("fact: holds", "fact: holds"), ("fact: holds", "fact: does not hold"),
                                               ("fact: holds", "not run yet")]] == ["holds", "flips", "vanishes"]
    # two effects of 1.0 +- 0.5 (95%, n = 10): their change is 0 with an interval of about +-0.68
    row = pd.Series({"base_diff": 1.0, "base_lo": 0.5, "base_hi": 1.5, "base_n": 10,
                     "large_diff": 1.0, "large_lo": 0.5, "large_hi": 1.5, "large_n": 10})
    change, lo, hi = scale.change_interval(row)
    assert change == 0 and math.isclose(hi, -lo) and 0.6 < hi < 0.75
    assert math.isnan(scale.change_interval(row.replace({10: 1}))[1])  # one pair: no interval


def test_no_ablation_at_both_scales_says_so(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    res = scale.build(tmp_path / "a", tmp_path / "b", tmp_path / "out")
    assert res["ablations"] == [] and "No ablation is reported at both scales" in (tmp_path / "out" / "SCALE.md").read_text()


def test_a_check_pooled_over_two_looks_is_named_with_its_files_and_seeds(tmp_path):
    effects = {"avgpool": 0.0, "mlp": 2.0, "perceiver": 4.0, "pixel_shuffle": 6.0}
    base, large = reported(tmp_path, "base", effects, 0), reported(tmp_path, "large", effects, 1)
    seeds = pd.read_csv(large / "f4_x" / "seeds.csv")  # as a follow-up file's seeds 2-3 merged in look to look
    seeds["look_file"] = np.where(seeds["seed"] < 2, "f4_x", "f4_x_decide")
    seeds.to_csv(large / "f4_x" / "seeds.csv", index=False)
    scale.build(base, large, tmp_path / "scale")
    md = (tmp_path / "scale" / "SCALE.md").read_text()
    assert "- f4_x at the large scale: 2 looks, f4_x (seeds 0, 1); f4_x_decide (seeds 2, 3)" in md
    assert "at the base scale" not in md  # one look there: nothing to disclose
