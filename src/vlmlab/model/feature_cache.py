"""Features of a frozen vision encoder, kept in memory per picture and reused in later epochs.

A frozen tower (no LoRA, no dropout) maps the same pixels to the same features, so after the first epoch
its forward pass is redundant. The cache keys each view by a hash of its pixels (so it is right whatever
the image pipeline does: a random crop is simply a miss) and holds up to `limit_mb` of features; past
that it stops adding. Views of unequal shapes (aspect-ratio preserving, padded batches) are not cached.

Turn it on with `vision.feature_cache_mb=<MB>` (0, the default, is off). A run of under one epoch gains
nothing. A cached feature was computed in another batch than a recomputed one would be, so with the
cache a resumed run matches an uninterrupted one to float rounding, not bit for bit.
"""
from __future__ import annotations

import hashlib

import torch
import torch.nn as nn


def cacheable(vision: nn.Module) -> bool:
    """A tower whose features are a pure function of the pixels: nothing trains, no active dropout."""
    frozen = not any(p.requires_grad for p in vision.parameters())
    dropout = any(isinstance(m, nn.Dropout) and m.p > 0 for m in vision.modules())
    configs = [m.config for m in vision.modules() if hasattr(m, "config")]  # functional dropout (e.g. attention)
    config_dropout = any(float(getattr(c, k, 0.0) or 0.0) > 0 for c in configs
                         for k in ("attention_dropout", "hidden_dropout_prob", "attention_probs_dropout_prob", "dropout"))
    return frozen and not dropout and not config_dropout


class FeatureCache:
    def __init__(self, limit_mb: float):
        self.limit = int(limit_mb * 2**20)
        self.store: dict[bytes, torch.Tensor] = {}
        self.bytes = self.hits = self.misses = 0

    @staticmethod
    def key(view: torch.Tensor) -> bytes:
        data = view.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
        return hashlib.blake2b(data, digest_size=16).digest() + str(tuple(view.shape)).encode()

    def encode(self, vision: nn.Module, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, P, D) features and an all-true (N, P) mask for N equal-shape views, computing only the misses."""
        keys = [self.key(v) for v in pixel_values]
        miss = [i for i, k in enumerate(keys) if k not in self.store]
        fresh = {}
        if miss:
            with torch.no_grad():
                feats, _ = vision(pixel_values[miss], None)  # (M, P, D)
            for j, i in enumerate(miss):
                fresh[keys[i]] = feats[j]
                if keys[i] not in self.store and self.bytes + feats[j].nbytes <= self.limit:
                    self.store[keys[i]] = feats[j].clone()
                    self.bytes += feats[j].nbytes
        self.hits += len(keys) - len(miss)
        self.misses += len(miss)
        out = torch.stack([fresh[k] if k in fresh else self.store[k] for k in keys])  # (N, P, D)
        return out, torch.ones(out.shape[:2], dtype=torch.bool, device=out.device)

    def stats(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "entries": len(self.store), "mb": self.bytes / 2**20}
