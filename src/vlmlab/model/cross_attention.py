"""Gated cross-attention fusion (Flamingo / Idefics1) for any transformers decoder-only causal LM.

`add_cross_attention(lm, cfg, image_dim)` finds the LM's stack of decoder layers (through a peft wrapper
too), builds a gated block for decoder layers 0, every, 2*every, ... and runs each one in front of its
layer through a forward pre-hook. The LM itself is not modified: its parameter names, peft LoRA and
merging, RoPE, the causal mask and the KV cache work as before, and the new blocks live in the returned
`CrossAttentionFusion` (its parameters are exactly the new ones: a component for the trainable policy).

Before the LM's forward or `generate`, give it the images:
    fusion.set_image_context(image_states (B, I, T, Di), image_mask (B, I, T) bool | None, token_to_image (B, L))
token_to_image[b, l] = index of the most recent image at or before token l, -1 for none (images are
numbered in order of appearance; `token_to_image_from_ids` builds it from `<image>` token ids). Positions
past L (decoding, cached or not) read the last image of their row. A token with no image gets exactly
zero from every block (attention *and* MLP: stricter than Idefics1, whose MLP also runs on such tokens).
Gates start at 0, so the fused LM computes exactly what the bare LM computes. Without a context the
blocks are skipped (a text-only forward).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

from vlmlab.contract.schema import knob
from vlmlab.model.layers import EPS, SwiGLU


@dataclass
class CrossAttentionConfig:
    every: int = knob(4, ge=1)     # a block before decoder layers 0, every, 2*every, ... (Idefics1's cross_layer_interval)
    n_heads: int = knob(8, ge=1)   # cross-attention heads
    head_dim: int = knob(64, ge=1)  # size of each head
    mlp_mult: int = knob(4, ge=1)  # block MLP (SwiGLU) hidden width = mlp_mult * LM hidden size


# Reference: transformers models/idefics/modeling_idefics.py, IdeficsGatedCrossAttentionLayer (alpha_type=float).
class GatedCrossAttentionBlock(nn.Module):
    """h += tanh(alpha) * XAttn(norm(h), images); h += tanh(beta) * MLP(norm(h)); only where a token has an image."""

    def __init__(self, dim: int, image_dim: int, n_heads: int, head_dim: int, mlp_mult: int):
        super().__init__()
        self.n_heads, self.head_dim = n_heads, head_dim
        inner = n_heads * head_dim
        self.norm_attn = nn.RMSNorm(dim, eps=EPS)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(image_dim, inner, bias=False)
        self.to_v = nn.Linear(image_dim, inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)
        self.norm_mlp = nn.RMSNorm(dim, eps=EPS)
        self.mlp = SwiGLU(dim, mlp_mult * dim, dim)
        self.alpha = nn.Parameter(torch.zeros(1))  # cross-attention gate: tanh(0) = 0 at start
        self.beta = nn.Parameter(torch.zeros(1))   # MLP gate

    def forward(self, h: torch.Tensor, images: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """h (B, L, D); images (B, K, Di) all image tokens of a row; allowed (B, L, K) keys each token reads."""
        B, L, _ = h.shape
        x, images = h.to(self.alpha.dtype), images.to(self.alpha.dtype)
        has = allowed.any(-1, keepdim=True)                                   # (B, L, 1) token has an image
        mask = (allowed | ~has)[:, None]  # (B, 1, L, K); image-less rows read all keys (then zeroed): no NaN
        q = self.to_q(self.norm_attn(x)).view(B, L, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, L, hd)
        k = self.to_k(images).view(B, -1, self.n_heads, self.head_dim).transpose(1, 2)           # (B, H, K, hd)
        v = self.to_v(images).view(B, -1, self.n_heads, self.head_dim).transpose(1, 2)           # (B, H, K, hd)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)          # (B, H, L, hd)
        a = self.to_out(a.transpose(1, 2).reshape(B, L, -1))                  # (B, L, D)
        gate = has.to(x.dtype)  # (B, L, 1) 1/0: folded into the (B, L, 1) gates, one full-size op less than where()
        x = x + a * (torch.tanh(self.alpha) * gate)                           # (B, L, D)
        x = x + self.mlp(self.norm_mlp(x)) * (torch.tanh(self.beta) * gate)  # (B, L, D)
        return x.to(h.dtype)


def find_decoder_layers(lm: nn.Module) -> tuple[nn.Module, nn.ModuleList]:
    """(the module that runs the layers, its ModuleList of decoder layers), e.g. (lm.model, lm.model.layers).

    Found by shape, not by name, so Llama/Mistral/Qwen2/... and peft-wrapped models all work: a ModuleList
    of num_hidden_layers modules of one class, preferring a name ending in "layers", then the outermost.
    """
    n = getattr(getattr(lm, "config", None), "num_hidden_layers", None)
    found = [(name, m) for name, m in lm.named_modules() if isinstance(m, nn.ModuleList) and len(m) > 0
             and (n is None or len(m) == n) and len({type(c) for c in m}) == 1]
    if not found:
        raise ValueError(f"no stack of decoder layers found in {type(lm).__name__}")
    name, layers = max(found, key=lambda f: (f[0].endswith("layers"), len(f[1])))
    return lm.get_submodule(name.rpartition(".")[0]), layers


def token_to_image_from_ids(input_ids: torch.Tensor, image_token_id: int) -> torch.Tensor:
    """(B, L) index of the most recent `<image>` token at or before each position, -1 before the first."""
    return (input_ids == image_token_id).long().cumsum(1) - 1  # (B, L)


class CrossAttentionFusion(nn.Module):
    """The gated blocks (`blocks[str(layer_idx)]`) plus the hooks that run them inside the LM."""

    def __init__(self, blocks: nn.ModuleDict):
        super().__init__()
        self.blocks = blocks
        self._ctx = None      # (states (B, K, Di), key_image (B, K) image of each key, -2 = padding, token_to_image (B, L))
        self._past = 0        # tokens already in the KV cache at the current LM forward
        self._step = None     # per-forward (images, allowed), computed at the first block
        self._handles = []

    def attach(self, runner: nn.Module, layers: nn.ModuleList) -> None:
        self._handles.append(runner.register_forward_pre_hook(self._begin_forward, with_kwargs=True))
        for key in self.blocks:
            self._handles.append(layers[int(key)].register_forward_pre_hook(partial(self._run_block, key),
                                                                              with_kwargs=True))

    def remove(self) -> None:
        """Detach the hooks: the LM is the bare LM again."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def set_image_context(self, image_states: torch.Tensor, image_mask: torch.Tensor | None,
                          token_to_image: torch.Tensor) -> None:
        B, I, T, _ = image_states.shape
        valid = image_mask.bool() if image_mask is not None else image_states.new_ones(B, I, T, dtype=torch.bool)
        image_of_key = torch.arange(I, device=image_states.device).repeat_interleave(T)  # (I*T,)
        key_image = torch.where(valid.reshape(B, I * T), image_of_key, -2)   # (B, K); -2 = padded key
        self._ctx = (image_states.reshape(B, I * T, -1), key_image, token_to_image.long())
        self._step = None

    def clear_image_context(self) -> None:
        self._ctx, self._step = None, None

    @contextmanager
    def image_context(self, image_states, image_mask, token_to_image):
        self.set_image_context(image_states, image_mask, token_to_image)
        try:
            yield self
        finally:
            self.clear_image_context()

    def _begin_forward(self, module, args, kwargs):
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        self._past = cache.get_seq_length() if cache is not None else 0
        self._step = None

    def _prepare(self, B: int, L: int):
        states, key_image, t2i = self._ctx
        pos = self._past + torch.arange(L, device=t2i.device)               # (L,) absolute positions
        last = t2i.max(dim=1, keepdim=True).values                            # (B0, 1) last image of each row
        idx = torch.where(pos < t2i.shape[1], t2i[:, pos.clamp(max=t2i.shape[1] - 1)], last)  # (B0, L)
        if B != t2i.shape[0]:  # generate() with beams / several sequences per prompt repeats each row
            if B % t2i.shape[0]:
                raise ValueError(f"image context is for a batch of {t2i.shape[0]}, the LM runs {B}: set it per batch")
            r = B // t2i.shape[0]
            states, key_image, idx = (t.repeat_interleave(r, dim=0) for t in (states, key_image, idx))
        allowed = (idx[:, :, None] == key_image[:, None, :]) & (idx[:, :, None] >= 0)  # (B, L, K)
        return states, allowed

    def _run_block(self, key, layer, args, kwargs):
        if self._ctx is None or self._ctx[0].shape[1] == 0:
            return None
        h = args[0] if args else kwargs["hidden_states"]                      # (B, L, D)
        if self._step is None or self._step[1].shape[:2] != h.shape[:2]:
            self._step = self._prepare(*h.shape[:2])
        states, allowed = self._step
        h = self.blocks[key](h, states.to(h.device), allowed.to(h.device))    # (B, L, D)
        if args:
            return (h, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": h}


def add_cross_attention(lm: nn.Module, cfg: CrossAttentionConfig, image_dim: int) -> CrossAttentionFusion:
    """Builds the gated blocks for `lm` (dtype/device of its layers), hooks them in, returns them."""
    runner, layers = find_decoder_layers(lm)
    dim = lm.get_input_embeddings().embedding_dim
    ref = next(layers.parameters())
    blocks = nn.ModuleDict({str(i): GatedCrossAttentionBlock(dim, image_dim, cfg.n_heads, cfg.head_dim, cfg.mlp_mult)
                            for i in range(0, len(layers), cfg.every)})
    fusion = CrossAttentionFusion(blocks.to(device=ref.device, dtype=ref.dtype))
    fusion.attach(runner, layers)
    return fusion
