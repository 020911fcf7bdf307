"""A persistent store of a frozen vision tower's features, shared by every run, cell and seed on the machine.

Most cells of a findings run share one frozen encoder on the same pictures, so its forward pass need run once
per picture per machine. A view's key is a hash of (the encoder's fingerprint, the view's shape, its pixels):
  - the fingerprint hashes the tower's class, weights and buffers, so another encoder (or a retrained zoo) misses;
  - the pixels carry everything the image pipeline did: resolution, splitting, normalisation, and the world
    version and seed that drew the picture. Any change of encoder, image config or world misses.
Values are one view's features (P, D), in the dtype the tower produced.

Storage: $VLMLAB_CACHE/features.sqlite, a TensorStore (store.py: one SQLite file, safe under concurrent jobs,
bounded by `vision.feature_store_mb`, least recently used entries evicted past it).

Exact where it is on: only the plain path (a batch of equal, unpadded views) of a tower with nothing to train
and no dropout (`cacheable`). Features of a view do not depend on the other views of its batch there (checked
on this CPU: batches of 16, 7 + 9 and 1 give the same bits), so a run with the store reproduces a run without
it bit for bit (tests/test_feature_store.py). Padded NaViT batches (image.mode=preserve) always run the tower.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn as nn

from vlmlab.store import TensorStore


def cacheable(vision: nn.Module) -> bool:
    """A tower whose features are a pure function of the pixels: nothing trains, no active dropout."""
    frozen = not any(p.requires_grad for p in vision.parameters())
    dropout = any(isinstance(m, nn.Dropout) and m.p > 0 for m in vision.modules())
    configs = [m.config for m in vision.modules() if hasattr(m, "config")]  # functional dropout (e.g. attention)
    config_dropout = any(float(getattr(c, k, 0.0) or 0.0) > 0 for c in configs
                         for k in ("attention_dropout", "hidden_dropout_prob", "attention_probs_dropout_prob", "dropout"))
    return frozen and not dropout and not config_dropout


def fingerprint(vision: nn.Module) -> bytes:
    """A hash of the tower's class, parameter and buffer names, shapes, dtypes and values."""
    h = hashlib.blake2b(type(vision).__qualname__.encode(), digest_size=16)
    for name, t in sorted(vision.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.digest()


class FeatureStore(TensorStore):
    def __init__(self, path: str | Path, limit_mb: float, encoder_fingerprint: bytes):
        super().__init__(path, limit_mb, table="features")
        self.fp = encoder_fingerprint

    def key(self, view: torch.Tensor) -> bytes:
        data = view.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
        return hashlib.blake2b(self.fp + str(tuple(view.shape)).encode() + data, digest_size=20).digest()

    def encode(self, vision: nn.Module, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, P, D) features and an all-true (N, P) mask for N equal-shape views, running the tower on misses only."""
        keys = [self.key(v) for v in pixel_values]
        found = self.get(list(dict.fromkeys(keys)))
        miss = [i for i, k in enumerate(keys) if k not in found]
        if miss:
            with torch.no_grad():
                feats, _ = vision(pixel_values[miss], None)  # (M, P, D)
            fresh = {keys[i]: feats[j] for j, i in enumerate(miss)}
            self.put(fresh)
            found.update(fresh)
        self.hits += len(keys) - len(miss)
        self.misses += len(miss)
        out = torch.stack([found[k].to(pixel_values.device) for k in keys])  # (N, P, D)
        return out, torch.ones(out.shape[:2], dtype=torch.bool, device=out.device)
