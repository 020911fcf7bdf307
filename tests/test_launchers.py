"""Cluster and local-parallel launchers run a 2-cell smoke sweep into the usual run folders."""
import subprocess
import sys

import pytest

from vlmlab.config import repo_root


@pytest.mark.parametrize("launcher", [
    pytest.param("submitit_local", marks=pytest.mark.slow),  # the cluster launcher's local twin: make test-slow (~25 s)
    "local"])  # the default of every CPU sweep (ablate.launch_defaults)
def test_two_cell_smoke_sweep(tmp_path, launcher):
    cmd = [sys.executable, "-m", "vlmlab.train", "-m", f"hydra/launcher={launcher}", "name=launch", "debug=smoke",
           f"runs_root={tmp_path}", "connector=mlp,perceiver", "threads=1"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=repo_root())
    assert out.returncode == 0, out.stderr[-3000:]
    cells = sorted(p.parent.parent.name for p in (tmp_path / "launch").rglob("summary.json"))
    assert cells == ["connector=mlp", "connector=perceiver"]


def test_slurm_launcher_config_composes():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(repo_root() / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
                      return_hydra_config=True)
    assert cfg.hydra.launcher.partition == "gpu" and cfg.hydra.launcher.max_num_timeout == 3
    assert "SlurmLauncher" in cfg.hydra.launcher._target_
