"""Optimizer, schedule and the divergence test of the training loop."""
from __future__ import annotations

import math

import torch
from transformers import get_cosine_with_min_lr_schedule_with_warmup


def make_optimizer(model: torch.nn.Module, cfg) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters; weight decay on matrices only."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    from torch.distributed.tensor import DTensor

    fused = all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point and not isinstance(p, DTensor)
                for p in params)  # FSDP's sharded DTensors take the foreach implementation
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), fused=fused)  # one kernel per step


def make_schedule(opt: torch.optim.Optimizer, cfg):
    """Linear warmup, then cosine decay to lr * min_lr_ratio at max_steps."""
    return get_cosine_with_min_lr_schedule_with_warmup(opt, cfg.warmup_steps, cfg.max_steps,
                                                       min_lr_rate=cfg.min_lr_ratio)


def diverged(losses: list[float], cfg) -> bool:
    """NaN / inf, or a spike over spike_factor x the mean of the previous spike_window losses."""
    if not losses:
        return False
    last = losses[-1]
    if not math.isfinite(last):
        return True
    prev = losses[-cfg.spike_window - 1:-1]
    return cfg.spike_factor > 0 and len(prev) == cfg.spike_window and last > cfg.spike_factor * sum(prev) / len(prev)
