"""Connectors: vision features (N, P, Dv) + patch mask (N, P) -> visual tokens (N, T, out_dim) for the LM.

`linear` and `mlp` do no pooling (T = P, every patch is a token; the mask is ignored, the caller keeps
it to drop padded tokens); `perceiver` pools to T = n_latents learned queries (perceiver.py); `pixel_shuffle` and
`avgpool` pool r x r blocks of the patch grid into one token (grid_pool.py; they set `uses_grid`, and the VLM
passes them the grid (rows, cols) and asks them which tokens are real).
`build_connector(cfg, vision_dim, lm_dim)` picks one from the CONNECTORS registry by `cfg.kind`. Every
connector has `out_dim`, the width of its tokens: the LM's, except a perceiver without projection (the vision
width, which only cross-attention can read unless the two widths are equal), and `num_tokens(P)`, the tokens
it makes of P patches. A new connector is a module that calls `register_connector(name, builder)` (loaded
as a plugin, `plugins=[my_module]`) and a conf/connector/<name>.yaml; its own knobs go in `connector.options`.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
import torch.nn as nn

from vlmlab.contract.errors import ConfigError
from vlmlab.contract.schema import knob
from vlmlab.model.grid_pool import GridPoolConnector
from vlmlab.model.layers import MLPS, SwiGLU
from vlmlab.model.perceiver import PROJECTIONS, PerceiverConnector


@dataclass
class ConnectorConfig:
    kind: str = "perceiver"      # linear | mlp | perceiver | pixel_shuffle | avgpool | any registered connector
    n_latents: int = knob(64, ge=1)  # perceiver: visual tokens per image (Idefics2: 64)
    depth: int = knob(3, ge=1)   # perceiver: resampler layers (Idefics2: 3)
    n_heads: int = knob(16, ge=1)  # perceiver: attention heads (Idefics2: 16)
    head_dim: int = knob(96, ge=1)  # perceiver: size of each head (Idefics2: 96)
    projection: str = "mlp"      # perceiver: modality projection first: mlp (SwiGLU, Idefics2) | linear | none
                                 # (none: the resampler works at the vision width, as Idefics1's)
    resampler_mlp: str = "swiglu"  # perceiver layers' MLP: swiglu (Idefics2) | relu (Idefics1)
    ratio: int = knob(2, ge=1)   # pixel_shuffle / avgpool: r x r patches make one token (Idefics3: 3; SmolVLM: 4)
    visual_tokens: Optional[int] = knob(None, ge=1)  # tokens per square view, whatever the connector (sets n_latents
                                 # or ratio for the view's patch grid; linear / mlp must equal its patch count); F7, F8
    mlp_hidden_mult: int = knob(4, ge=1)  # hidden width of every connector MLP = mult * its width (LM or vision dim)
    mlp_act: str = "swiglu"      # mlp connector: swiglu | gelu
    options: dict[str, Any] = field(default_factory=dict)  # knobs of a registered (plugin) connector

    def __post_init__(self):
        allowed = {"kind": list(CONNECTORS), "projection": list(PROJECTIONS), "resampler_mlp": list(MLPS),
                   "mlp_act": ["swiglu", "gelu"]}
        for key, values in allowed.items():
            if getattr(self, key) not in values:
                raise ConfigError(f"connector.{key}={getattr(self, key)!r} is not allowed; allowed: {', '.join(values)}")


class LinearConnector(nn.Module):
    """One linear map per patch: the paper's "linear" (no pooling) connector."""

    def __init__(self, vision_dim: int, lm_dim: int):
        super().__init__()
        self.out_dim = lm_dim
        self.proj = nn.Linear(vision_dim, lm_dim)

    def num_tokens(self, num_patches: int) -> int:
        return num_patches

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.proj(features)  # (N, P, Dv) -> (N, P, Dl)


class MLPConnector(nn.Module):
    """A 2-layer MLP per patch (SwiGLU or GELU): the paper's "mapping network" (no pooling)."""

    def __init__(self, vision_dim: int, lm_dim: int, hidden_mult: int = 4, act: str = "swiglu"):
        super().__init__()
        hidden, self.out_dim = hidden_mult * lm_dim, lm_dim
        if act == "swiglu":
            self.mlp = SwiGLU(vision_dim, hidden, lm_dim)
        elif act == "gelu":
            self.mlp = nn.Sequential(nn.Linear(vision_dim, hidden), nn.GELU(), nn.Linear(hidden, lm_dim))
        else:
            raise ValueError(f"connector.mlp_act={act!r}: allowed are swiglu, gelu")

    def num_tokens(self, num_patches: int) -> int:
        return num_patches

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.mlp(features)  # (N, P, Dv) -> (N, P, Dl)


Builder = Callable[[ConnectorConfig, int, int], nn.Module]  # (cfg, vision_dim, lm_dim) -> connector
CONNECTORS: dict[str, Builder] = {
    "linear": lambda c, dv, dl: LinearConnector(dv, dl),
    "mlp": lambda c, dv, dl: MLPConnector(dv, dl, c.mlp_hidden_mult, c.mlp_act),
    "perceiver": lambda c, dv, dl: PerceiverConnector(dv, dl, c.n_latents, c.depth, c.n_heads, c.head_dim,
                                                      c.projection, c.mlp_hidden_mult, c.resampler_mlp),
    "pixel_shuffle": lambda c, dv, dl: GridPoolConnector(dv, dl, c.ratio, "shuffle", c.mlp_hidden_mult),
    "avgpool": lambda c, dv, dl: GridPoolConnector(dv, dl, c.ratio, "mean", c.mlp_hidden_mult),
}


def register_connector(name: str, builder: Builder) -> Builder:
    """Make `connector.kind=<name>` build `builder(cfg, vision_dim, lm_dim)`."""
    CONNECTORS[name] = builder
    return builder


def at_visual_tokens(cfg: ConnectorConfig, grid_side: int) -> ConnectorConfig:
    """cfg with `visual_tokens` turned into the connector's own knob for a grid_side x grid_side patch view: the
    perceiver's n_latents, the grid pools' ratio (the r with ceil(grid_side / r)^2 tokens). Connectors without
    pooling make a token per patch, so the count must be the view's."""
    tokens = cfg.visual_tokens
    if tokens is None:
        return cfg
    if cfg.kind == "perceiver":
        return dataclasses.replace(cfg, n_latents=tokens)
    if cfg.kind in ("pixel_shuffle", "avgpool"):
        ratios = [r for r in range(1, grid_side + 1) if math.ceil(grid_side / r) ** 2 == tokens]
        if not ratios:
            allowed = sorted({math.ceil(grid_side / r) ** 2 for r in range(1, grid_side + 1)}, reverse=True)
            raise ConfigError(f"connector.visual_tokens={tokens} is not allowed for {cfg.kind} on a {grid_side}x"
                              f"{grid_side} patch grid; allowed: {', '.join(map(str, allowed))}")
        return dataclasses.replace(cfg, ratio=ratios[0])
    if cfg.kind in ("linear", "mlp") and tokens != grid_side ** 2:
        raise ConfigError(f"connector.visual_tokens={tokens} is not allowed for connector={cfg.kind}: it makes one token "
                          f"per patch, {grid_side ** 2} here; allowed: {grid_side ** 2} (or leave image.size unset: "
                          "the budget then sets it)")
    if cfg.kind not in ("linear", "mlp"):
        raise ConfigError(f"connector.visual_tokens is not supported by connector={cfg.kind}; set its own options")
    return cfg


def budget_resolution(image, connector: ConnectorConfig, patch_size: int):
    """The image config meeting `connector.visual_tokens` by resolution, for a connector that makes a token per patch
    (linear, mlp) on square views whose size is unset: a k x k patch grid (tokens = k^2) is a square view of side
    k * patch_size. MM1 (arXiv 2403.09611) varies the visual tokens of a connector without pooling this way. Any
    other case returns `image` unchanged (an explicit image.size is checked against the budget by at_visual_tokens)."""
    tokens = connector.visual_tokens
    if tokens is None or connector.kind not in ("linear", "mlp") or image.mode != "square" or image.size is not None:
        return image
    side = math.isqrt(tokens)
    if side * side != tokens:
        raise ConfigError(f"connector.visual_tokens={tokens} is not allowed for connector={connector.kind} on square "
                          "views: it makes one token per patch of a k x k grid; allowed: a square number (4, 9, 16, ...)")
    return dataclasses.replace(image, size=side * patch_size)


def build_connector(cfg: ConnectorConfig, vision_dim: int, lm_dim: int, grid_side: int | None = None) -> nn.Module:
    """The connector `cfg.kind`; `grid_side` (patches per side of a square view) resolves `visual_tokens`."""
    if cfg.kind not in CONNECTORS:
        raise ConfigError(f"connector.kind={cfg.kind!r} is not allowed; allowed: {', '.join(CONNECTORS)}")
    if cfg.visual_tokens is not None:
        if grid_side is None:
            raise ValueError("connector.visual_tokens needs the view's patch grid (build_connector's grid_side)")
        cfg = at_visual_tokens(cfg, grid_side)
    return CONNECTORS[cfg.kind](cfg, vision_dim, lm_dim)
