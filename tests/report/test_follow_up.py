"""Follow-ups: a later look at a question is its own pre-registered file; the report merges its seeds into the
first file's section and discloses how many looks were taken and what they cost in false positives."""
import pytest
from report_fakes import make_run

from vlmlab.contract.ablation import first_look, first_looks, load_all, load_ablation
from vlmlab.contract.errors import ConfigError
from vlmlab.report import stats
from vlmlab.report.render import build

FIRST = """# first look
finding: F4
question: Does the perceiver beat the MLP?
paper: {claim: "perceiver better", numbers: "-"}
grid: {connector: "mlp,perceiver"}
seeds: [0, 1, 2]
metrics: [avg]
checks:
  - {better: {connector: perceiver}, worse: {connector: mlp}, metric: avg, primary: true}
"""
FOLLOW = """# second look
finding: F4
question: Does the perceiver beat the MLP?
follow_up_of: f4_first
plan: "the first look's power figure: 6 paired seeds"
grid: {connector: "mlp,perceiver"}
seeds: [3, 4, 5]
"""


@pytest.fixture
def folder(tmp_path):
    abl = tmp_path / "ablations"
    abl.mkdir()
    (abl / "f4_first.yaml").write_text(FIRST)
    (abl / "f4_first_more.yaml").write_text(FOLLOW)
    return abl


def test_a_follow_up_inherits_the_checks_and_needs_new_seeds(folder):
    spec = load_ablation(folder / "f4_first_more.yaml")
    assert spec.follow_up_of == "f4_first" and len(spec.checks) == 1 and spec.checks[0].primary
    assert spec.looks == [("f4_first", [0, 1, 2]), ("f4_first_more", [3, 4, 5])]
    assert first_looks(folder) == ["f4_first"]  # `make ablation NAME=all` does not rerun later looks
    specs = load_all(folder)
    assert first_look(specs["f4_first_more"], specs) == "f4_first"
    (folder / "bad.yaml").write_text(FOLLOW.replace("[3, 4, 5]", "[2, 3]"))
    with pytest.raises(ConfigError, match=r"seeds \[2\] were already used"):
        load_ablation(folder / "bad.yaml")
    (folder / "bad.yaml").write_text(FOLLOW.replace('"mlp,perceiver"', '"mlp,linear,perceiver"'))
    with pytest.raises(ConfigError, match="keeps the grid"):
        load_ablation(folder / "bad.yaml")
    (folder / "bad.yaml").write_text(FOLLOW.replace("f4_first\n", "f4_nothing\n"))
    with pytest.raises(ConfigError, match="no such ablation file"):
        load_ablation(folder / "bad.yaml")


def test_the_report_merges_every_look_and_discloses_them(folder, tmp_path):
    runs = tmp_path / "runs"
    gains = [2.0, -1.0, 1.5, 3.0, 2.5, 1.0]  # seeds 0-2 alone: inconclusive; all six: reproduced
    for seed, g in enumerate(gains):
        name = "f4_first" if seed < 3 else "f4_first_more"
        make_run(runs, name, "connector=mlp", seed, avg=50.0)
        make_run(runs, name, "connector=perceiver", seed, avg=50.0 + g)
    out = tmp_path / "results"
    res = build(runs, folder, out)
    v = res["findings"].set_index("finding").loc["F4"]
    assert v["verdict"] == "reproduced"
    text = res["report"].read_text()
    assert "Looked at 2 times" in text and "look 1: f4_first, seeds 0-2" in text
    assert "look 2: f4_first_more, seeds 3-5 (the first look's power figure: 6 paired seeds)" in text
    rate = stats.looks_false_positive([3, 3])
    assert f"{100 * rate:.1f}%" in text and 0.035 < rate < 0.06
    assert "### f4_first_more" not in text  # no section of its own
    assert (out / "runs" / "f4_first_more").is_dir()  # its runs are kept with the results


def test_one_look_is_half_of_alpha_and_more_looks_cost_more():
    one, two = stats.looks_false_positive([5]), stats.looks_false_positive([3, 14])
    assert one == pytest.approx(0.025, abs=0.004)
    assert 0.04 < two < 0.06  # the 2.5% -> ~4.8% for a look at 3 seeds, then at 17
