"""Bad input gets one line naming the culprit, never a traceback, and no summary.json.

Through the command line for the mistakes that only show at run time (a missing backbone, an image size the
encoder cannot take); through the config API for the rest of the class (every numeric knob has a range)."""
import subprocess
import sys

import pytest

from vlmlab import ablate
from vlmlab.config import ConfigError, check_command_line, compose, repo_root

TINY = ["vision=tiny", "llm=tiny", "debug=smoke"]


def train_cli(tmp_path, *args):
    out = subprocess.run([sys.executable, "-m", "vlmlab.train", *TINY, f"hydra.run.dir={tmp_path}/run", *args],
                         capture_output=True, text=True, timeout=300, cwd=repo_root())
    return out, tmp_path / "run"


@pytest.mark.parametrize("args,culprit", [
    (["vision.name_or_path=/no/such/encoder"], "/no/such/encoder: no such directory"),
    (["llm.name_or_path=vlmlab-test/no-such-lm"], "vlmlab-test/no-such-lm"),
    (["image.size=7"], "image.size=7"),
])
def test_cli_mistakes_exit_with_one_line_and_no_summary(tmp_path, args, culprit):
    out, run_dir = train_cli(tmp_path, *args)
    assert out.returncode != 0
    lines = [ln for ln in out.stderr.strip().splitlines() if ln.strip()]
    assert "Traceback" not in out.stderr and len(lines) == 1 and culprit in lines[0], out.stderr[-2000:]
    assert not (run_dir / "summary.json").exists() and not run_dir.exists()


@pytest.mark.parametrize("args,culprit", [
    (["data.tasks=[vqa,nope]"], "data.tasks: unknown task 'nope'"),
    (["plugins=[/no/such/plugin.py]"], "plugins: cannot load '/no/such/plugin.py'"),
])
def test_config_mistakes_are_one_line_naming_the_culprit(args, culprit):
    # the command line turns a ConfigError into its one line (test_config.py's CLI case, an unknown key); these
    # mistakes are ConfigErrors of the same check, tested here without a process per case
    with pytest.raises(ConfigError) as e:
        check_command_line([*TINY, *args])
    assert "\n" not in str(e.value) and culprit in str(e.value)


@pytest.mark.parametrize("override,allowed", [
    ("connector.n_latents=0", "an integer >= 1"), ("connector.depth=-2", "an integer >= 1"),
    ("eval.max_samples=-5", "an integer >= 0"), ("optim.lr=0", "a number > 0"), ("optim.lr=-1e-3", "> 0"),
    ("optim.betas=[0.9,1.5]", "< 1"), ("optim.warmup_steps=-1", ">= 0"), ("optim.min_lr_ratio=2", "<= 1"),
    ("optim.grad_clip=-1", ">= 0"), ("optim.spike_window=0", ">= 1"), ("image.split=-1", ">= 0"),
    ("image.split_train_fraction=1.5", "<= 1"), ("image.size=0", ">= 1"), ("image.std=[0.5,0,0.5]", "> 0"),
    ("vision.mean=[0.5,0.5]", "a list of 3"), ("vision.feature_store_mb=-1", ">= 0"), ("threads=-1", ">= 0"),
    ("workers=-2", ">= 0"), ("checkpoint_every=-1", ">= 0"), ("seed=-1", ">= 0"),
    ("fusion.cross_attention.every=0", ">= 1"), ("trainable.lora.r=0", ">= 1"), ("trainable.lora.dropout=1", "< 1"),
    ("data.train_size=0", ">= 1"), ("data.word_prob=2", "<= 1"), ("data.max_objects=9", "<= 5"),
    ("logger.every=0", ">= 1"), ("eval.batch_size=0", ">= 1"), ("eval.shots=-1", ">= 0"),
    ("connector.kind=nope", "linear, mlp, perceiver"), ("connector.mlp_act=tanh", "swiglu, gelu"),
    ("trainable.llm=half", "frozen, lora, full"), ("llm.attn_implementation=magic", "eager, sdpa"),
    ("image.mode=round", "square, preserve"), ("name=a/b", "without '/'"), ("data.tasks=[]", "registered task"),
])
def test_every_knob_has_a_range(override, allowed):
    key = override.split("=")[0]
    with pytest.raises(ConfigError) as e:
        compose([override])
    assert key in str(e.value) and allowed in str(e.value) and "\n" not in str(e.value)


BAD_FILES = {
    "syntax.yaml": ("finding: F9\nquestion: [unclosed\n", "not valid YAML"),
    "metric.yaml": ("finding: F9\nquestion: q\nseeds: [0]\ngrid: {connector: 'mlp,perceiver'}\n"
                    "checks: [{better: {connector: mlp}, worse: {connector: perceiver}, metric: acuracy}]\n",
                    "unknown metric 'acuracy'"),
    "key.yaml": ("finding: F9\nquestion: q\nseeds: [0]\ngrid: {connector: 'mlp,perceiver'}\n"
                 "checks: [{better: {fusion: x}, worse: {connector: perceiver}, metric: avg}]\n", "not a key of the grid"),
    "seeds.yaml": ("finding: F9\nquestion: q\nseeds: [-1]\ngrid: {}\nchecks: []\n", "seeds=[-1]"),
    "unknown.yaml": ("finding: F9\nquestion: q\nseeds: [0]\nsweep: {}\n", "unknown key(s) ['sweep']"),
    "nochecks.yaml": ("finding: F9\nquestion: q\nseeds: [0]\ngrid: {connector: 'mlp,perceiver'}\n", "needs at least one"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_a_bad_ablation_file_is_named_in_one_line(tmp_path, capsys, name):
    text, culprit = BAD_FILES[name]
    (tmp_path / name).write_text(text)
    assert ablate.main([str(tmp_path / name)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and culprit in err and name in err, err
    assert ablate.main(["no_such_ablation"]) == 2 and "available: f0_blind, f1_backbones" in capsys.readouterr().err
