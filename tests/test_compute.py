"""Deterministic compute in every summary: FLOPs per training sample and per generated token, activation memory.
Identical cells give identical figures (an A/A control with zero noise), seeds do not change them, and they
order the axes as the architectures say (more visual tokens cost more; splitting costs more)."""
import torch

from vlmlab import compute
from vlmlab.config import compose
from vlmlab.model.build import build_vlm
from vlmlab.runner import build_data

TINY = ["vision=tiny", "llm=tiny", "debug=smoke"]


def figures(*overrides, seed=0):
    cfg = compose(TINY + list(overrides))
    torch.manual_seed(seed)
    vlm, tok = build_vlm(cfg, seed=seed)
    return compute.profile(vlm, build_data(cfg, vlm, tok).train_set, cfg.optim.batch_size, torch.device("cpu"))


def test_identical_cells_and_seeds_give_identical_compute():
    base = figures()
    assert base == figures() == figures(seed=3)
    assert all(v > 0 for v in base.values())


def test_compute_follows_the_architecture():
    perceiver, mlp, linear = (figures(f"connector={c}") for c in ("perceiver", "mlp", "linear"))
    # decoding reads the prompt's visual tokens from the KV cache: 16 per view without pooling, 4 with it
    assert mlp["flops_per_generated_token"] == linear["flops_per_generated_token"] > perceiver["flops_per_generated_token"]
    assert mlp["flops_per_train_sample"] > linear["flops_per_train_sample"]  # same tokens, a bigger connector
    assert mlp["flops_per_train_sample"] > perceiver["flops_per_train_sample"]
    assert mlp["activation_mb_per_sample"] > linear["activation_mb_per_sample"]
    split = figures("image=split", "image.split_train_fraction=1.0")  # 5 views per picture
    assert split["flops_per_train_sample"] > 2 * perceiver["flops_per_train_sample"]
    xattn = figures("fusion=cross_attention")  # visual tokens stay out of the LM's sequence; blocks read them
    assert xattn["flops_per_generated_token"] != perceiver["flops_per_generated_token"]
