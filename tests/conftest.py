"""Test settings: offline, no wandb, a throwaway cache, one torch thread per process; tiny fixtures."""
import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["WANDB_MODE"] = "disabled"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ASSETS = Path(__file__).parent / "assets"

if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs 2 workers on 2 cores: one thread each
    import torch

    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the subprocesses the tests start
    torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _cache(tmp_path_factory):
    """A session-wide VLMLAB_CACHE so world datasets are generated once per test session, never in ~/.cache."""
    if "VLMLAB_TEST_CACHE" in os.environ:
        os.environ["VLMLAB_CACHE"] = os.environ["VLMLAB_TEST_CACHE"]
    else:
        os.environ["VLMLAB_CACHE"] = str(tmp_path_factory.mktemp("vlmlab_cache"))
    yield


@pytest.fixture
def assets() -> Path:
    return ASSETS


def _load_script(path: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def load_script():
    """Imports a script that is not a package module (calibration/experiments/*.py, tests/assets/make_golden.py) by
    its path: load_script(path) -> the module."""
    return _load_script
