"""No behaviour change across restructurings: tiny runs reproduce the loss histories, scores, predictions and
prompt token ids recorded before the experiment-contract refactor (tests/assets/make_golden.py, at 597408c).

Losses are compared to 1e-6 relative: bit-identical on the machine that recorded them, with room for another
CPU's float kernels (a different SIMD width reorders sums); token ids, predictions and counts exactly."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

ASSETS = Path(__file__).parent / "assets"
GOLDEN = json.loads((ASSETS / "golden_runs.json").read_text())


def _recorder():
    spec = importlib.util.spec_from_file_location("make_golden", ASSETS / "make_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", list(GOLDEN))
def test_tiny_run_matches_the_recorded_one(name, tmp_path):
    torch.set_num_threads(1)
    recorder = _recorder()
    assert recorder.BASE + recorder.CONFIGS[name] == GOLDEN[name]["overrides"]
    now = recorder.record(name, recorder.CONFIGS[name], tmp_path)
    want = GOLDEN[name]
    assert now["loss_history"] == pytest.approx(want["loss_history"], rel=1e-6)
    assert now["token_ids"] == want["token_ids"]
    assert now["predictions"] == want["predictions"]
    assert now["params"] == want["params"] and now["visual_tokens_per_image"] == want["visual_tokens_per_image"]
    assert now["metrics"] == pytest.approx(want["metrics"], abs=1e-6)
