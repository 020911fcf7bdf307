"""Verdicts on synthetic run folders: reproduced / contradicted / inconclusive, not_worse, diverged, pooling."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st
from report_fakes import make_run

from vlmlab.report import aggregate, calibration, stats, verdicts
from vlmlab.report.render import effect_text
from vlmlab.report.verdicts import finding_verdict

BETTER = {"connector": "perceiver"}
WORSE = {"connector": "mlp"}


def chk(metric, **kw):
    return {"better": BETTER, "worse": WORSE, "metric": metric, **kw}


@pytest.fixture
def f4(tmp_path):
    """perceiver clearly better on avg and latency, clearly worse on throughput, noisy on vqa."""
    runs = tmp_path / "runs"
    per = {"perceiver": dict(avg=[60, 62, 61], sps=[5.0, 5.2, 5.1], lat=[3.0, 3.1, 2.9], vqa=[50, 60, 40]),
           "mlp": dict(avg=[50, 53, 51], sps=[10.0, 10.1, 10.3], lat=[5.0, 5.2, 5.1], vqa=[55, 45, 52])}
    for conn, v in per.items():
        for s in range(3):
            rest = (4 * v["avg"][s] - v["vqa"][s]) / 3  # keep avg the plain mean of the four tasks
            make_run(runs, "f4", f"connector={conn}", s, sps=v["sps"][s], latency=v["lat"][s],
                     tasks={"vqa": v["vqa"][s], "textvqa": rest, "okvqa": rest, "caption": rest})
    spec = {"name": "f4", "finding": "F4", "seeds": [0, 1, 2], "grid": {"connector": "mlp,perceiver"}}
    return aggregate.seeds_table(runs, "f4", spec), spec, runs


def test_reproduced_contradicted_inconclusive(f4):
    seeds, spec, _ = f4
    spec["checks"] = [chk("avg"), chk("train_samples_per_s"), chk("vqa"), chk("eval_latency_ms")]
    v = verdicts.verdicts_table(seeds, spec).set_index("metric")
    assert list(v["verdict"]) == ["reproduced", "contradicted", "inconclusive", "reproduced"]
    avg = v.loc["avg"]
    assert avg["n_pairs"] == 3 and avg["diff_mean"] == pytest.approx(29 / 3)  # diffs 10, 9, 10
    assert avg["diff_ci95"] == pytest.approx(4.303 * math.sqrt(1 / 3) / math.sqrt(3), rel=1e-3)
    assert avg["better_mean"] == pytest.approx(61.0) and avg["worse_mean"] == pytest.approx(51.333, abs=1e-3)
    assert v.loc["eval_latency_ms", "direction"] == "lower" and v.loc["eval_latency_ms", "diff_hi"] < 0
    assert v.loc["train_samples_per_s", "diff_hi"] < 0 and v.loc["vqa", "diff_lo"] < 0 < v.loc["vqa", "diff_hi"]
    assert v.loc["avg", "better_cells"] == "connector=perceiver" and v.loc["avg", "worse_cells"] == "connector=mlp"
    assert verdicts.findings_table(v.reset_index()).iloc[0]["verdict"] == "mixed"


def test_not_worse_with_margin(f4):
    seeds, spec, _ = f4
    spec["checks"] = [{"kind": "not_worse", "better": WORSE, "worse": BETTER, "metric": "avg", "margin": 12.0},
                      {"kind": "not_worse", "better": WORSE, "worse": BETTER, "metric": "avg", "margin": 2.0},
                      {"kind": "not_worse", "better": WORSE, "worse": BETTER, "metric": "vqa", "margin": 2.0}]
    v = verdicts.verdicts_table(seeds, spec)  # mlp - perceiver on avg: -10, -9, -10 (CI about [-11.1, -8.2])
    assert list(v["verdict"]) == ["reproduced", "contradicted", "inconclusive"]
    # the test itself: against the bound -margin, not against 0
    assert stats.paired_p([-0.5, -0.3, -0.4], -2.0)[0] < 0.05 and stats.paired_p([-0.5, -0.3, -0.4], -0.4)[0] > 0.5
    assert math.isnan(stats.paired_p([1.0], 0.0)[0])  # one pair: no test


def test_diverged_seeds_leave_the_pairs_and_are_counted(tmp_path):
    """F3-style: lora vs full at two learning rates; full diverges at the high one."""
    runs = tmp_path / "runs"
    for s in range(3):
        for lr in ("0.001", "0.01"):
            make_run(runs, "f3", f"optim.lr={lr},trainable=lora", s, avg=60 + s)
            make_run(runs, "f3", f"optim.lr={lr},trainable=full", s, avg=50 + s,
                     status="diverged" if lr == "0.01" or s == 2 else "finished")
    spec = {"name": "f3", "finding": "F3", "seeds": [0, 1, 2],
            "checks": [{"better": {"trainable": "lora"}, "worse": {"trainable": "full"}, "metric": "diverged"},
                       {"better": {"trainable": "lora"}, "worse": {"trainable": "full"}, "metric": "avg"},
                       {"better": {"trainable": "lora", "optim.lr": 0.01}, "worse": {"trainable": "full", "optim.lr": "1e-2"},
                        "metric": "avg"}]}
    seeds = aggregate.seeds_table(runs, "f3", spec)
    cells = aggregate.cells_table(seeds, spec).set_index("cell")
    assert cells.loc["optim.lr=0.01,trainable=full", "diverged_share"] == 1.0
    assert cells.loc["optim.lr=0.001,trainable=full", "n_diverged"] == 1
    assert cells.loc["optim.lr=0.001,trainable=lora", "diverged_share"] == 0.0
    v = verdicts.verdicts_table(seeds, spec)
    div, avg, high = v.to_dict("records")
    assert div["n_pairs"] == 6 and div["diff_mean"] == pytest.approx(-4 / 6) and div["direction"] == "lower"
    # 0/6 against 4/6 diverged: Fisher's exact test gives p = 0.061, not the zero-width "certainty" of a t interval
    assert div["test"] == "Fisher exact" and div["p"] == pytest.approx(0.0606, abs=1e-3)
    assert div["verdict"] == "inconclusive"
    # only pairs where both finished (lr 0.001, seeds 0-1): 10 and 10, no spread, so the sign test: p = 0.5
    assert avg["n_pairs"] == 2 and avg["test"] == "sign test" and avg["p"] == 0.5 and avg["verdict"] == "inconclusive"
    assert "4 diverged or failed seed(s)" in avg["note"]  # the survivors are not silently the whole story
    assert high["n_pairs"] == 0 and high["verdict"] == "inconclusive" and "only 0 paired" in high["note"]
    three = {"better": {"trainable": "lora", "optim.lr": 0.01}, "worse": {"trainable": "full", "optim.lr": "1e-2"},
             "metric": "diverged"}
    r = verdicts.evaluate_check(seeds, three)  # 0/3 against 3/3: p = 0.10, the example
    assert r["p"] == pytest.approx(0.1) and r["verdict"] == "inconclusive"


def test_one_diverged_seed_in_three_is_inconclusive(tmp_path):
    runs = tmp_path / "runs"
    for s in range(3):
        make_run(runs, "f3", "trainable=lora", s)
        make_run(runs, "f3", "trainable=full", s, status="diverged" if s == 1 else "finished")
    make_run(runs, "f3", "trainable=full", 3, status="failed")  # a failed seed pairs with nothing
    spec = {"name": "f3", "finding": "F3", "seeds": [0, 1, 2, 3],
            "checks": [{"better": {"trainable": "lora"}, "worse": {"trainable": "full"}, "metric": "diverged"}]}
    r = verdicts.verdicts_table(aggregate.seeds_table(runs, "f3", spec), spec).iloc[0]
    assert (r["n_pairs"], r["verdict"]) == (3, "inconclusive") and r["diff_mean"] == pytest.approx(-1 / 3)


def test_pairs_need_matching_seeds_and_cells(f4):
    seeds, spec, runs = f4
    one = seeds[(seeds["seed"] == 0)]
    r = verdicts.evaluate_check(one, chk("avg"))
    assert (r["n_pairs"], r["verdict"]) == (1, "inconclusive") and "needs 2" in r["note"]
    r = verdicts.evaluate_check(seeds, {"better": {"connector": "linear"}, "worse": WORSE, "metric": "avg"})
    assert (r["n_pairs"], r["verdict"], r["note"]) == (0, "inconclusive", "no cells match this check")
    r = verdicts.evaluate_check(seeds, chk("params"))  # identical params: a fact, and it does not hold
    assert (r["n_pairs"], r["diff_mean"], r["verdict"], r["test"]) == (3, 0.0, "fact: does not hold", "fact")
    with pytest.raises(ValueError, match="not_worse"):
        verdicts.evaluate_check(seeds, chk("avg", kind="similar"))


def test_not_run_yet(tmp_path):
    spec = {"name": "f2", "finding": "F2", "seeds": [0, 1], "grid": {"fusion": "autoregressive,cross_attention"},
            "checks": [{"better": {"fusion": "cross_attention"}, "worse": {"fusion": "autoregressive"}, "metric": "avg"}]}
    seeds = aggregate.seeds_table(tmp_path / "runs", "f2", spec)
    assert len(seeds) == 4 and set(seeds["status"]) == {"missing"}
    v = verdicts.verdicts_table(seeds, spec)
    assert v.iloc[0]["verdict"] == "not run yet" and finding_verdict(list(v["verdict"])) == "not run yet"


@pytest.mark.parametrize("checks, expected", [
    (["reproduced", "reproduced"], "reproduced"),
    (["reproduced", "inconclusive"], "partly reproduced"),
    (["reproduced", "contradicted"], "mixed"),
    (["contradicted", "inconclusive"], "contradicted"),
    (["inconclusive", "inconclusive"], "inconclusive"),
    (["reproduced", "not run yet"], "reproduced"),
    (["not run yet"], "not run yet"),
])
def test_finding_verdict(checks, expected):
    assert finding_verdict(checks) == expected


def test_inconclusive_checks_say_how_many_seeds_would_decide(f4):
    """seeds_to_decide: the paired seeds for 80% power of the t test against the bound (0, or -margin) at the
    observed mean and std, labelled reproduce or contradict; NaN for decided checks; inf past 200 or at a zero effect."""
    seeds, spec, _ = f4
    spec["checks"] = [chk("avg"), chk("vqa"),
                      {"kind": "not_worse", "better": WORSE, "worse": BETTER, "metric": "vqa", "margin": 4.0}]
    v = verdicts.verdicts_table(seeds, spec)
    assert list(v["verdict"]) == ["reproduced", "inconclusive", "inconclusive"]
    assert math.isnan(v.loc[0, "seeds_to_decide"])
    s = float(np.std([-5, 15, -12], ddof=1))  # perceiver - mlp on vqa: 50-55, 60-45, 40-52
    assert math.isinf(v.loc[1, "seeds_to_decide"]) and v.loc[1, "power_for"] == "contradict"  # mean -2/3 at std 14
    n, distance = v.loc[2, "seeds_to_decide"], 2 / 3 + 4.0  # mlp - perceiver = +2/3, 4.67 above the -4 margin
    assert v.loc[2, "power_for"] == "reproduce" and 2 < n < 200

    def power(k):  # the exact power of a two-sided paired t test with k pairs (noncentral t), from scipy
        df, nc = k - 1, distance / s * math.sqrt(k)
        crit = st.t.ppf(0.975, df)
        return 1 - st.nct.cdf(crit, df, nc) + st.nct.cdf(-crit, df, nc)
    assert power(n) >= 0.8 > power(n - 1)
    zero = {"kind": "better", "better": BETTER, "worse": WORSE, "metric": "textvqa"}
    flat = seeds.copy()
    flat["textvqa"] = 5.0  # every seed scores the same: a zero effect, which no number of seeds decides
    assert math.isinf(verdicts.evaluate_check(flat, zero)["seeds_to_decide"])
    r = {**verdicts.evaluate_check(flat, zero)}
    assert "a zero effect, which no seed count decides" in effect_text(r)
    assert f"~{int(n)} seeds for 80% power to reproduce" in effect_text(v.loc[2].to_dict())
    assert "over 200 seeds for 80% power to contradict" in effect_text(v.loc[1].to_dict())


def test_holm_adjusts_over_the_report_and_verdicts_read_the_adjusted_p(f4):
    seeds, spec, _ = f4
    spec["checks"] = [chk("avg"), chk("vqa"), chk("params")]
    v = verdicts.adjust(verdicts.verdicts_table(seeds, spec))
    family = v[v["test"] != "fact"]
    assert family["p_holm"].notna().all() and (family["p_holm"] >= family["p"]).all()
    assert math.isnan(v.loc[2, "p_holm"]) and v.loc[2, "verdict"].startswith("fact")  # facts: outside the family
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    borderline = v.copy()
    borderline.loc[0, "p"] = 0.03  # alone significant; with one more check at p 0.04, Holm: 0.06 and 0.06
    borderline.loc[1, "p"] = 0.04
    borderline.loc[1, "verdict"] = "reproduced"
    out = verdicts.adjust(borderline)
    assert list(out.loc[:1, "verdict"]) == ["inconclusive", "inconclusive"]


def test_primary_checks_alone_decide_the_finding(f4):
    seeds, spec, _ = f4
    spec["checks"] = [chk("vqa", primary=True), chk("avg"), chk("params")]
    v = verdicts.adjust(verdicts.verdicts_table(seeds, spec))
    assert list(v["primary"]) == [True, False, False] and list(v["claim"]) == ["quality", "quality", "efficiency"]
    f = verdicts.findings_table(v).iloc[0]
    assert (f["n_primary"], f["verdict"]) == (1, "inconclusive")  # the reproduced secondary avg does not count
    spec["checks"] = [chk("vqa"), chk("avg"), chk("params")]  # none marked: every check but the fact counts
    v = verdicts.adjust(verdicts.verdicts_table(seeds, spec))
    assert list(v["primary"]) == [True, True, False]
    assert verdicts.findings_table(v).iloc[0]["verdict"] == "partly reproduced"


def test_a_task_at_blind_level_is_untestable_here(f4, tmp_path):
    seeds, spec, _ = f4
    pd.DataFrame({"split": [0, 0], "task": ["vqa", "caption"], "margin": [0.5, 9.0], "margin_in_sd": [0.4, 6.0]}) \
        .to_csv(tmp_path / "controls.csv", index=False)
    blind = calibration.blind_level_tasks(tmp_path / "controls.csv")
    assert set(blind) == {"vqa"} and "blind level" in blind["vqa"]
    spec["checks"] = [chk("vqa", primary=True), chk("avg", primary=True)]
    v = verdicts.adjust(verdicts.verdicts_table(seeds, spec, untestable=blind))
    assert list(v["verdict"]) == ["untestable here", "reproduced"] and "0.4 seed SDs" in v.loc[0, "note"]
    assert verdicts.finding_verdict(["untestable here"]) == "untestable here"
    assert calibration.blind_level_tasks(tmp_path / "none.csv") == {}


def test_the_blind_contrast_itself_is_never_set_aside(tmp_path):
    """F0 contrasts image.blind: on a task the calibration found at blind level it is that control, measured again,
    so it keeps its verdict (here inconclusive, the pairs' textvqa equal) instead of "untestable here"."""
    runs = tmp_path / "runs"
    for blind, vqa in (("false", [50, 52, 51]), ("true", [40, 41, 40])):
        for s in range(3):
            make_run(runs, "f0", f"image.blind={blind}", s, tasks={"vqa": vqa[s], "textvqa": 3.0 + s, "okvqa": 30.0,
                                                                     "caption": 30.0})
    spec = {"name": "f0", "finding": "F0", "seeds": [0, 1, 2], "grid": {"image.blind": "false,true"},
            "checks": [{"better": {"image.blind": "false"}, "worse": {"image.blind": "true"}, "metric": m,
                        "primary": True} for m in ("vqa", "textvqa")]}
    seeds = aggregate.seeds_table(runs, "f0", spec)
    v = verdicts.verdicts_table(seeds, spec, untestable={"textvqa": "untestable here: at blind level"})
    assert list(v["verdict"]) == ["reproduced", "inconclusive"]
