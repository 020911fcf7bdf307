"""Scale files (ablations/large/): a base file's question at another world scale, with its own pre-registered seeds.
Loading, inheritance, cuts and what the runner does with them; nothing is trained here."""
import pytest

from vlmlab import ablate
from vlmlab.config import ConfigError, check_command_line, compose, repo_root
from vlmlab.contract.ablation import available, first_looks, load_ablation
from vlmlab.report.calibration import calibration_for
from vlmlab.world.config import GENERATOR_VERSION, SCALE_VERSIONS, generator_version, world_id

LARGE = repo_root() / "ablations" / "large"
SCALE_FILES = first_looks(LARGE)  # the scale files proper; a follow-up at the scale is a later look of one
FOLLOW_UPS = sorted(set(available(LARGE)) - set(SCALE_FILES))


def test_the_scale_transfer_covers_the_findings_issue_18_names():
    assert {"f3_unfreezing", "f4_pooling", "f6_splitting", "f7_pixel_shuffle"} <= set(SCALE_FILES)


@pytest.mark.parametrize("name", SCALE_FILES)
def test_scale_files_ask_their_base_files_question_at_the_large_scale(name):
    abl, base = load_ablation(LARGE / f"{name}.yaml"), ablate.load(name)
    assert name in first_looks(ablate.ABLATIONS) and abl.scale_of == name and abl.scale == "large"
    for key in ("finding", "question", "paper", "metrics", "decompose", "unimodal"):
        assert getattr(abl, key) == getattr(base, key), key
    assert abl.fixed == [*base.fixed, "scale=large"] and all(c in base.checks for c in abl.checks)
    assert set(abl.grid) == set(base.grid) and all(set(abl.grid[k].split(",")) <= set(base.grid[k].split(","))
                                                   for k in abl.grid)
    assert abl.grid == base.grid or abl.cut, "a scale file that cuts its base's grid says why in cut:"
    assert any(c.primary for c in abl.checks)
    assert abl.plan and (LARGE / f"{name}.yaml").read_text().startswith("#")
    check_command_line(["-m", *abl.overrides()])
    cell = [o if "," not in o else o.split(",")[0] for o in abl.overrides()]
    cfg = compose(cell)
    assert cfg.scale == "large" and cfg.runs_root == "runs/large" and "zoo:large/" in cfg.vision.name_or_path


def _base(tmp_path, extra: str = ""):
    (tmp_path / "large").mkdir()
    (tmp_path / "f4x.yaml").write_text(
        "# t\nfinding: F4\nquestion: q\npaper: {claim: c, numbers: n}\nseeds: [0, 1, 2]\nmetrics: [avg]\n"
        "grid: {connector: 'mlp,perceiver,linear'}\n"
        "checks:\n  - {better: {connector: perceiver}, worse: {connector: mlp}, metric: avg, primary: true}\n"
        "  - {better: {connector: perceiver}, worse: {connector: linear}, metric: avg}\n" + extra)


def _scale(tmp_path, text: str, name: str = "f4x"):
    path = tmp_path / "large" / f"{name}.yaml"
    path.write_text("# t\n" + text)
    return load_ablation(path)


def test_a_scale_file_inherits_and_may_cut_cells_with_the_checks_the_cut_keeps(tmp_path):
    _base(tmp_path)
    abl = _scale(tmp_path, "scale_of: f4x\nscale: large\nseeds: [5]\nplan: p\n")
    assert abl.grid == {"connector": "mlp,perceiver,linear"} and len(abl.checks) == 2 and abl.seeds == [5]
    assert abl.question == "q" and abl.plan == "p" and abl.fixed == ["scale=large"]
    cut = _scale(tmp_path, "scale_of: f4x\nscale: large\nseeds: [5]\ngrid: {connector: 'mlp,perceiver'}\nchecks:\n"
                           "  - {better: {connector: perceiver}, worse: {connector: mlp}, metric: avg, primary: true}\n")
    assert cut.cells() == ["connector=mlp", "connector=perceiver"] and len(cut.checks) == 1


@pytest.mark.parametrize("text, why", [
    ("scale_of: f4x\nscale: large\nseeds: [5]\nquestion: other\n", "inherits question"),
    ("scale_of: f4x\nscale: base\nseeds: [5]\n", "scale='base' is not allowed"),
    ("scale_of: f4x\nseeds: [5]\n", "names both"),
    ("scale_of: f4x\nscale: large\nseeds: [5]\ngrid: {connector: 'mlp,perceiver,resampler'}\n", "not a cut"),
    ("scale_of: f4x\nscale: large\nseeds: [5]\ngrid: {connector: 'mlp,perceiver'}\n", "cut at this scale"),
    ("scale_of: f4x\nscale: large\nseeds: [5]\nchecks:\n  - {better: {connector: mlp}, worse: {connector: linear}}\n",
     "subset"),
])
def test_a_scale_file_refuses_what_would_let_the_scales_drift_apart(tmp_path, text, why):
    _base(tmp_path)
    with pytest.raises(ConfigError, match=why):
        _scale(tmp_path, text)


def test_a_scale_file_keeps_its_base_files_name_and_needs_the_base_file(tmp_path):
    _base(tmp_path)
    with pytest.raises(ConfigError, match="named as its base"):
        _scale(tmp_path, "scale_of: f4x\nscale: large\nseeds: [5]\n", name="other")
    with pytest.raises(ConfigError, match="no such ablation file"):
        _scale(tmp_path, "scale_of: nope\nscale: large\nseeds: [5]\n", name="nope")


def test_a_follow_up_at_a_scale_is_a_later_look_of_the_scale_file_with_new_seeds(tmp_path):
    _base(tmp_path)
    _scale(tmp_path, "scale_of: f4x\nscale: large\nseeds: [2, 3]\nplan: p\n")
    more = _scale(tmp_path, "scale_of: f4x\nscale: large\nfollow_up_of: f4x\nseeds: [4, 5]\nplan: q\n",
                  name="f4x_decide")
    assert more.name == "f4x_decide" and more.follow_up_of == "f4x" and more.scale == "large"
    assert more.fixed == ["scale=large"] and len(more.checks) == 2 and more.plan == "q"
    assert more.looks == [("f4x", [2, 3]), ("f4x_decide", [4, 5])]
    assert first_looks(tmp_path / "large") == ["f4x"]  # make scale-transfer (ablate all) does not rerun it
    with pytest.raises(ConfigError, match="already used"):
        _scale(tmp_path, "scale_of: f4x\nscale: large\nfollow_up_of: f4x\nseeds: [3, 4]\n", name="f4x_again")


@pytest.mark.parametrize("name", FOLLOW_UPS)
def test_the_committed_follow_ups_at_the_large_scale_are_later_looks_of_its_scale_files(name):
    abl = load_ablation(LARGE / f"{name}.yaml")
    parent = load_ablation(LARGE / f"{abl.follow_up_of}.yaml")
    assert abl.follow_up_of in SCALE_FILES and abl.scale == "large" and abl.checks == parent.checks
    assert abl.plan and not set(abl.seeds) & set(parent.seeds) and abl.fixed == parent.fixed


def test_a_check_naming_a_value_the_grid_does_not_run_is_refused(tmp_path):
    (tmp_path / "a.yaml").write_text(
        "# t\nfinding: F4\nquestion: q\npaper: {claim: c, numbers: n}\nseeds: [0]\ngrid: {connector: 'mlp,perceiver'}\n"
        "checks:\n  - {better: {connector: perceiver}, worse: {connector: linear}, metric: avg}\n")
    with pytest.raises(ConfigError, match="connector=linear, which the grid does not run"):
        load_ablation(tmp_path / "a.yaml")


def test_the_runner_files_and_reports_a_scale_apart():
    assert ablate.runs_root_of([], "large") == "runs/large"
    assert ablate.runs_root_of(["runs_root=runs/large/pilot"], "large") == "runs/large/pilot"
    assert ablate.report_folder("runs") == "results"
    assert ablate.report_folder("runs/large", "large") == "results/large"
    assert ablate.report_folder("runs/large/pilot", "large") == "runs/large/pilot/results"


def test_the_large_scale_keeps_its_frozen_features_and_a_store_size_names_no_cell():
    """The large tower's views are 2.7x base's: its store holds a findings run's (24 GB, not base's 4), and the
    store's size is a speed knob, so overriding it neither renames a cell nor lands in the large scale's base run."""
    from vlmlab.contract.run import cell_name

    assert compose(["scale=large"]).vision.feature_store_mb == 24576
    assert compose([]).vision.feature_store_mb == 4096
    assert cell_name(["connector=mlp", "vision.feature_store_mb=0"]) == cell_name(["connector=mlp"]) == "connector=mlp"
    assert (compose(["scale=large"]).vision.view_store_mb, compose([]).vision.view_store_mb) == (16384, 8192)
    assert cell_name(["connector=mlp", "vision.view_store_mb=0"]) == "connector=mlp"


def test_a_scale_file_runs_at_its_own_scale_only(capsys):
    assert ablate.main([str(LARGE / "f4_pooling.yaml"), "scale=base"]) == 2
    assert "runs at its own `scale:`" in capsys.readouterr().err


def test_a_large_run_is_judged_by_the_large_calibration(tmp_path):
    assert world_id("base") == GENERATOR_VERSION and world_id("large") == f"{generator_version('large')}@large"
    assert generator_version("large") == SCALE_VERSIONS["large"] == "world-v2-rc3" != GENERATOR_VERSION
    for folder, world in (("calibration_v9", world_id("base")), ("calibration_large", world_id("large"))):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "controls.csv").write_text(f"task,world\nvqa,{world}\n")
    assert calibration_for(world_id("large"), tmp_path).parent.name == "calibration_large"
    assert calibration_for(world_id("base"), tmp_path).parent.name == "calibration_v9"
