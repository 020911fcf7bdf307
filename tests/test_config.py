"""Every config-group option composes and validates; mistakes give one clear line and a non-zero exit."""
import os
import subprocess
import sys

import pytest

from vlmlab.config import Config, ConfigError, check_command_line, compose, repo_root
from vlmlab.world.config import WORLD_V2

CONF = repo_root() / "conf"
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name != "hydra")
TINY = ["vision=tiny", "llm=tiny"]


def test_every_group_of_the_issue_exists():
    for g in ["vision", "llm", "connector", "fusion", "trainable", "image", "data", "optim", "eval", "logger",
              "debug"]:
        assert (CONF / g).is_dir() and list((CONF / g).glob("*.yaml")), g


@pytest.mark.parametrize("group,option", [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))])
def test_every_option_composes_and_validates(group, option):
    cfg = compose([f"{group}={option}"])
    assert isinstance(cfg, Config)


def test_every_config_file_starts_with_a_usage_line():
    for f in CONF.rglob("*.yaml"):
        first = [ln for ln in f.read_text().splitlines() if not ln.startswith("# @package")][0]
        assert first.startswith("#"), f


@pytest.mark.parametrize("override,words", [
    ("optim.lrr=0.1", ["optim.lrr", "lr", "max_steps"]),
    ("optim.max_steps=abc", ["optim.max_steps", "abc"]),
    ("fusion.kind=sideways", ["fusion.kind", "autoregressive", "cross_attention"]),
    ("trainable.llm=half", ["trainable.llm", "frozen", "lora", "full"]),
    ("connector=nonexistent", ["connector", "perceiver", "mlp"]),
])
def test_mistakes_name_the_key_and_what_is_allowed(override, words):
    with pytest.raises(ConfigError) as e:
        check_command_line([override])
    msg = str(e.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, (w, msg)


def test_sweep_values_are_each_checked():
    check_command_line(["-m", "connector=mlp,perceiver", "seed=0,1"])
    with pytest.raises(ConfigError, match="optim.max_steps"):
        check_command_line(["-m", "optim.max_steps=2,oops"])


def test_training_on_the_test_split_is_refused_before_any_run():
    with pytest.raises(ConfigError, match="eval.split"):  # the command line's one line for it: the CLI test below
        check_command_line([*TINY, "eval.split=train"])


@pytest.mark.parametrize("override", ["optim.lrr=0.1"])
def test_cli_bad_config_exits_nonzero_with_one_line_and_no_run_folder(tmp_path, override):
    env = dict(os.environ, VLMLAB_CACHE=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-m", "vlmlab.train", *TINY, override, "name=badcfg"], cwd=tmp_path,
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode != 0
    lines = [ln for ln in out.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("config error:"), out.stderr
    assert override.split("=")[0] in lines[0]
    assert not (tmp_path / "runs").exists() and not (repo_root() / "runs" / "badcfg").exists()


def test_the_large_scale_maps_zoo_backbones_and_files_runs_apart():
    large = compose(["scale=large"])
    assert (large.vision.name_or_path, large.llm.name_or_path) == ("zoo:large/vision_strong", "zoo:large/lm_strong")
    assert large.runs_root == "runs/large"
    # the large scale stays in world v2 (world/config.py SCALE_VERSIONS): v2's canvases x 4/3, its script, no grain
    knobs = ("long_side_min", "long_side_max", "script", "word_height", "grain")
    assert [getattr(large.data, k) for k in knobs] == [213, 427, "grey2x2", 0.024, 0.0]
    v2 = {k: WORLD_V2[k] * (4 / 3 if k.startswith("long_side") else 1) for k in knobs}  # world v2's, canvases x 4/3
    assert [getattr(large.data, k) for k in knobs] == [round(v) if k.startswith("long") else v for k, v in v2.items()]
    assert compose(["scale=large", "vision=toy_weak"]).vision.name_or_path == "zoo:large/vision_weak"  # F1's swap
    assert compose(["scale=large", *TINY]).vision.name_or_path.endswith("tiny_siglip")  # not a zoo backbone: kept
    assert compose([]).vision.name_or_path == "zoo:vision_strong"
    with pytest.raises(ConfigError, match="scale"):
        compose(["scale=huge"])
