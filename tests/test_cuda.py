"""The GPU path (bf16 autocast, SDPA, pinned-memory loading): runs only where CUDA is available."""
import pytest
import torch

from vlmlab.config import compose
from vlmlab.runner import run

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
@pytest.mark.parametrize("fusion", ["autoregressive", "cross_attention"])
def test_smoke_run_on_cuda(tmp_path, fusion):
    cfg = compose(["vision=tiny", "llm=tiny", "debug=smoke", "device=cuda", f"fusion={fusion}", "trainable=lora"])
    cfg.run_dir = str(tmp_path / fusion)
    summary = run(cfg)
    assert summary["status"] == "finished" and summary["device"].startswith("cuda")
    assert summary["perf"]["peak_memory_mb"] > 0
