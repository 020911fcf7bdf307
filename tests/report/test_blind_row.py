"""Every cells table carries the blind control beside the task scores, from the world's calibration."""
import pandas as pd
from report_fakes import make_run

from vlmlab.paths import repo_root
from vlmlab.report.render import build

ABLATION = """# test
finding: F4
question: q?
paper: {claim: c, numbers: n}
grid: {connector: "mlp,perceiver"}
seeds: [0, 1]
checks:
  - {better: {connector: perceiver}, worse: {connector: mlp}, metric: avg, primary: true}
"""


def test_cells_table_has_the_blind_control_row(tmp_path):
    abl, runs, out = tmp_path / "ablations", tmp_path / "runs", tmp_path / "results"
    abl.mkdir()
    (abl / "f4_x.yaml").write_text(ABLATION)
    for seed in (0, 1):
        for conn in ("mlp", "perceiver"):
            make_run(runs, "f4_x", f"connector={conn}", seed, avg=40.0)
    (out / "calibration").mkdir(parents=True)
    rows = [{"split": s, "task": t, "trained": 40.0, "trained_sd": 1.0, "blind": b + s, "blind_sd": 0.5, "prior": 1.0,
             "margin": 1.0, "margin_in_sd": 1.0, "seeds": "3/3"}
            for s in (0, 2) for t, b in (("vqa", 30.0), ("textvqa", 2.0), ("okvqa", 10.0), ("caption", 20.0))]
    pd.DataFrame(rows).to_csv(out / "calibration" / "controls.csv", index=False)
    md = build(runs, abl, out)["report"].read_text()
    row = next(line for line in md.splitlines() if line.startswith("| blind control"))
    assert "| 30.00 | 2.00 | 10.00 | 20.00 | 15.50 |" in row  # without splitting; avg = the tasks' mean


def test_runs_are_read_against_the_calibration_of_their_own_world(tmp_path):
    """v1's calibration (no world column) and a later world's sit side by side under results/: each ablation's
    blind row and untestable tasks come from the calibration of the world its runs recorded (world_version)."""
    import json

    from vlmlab.report import calibration

    abl, runs, out = tmp_path / "ablations", tmp_path / "runs", tmp_path / "results"
    abl.mkdir()
    (abl / "f4_x.yaml").write_text(ABLATION)
    for seed in (0, 1):
        for conn in ("mlp", "perceiver"):
            d = make_run(runs, "f4_x", f"connector={conn}", seed, avg=40.0)
            summary = json.loads((d / "summary.json").read_text())
            (d / "summary.json").write_text(json.dumps({**summary, "world_version": "world-v9"}))
    for folder, world, blind, margin in (("calibration", None, 30.0, 9.0), ("calibration_v9", "world-v9", 33.0, 0.5)):
        (out / folder).mkdir(parents=True)
        rows = [{"split": 0, "task": t, "trained": 40.0, "trained_sd": 1.0, "blind": blind, "blind_sd": 0.5,
                 "prior": 1.0, "margin": margin, "margin_in_sd": margin, "seeds": "3/3",
                 **({"world": world} if world else {})} for t in ("vqa", "textvqa", "okvqa", "caption")]
        pd.DataFrame(rows).to_csv(out / folder / "controls.csv", index=False)
    assert calibration.calibration_for(None, out) == out / "calibration" / "controls.csv"  # v1: no world column
    assert calibration.calibration_for("world-v9", out) == out / "calibration_v9" / "controls.csv"
    assert calibration.calibration_for("world-v8", out) is None
    md = build(runs, abl, out)["report"].read_text()
    row = next(line for line in md.splitlines() if line.startswith("| blind control"))
    assert "| 33.00 | 33.00 | 33.00 | 33.00 | 33.00 |" in row and "results/calibration_v9" in md
    verdicts = pd.read_csv(out / "f4_x" / "verdicts.csv")
    assert list(verdicts["verdict"]) == ["untestable here"]  # every task at blind level in v9's calibration


def test_a_worlds_follow_up_does_not_shadow_its_calibration(tmp_path):
    """calibration_margins_v3 (split 0 only) sorts before calibration_v3 (splits 0 and 2), both of world v3: the one
    that measured more image handlings judges the world's runs, as the committed calibrations are named."""
    from vlmlab.report import calibration

    for folder, splits in (("calibration_margins_v9", (0,)), ("calibration_split_share_v9", (2,)),
                           ("calibration_v9", (0, 2))):
        (tmp_path / folder).mkdir()
        pd.DataFrame([{"split": s, "task": "vqa", "world": "world-v9"} for s in splits]).to_csv(
            tmp_path / folder / "controls.csv", index=False)
    assert calibration.calibration_for("world-v9", tmp_path) == tmp_path / "calibration_v9" / "controls.csv"
    assert calibration.calibration_for("world-v2-rc3", repo_root() / "results").parent.name == "calibration_v2"
    assert calibration.calibration_for("world-v3-rc1", repo_root() / "results").parent.name == "calibration_v3"


def test_a_calibration_at_another_step_budget_judges_only_runs_of_that_budget(tmp_path):
    """calibration_budget_1200 (the recipe at 1,200 steps, splits 0 and 2) sorts before calibration_v9 (600 steps,
    the same splits), both of one world: runs of 600 steps are judged by the 600-step controls and runs of 1,200 by
    the 1,200-step ones (their blind controls are not interchangeable); a steps-less controls.csv ranks after a
    match; the report passes the runs' own budget."""
    from vlmlab.calibrate_curve import RECIPE_STEPS
    from vlmlab.config import compose
    from vlmlab.report import calibration

    assert RECIPE_STEPS == compose([]).optim.max_steps  # the default budget is the recipe's
    for folder, steps in (("calibration_budget_1200", 1200), ("calibration_v9", 600), ("calibration_old_v9", None)):
        (tmp_path / folder).mkdir()
        pd.DataFrame([{"split": s, "task": "vqa", "world": "world-v9", **({"steps": steps} if steps else {})}
                      for s in (0, 2)]).to_csv(tmp_path / folder / "controls.csv", index=False)
    pick = lambda steps: calibration.calibration_for("world-v9", tmp_path, steps).parent.name  # noqa: E731
    assert pick(None) == pick(600) == "calibration_v9" and pick(1200) == "calibration_budget_1200"
    assert pick(300) == "calibration_old_v9"  # no calibration at 300: the one that does not say comes first
    seeds = pd.DataFrame({"status": ["finished"] * 3 + ["running"], "max_steps": [1200, 1200, 600, 300]})
    assert calibration.runs_steps(seeds) == 1200 and calibration.runs_steps(seeds.iloc[3:]) is None
