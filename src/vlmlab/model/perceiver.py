"""Perceiver resampler connector (Idefics2): learned latents pool P patch features into n_latents tokens.

A modality projection first maps the vision features to the LM width (`projection`: `mlp` a SwiGLU MLP as
Idefics2's, `linear` a plain linear map, `none` no projection: the resampler then works at the vision width,
as Idefics1's does, and its tokens are vision-width); then `depth` layers in which the latents attend to
keys/values over [image features; latents], followed by an MLP (`resampler_mlp`: `swiglu` as Idefics2's, 3
matrices; `relu` as Idefics1's, 2 matrices); a final RMSNorm. A patch mask (N, P) (True = real patch)
removes padded patches from every attention, so padding a batch changes nothing in the output.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vlmlab.model.layers import EPS, MLPS, SwiGLU

PROJECTIONS = ("mlp", "linear", "none")


# Reference: transformers models/idefics2/modeling_idefics2.py, Idefics2PerceiverLayer + Idefics2PerceiverAttention.
class PerceiverLayer(nn.Module):
    """latents += Attn(q = norm(latents), kv = [norm(context); norm(latents)]); latents += MLP(norm(latents))."""

    def __init__(self, dim: int, n_heads: int, head_dim: int, mlp_mult: int, mlp: str = "swiglu"):
        super().__init__()
        self.n_heads, self.head_dim = n_heads, head_dim
        inner = n_heads * head_dim
        self.norm_latents = nn.RMSNorm(dim, eps=EPS)
        self.norm_context = nn.RMSNorm(dim, eps=EPS)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)
        self.norm_mlp = nn.RMSNorm(dim, eps=EPS)
        self.mlp = MLPS[mlp](dim, mlp_mult * dim, dim)

    def forward(self, latents: torch.Tensor, context: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        N, n, _ = latents.shape
        lat = self.norm_latents(latents)                                      # (N, n, D)
        kv = torch.cat([self.norm_context(context), lat], dim=1)              # (N, P+n, D)
        q = self.to_q(lat).view(N, n, self.n_heads, self.head_dim).transpose(1, 2)        # (N, H, n, hd)
        k = self.to_k(kv).view(N, -1, self.n_heads, self.head_dim).transpose(1, 2)        # (N, H, P+n, hd)
        v = self.to_v(kv).view(N, -1, self.n_heads, self.head_dim).transpose(1, 2)        # (N, H, P+n, hd)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)     # (N, H, n, hd)
        latents = latents + self.to_out(a.transpose(1, 2).reshape(N, n, -1))  # (N, n, D)
        return latents + self.mlp(self.norm_mlp(latents))                     # (N, n, D)


# Reference: transformers models/idefics2/modeling_idefics2.py, Idefics2PerceiverResampler.
class PerceiverResampler(nn.Module):
    """(N, P, D) context + (N, P) mask -> (N, n_latents, D). Works at one width D (the LM's)."""

    def __init__(self, dim: int, n_latents: int = 64, depth: int = 3, n_heads: int = 16, head_dim: int = 96,
                 mlp_mult: int = 4, mlp: str = "swiglu"):
        super().__init__()
        if mlp not in MLPS:
            raise ValueError(f"connector.resampler_mlp={mlp!r}: allowed are {', '.join(MLPS)}")
        # Random latents (Idefics1's init). Idefics2 initialises them to ones, which makes every latent
        # identical, and identical latents get identical updates: they would never tell apart from scratch.
        self.latents = nn.Parameter(torch.randn(n_latents, dim))  # (n, D)
        self.layers = nn.ModuleList(PerceiverLayer(dim, n_heads, head_dim, mlp_mult, mlp) for _ in range(depth))
        self.norm = nn.RMSNorm(dim, eps=EPS)

    def forward(self, context: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        N = context.shape[0]
        latents = self.latents.to(context.dtype).unsqueeze(0).expand(N, -1, -1)  # (N, n, D)
        attn_mask = None
        if mask is not None:  # the latents themselves are always visible, so no row is ever fully masked
            keep = torch.cat([mask.bool(), mask.new_ones(latents.shape[:2], dtype=torch.bool)], dim=1)  # (N, P+n)
            attn_mask = keep[:, None, None, :]                                # (N, 1, 1, P+n): heads, queries
        for layer in self.layers:
            latents = layer(latents, context, attn_mask)                      # (N, n, D)
        return self.norm(latents)                                             # (N, n, D)


class PerceiverConnector(nn.Module):
    """Modality projection (vision dim -> LM dim, or none) then the perceiver resampler; n_latents tokens per
    image, each `out_dim` wide (the LM's, or the vision width without a projection)."""

    def __init__(self, vision_dim: int, lm_dim: int, n_latents: int = 64, depth: int = 3, n_heads: int = 16,
                 head_dim: int = 96, projection: str = "mlp", mlp_hidden_mult: int = 4, resampler_mlp: str = "swiglu"):
        super().__init__()
        if projection not in PROJECTIONS:
            raise ValueError(f"connector.projection={projection!r}: allowed are {', '.join(PROJECTIONS)}")
        self.n_latents = n_latents
        # Idefics2's Idefics2Connector: modality_projection (SwiGLU) then perceiver_resampler. Idefics1 has no
        # projection: its resampler works at the vision width and the cross-attention keys read that width.
        self.out_dim = vision_dim if projection == "none" else lm_dim
        self.proj = {"mlp": lambda: SwiGLU(vision_dim, mlp_hidden_mult * lm_dim, lm_dim),
                     "linear": lambda: nn.Linear(vision_dim, lm_dim, bias=False),
                     "none": nn.Identity}[projection]()
        self.resampler = PerceiverResampler(self.out_dim, n_latents, depth, n_heads, head_dim, mlp_hidden_mult,
                                            resampler_mlp)

    def num_tokens(self, num_patches: int) -> int:
        return self.n_latents

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.resampler(self.proj(features), mask)  # (N, P, Dv) -> (N, P, D) -> (N, n_latents, D)
