"""Connectors that pool the patch grid by a ratio r: `pixel_shuffle` (Idefics3, SmolVLM) and `avgpool` (MM1's
average pooling).

Both read the patches as the 2-D grid the encoder saw (rows x cols, row-major), group them into r x r blocks and
make one visual token per block, so a view of rows x cols patches gives ceil(rows / r) x ceil(cols / r) tokens:
- pixel_shuffle: space-to-depth; a block's r*r patch features are concatenated (r*r*Dv) and an MLP maps them to
  the LM's width. Nothing is averaged away: the LM gets r^2 fewer, r^2 wider tokens.
  # reference: transformers/models/idefics3/modeling_idefics3.py, Idefics3Connector.pixel_shuffle (square grids)
- avgpool: a block's real patches are averaged, then the same MLP maps them (Dv -> LM width).
Grids that r does not divide are padded with zero features (pixel_shuffle) or left out of the mean (avgpool);
with preserved aspect ratios the batch pads views to its largest grid, and a token is real when its block holds a
real patch. r = 1 is the plain MLP connector.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from vlmlab.model.layers import SwiGLU


def square_grid(num_patches: int) -> tuple[int, int]:
    side = math.isqrt(num_patches)
    if side * side != num_patches:
        raise ValueError(f"{num_patches} patches are not a square grid: pass the grid (rows, cols)")
    return side, side


def blocks(features: torch.Tensor, grid: tuple[int, int], r: int) -> torch.Tensor:
    """(N, rows*cols, D) -> (N, ceil(rows/r) * ceil(cols/r), r*r, D): each r x r block's patches, zero-padded."""
    n, _, d = features.shape
    rows, cols = grid
    x = features.view(n, rows, cols, d)
    x = F.pad(x, (0, 0, 0, -cols % r, 0, -rows % r))  # (N, R*r, C*r, D)
    big_r, big_c = x.shape[1] // r, x.shape[2] // r
    x = x.view(n, big_r, r, big_c, r, d).permute(0, 1, 3, 2, 4, 5)  # (N, R, C, r, r, D)
    return x.reshape(n, big_r * big_c, r * r, d)


class GridPoolConnector(nn.Module):
    """Pools r x r blocks of patches into one token: `mode` shuffle (concatenate) or mean (average)."""

    uses_grid = True  # the VLM passes the patch grid (rows, cols) to forward / num_tokens / token_mask

    def __init__(self, vision_dim: int, lm_dim: int, ratio: int, mode: str, hidden_mult: int = 4):
        super().__init__()
        if mode not in ("shuffle", "mean"):
            raise ValueError(f"mode must be shuffle or mean, got {mode!r}")
        self.ratio, self.mode, self.out_dim = ratio, mode, lm_dim
        in_dim = vision_dim * ratio * ratio if mode == "shuffle" else vision_dim
        self.mlp = SwiGLU(in_dim, hidden_mult * lm_dim, lm_dim)

    def num_tokens(self, num_patches: int, grid: tuple[int, int] | None = None) -> int:
        rows, cols = grid or square_grid(num_patches)
        return math.ceil(rows / self.ratio) * math.ceil(cols / self.ratio)

    def token_mask(self, mask: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        """(N, P) patch mask -> (N, T): a token is real when its block holds a real patch."""
        grid = grid or square_grid(mask.shape[1])
        return blocks(mask.unsqueeze(-1).float(), grid, self.ratio).amax((2, 3)) > 0

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None,
                grid: tuple[int, int] | None = None) -> torch.Tensor:
        grid = grid or square_grid(features.shape[1])
        if mask is not None:
            features = features * mask.unsqueeze(-1).to(features.dtype)  # padded patches carry nothing
        x = blocks(features, grid, self.ratio)  # (N, T, r*r, Dv)
        if self.mode == "shuffle":
            x = x.flatten(2)  # (N, T, r*r*Dv)
        else:
            real = torch.ones(features.shape[:2], device=features.device) if mask is None else mask.float()
            weight = blocks(real.unsqueeze(-1), grid, self.ratio)  # (N, T, r*r, 1)
            x = (x * weight).sum(2) / weight.sum(2).clamp(min=1)  # (N, T, Dv)
        return self.mlp(x)  # (N, T, D_lm)
