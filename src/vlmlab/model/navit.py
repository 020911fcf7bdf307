"""A transformers ViT vision encoder run on padded, variable-size patch grids (NaViT / Idefics2 style).

`VisionEncoder` wraps a SigLIP- or CLIP-style vision model (a dual encoder is unwrapped to its `.vision_model`)
and returns patch features plus a mask of real patches. Three paths:
  plain     a native square batch (H = W = image_size, no patch_mask): the model's own forward.
  NaViT     one grid for every view: patch embedding, then each patch gets the position id of its bucketed
            fractional coordinate on the encoder's pretrained G x G position grid, so the square table is
            reused at any shape (a native grid gets exactly 0..G*G-1, i.e. the plain path's ids).
  bucketed  views of different grids (aspect-ratio preserving, splitting): the views are grouped by their
            real grid (rows, cols) and each group runs the NaViT path cropped to its own size, so the encoder
            computes real patches only and its time follows the patch count, not the batch's padded size.
            Features land top-left in the padded (N, h*w, D) layout, zeros on padding (masked downstream).
            Equal to running the padded batch with padded keys masked (tests/model: to float rounding).
Features follow the model's own `last_hidden_state`: SigLIP applies post_layernorm to it; CLIP applies its
post_layernorm only to the pooled class token, so CLIP features are the raw last layer (as Idefics1 and LLaVA
use them), and CLIP's class token is dropped from the returned features.
"""
from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModel
from transformers.masking_utils import create_bidirectional_mask

from vlmlab.model.loading import from_pretrained


def fractional_position_ids(patch_mask: torch.Tensor, grid: int) -> torch.Tensor:
    """Position ids (N, h*w) on a grid x grid table for real patches of top-left aligned grids; 0 on padding.

    Row i of an image with n real rows sits at fractional coordinate i/n and takes bucket floor(i*grid/n),
    the bucket of `torch.bucketize(i/n, [1/G, 2/G, ...], right=True)` in
    transformers/models/idefics2/modeling_idefics2.py (Idefics2VisionEmbeddings), computed here in integers
    so that n = grid gives exactly 0..grid-1.
    """
    n, h, w = patch_mask.shape
    n_rows = patch_mask[:, :, 0].sum(1).clamp(min=1)  # (N,) real rows
    n_cols = patch_mask[:, 0, :].sum(1).clamp(min=1)  # (N,) real columns
    rows = torch.arange(h, device=patch_mask.device)  # (h,)
    cols = torch.arange(w, device=patch_mask.device)  # (w,)
    bucket_r = (rows[None] * grid // n_rows[:, None]).clamp(max=grid - 1)  # (N,h)
    bucket_c = (cols[None] * grid // n_cols[:, None]).clamp(max=grid - 1)  # (N,w)
    ids = bucket_r[:, :, None] * grid + bucket_c[:, None, :]  # (N,h,w)
    return torch.where(patch_mask, ids, torch.zeros_like(ids)).view(n, h * w)  # (N,h*w)


class VisionEncoder(nn.Module):
    """forward(pixel_values (N,3,H,W), patch_mask (N,h,w) bool | None) -> (features (N,P,D), mask (N,P) bool)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        while hasattr(model, "vision_model"):  # SiglipModel / CLIPModel (and older transformers' nesting)
            model = model.vision_model
        emb = getattr(model, "embeddings", None)
        if emb is None or not hasattr(emb, "patch_embedding") or not hasattr(emb, "position_embedding"):
            raise TypeError(f"{type(model).__name__}: expected a ViT with embeddings.patch_embedding/position_embedding")
        if getattr(model, "use_head", False):  # SigLIP's pooling head: unused by a VLM, so dropped (no
            model.use_head, model.head = False, None  # dead parameters to count, train or LoRA-adapt)
        self.model = model
        cfg = model.config
        self.hidden_size, self.patch_size, self.image_size = cfg.hidden_size, cfg.patch_size, cfg.image_size
        self.grid = self.image_size // self.patch_size  # G: side of the pretrained position grid
        self.has_cls = hasattr(emb, "class_embedding")  # CLIP-style: position 0 is the class token's
        n_pos = emb.position_embedding.num_embeddings
        if n_pos != self.grid**2 + int(self.has_cls):
            raise TypeError(f"{type(model).__name__}: {n_pos} positions is not a {self.grid}x{self.grid} grid")
        self.pre_norm = getattr(model, "pre_layrnorm", None)  # CLIP's layernorm before the encoder
        self.post_norm = None if self.has_cls else getattr(model, "post_layernorm", None)
        # SigLIP's embeddings are a transposed view of the patch convolution; elementwise ops keep that layout,
        # so every LayerNorm of the tower copied its input (profiled: ~3 ms of a 133 ms toy step). Same values.
        emb.register_forward_hook(lambda _module, _inputs, out: out.contiguous())

    def forward(self, pixel_values: torch.Tensor, patch_mask: torch.Tensor | None = None):
        n, _, h, w = pixel_values.shape
        if patch_mask is None and h == w == self.image_size:
            return self.plain_forward(pixel_values)
        if patch_mask is None or bool(patch_mask.all()):
            return self.navit_forward(pixel_values, patch_mask)
        return self.bucketed_forward(pixel_values, patch_mask)

    def bucketed_forward(self, pixel_values: torch.Tensor, patch_mask: torch.Tensor):
        """Each group of views with the same real grid through the NaViT path at its own size (no padding)."""
        n, p = pixel_values.shape[0], self.patch_size
        _, hp, wp = patch_mask.shape
        rows, cols = patch_mask[:, :, 0].sum(1), patch_mask[:, 0, :].sum(1)  # (N,), (N,) real rows / columns
        out = None
        for r, c in sorted(set(zip(rows.tolist(), cols.tolist()))):
            idx = ((rows == r) & (cols == c)).nonzero().squeeze(1)  # (n_g,)
            feats, _ = self.navit_forward(pixel_values[idx, :, : r * p, : c * p])  # (n_g, r*c, D)
            if out is None:
                out = feats.new_zeros(n, hp, wp, feats.shape[-1])  # (N,h,w,D)
            out[idx, :r, :c] = feats.view(len(idx), r, c, -1)
        return out.view(n, hp * wp, -1), patch_mask.flatten(1)  # (N,P,D), (N,P)

    def plain_forward(self, pixel_values: torch.Tensor):
        x = self.model(pixel_values=pixel_values).last_hidden_state  # (N,[1+]P,D)
        x = x[:, 1:] if self.has_cls else x  # (N,P,D)
        return x, torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)  # (N,P,D), (N,P)

    def navit_forward(self, pixel_values: torch.Tensor, patch_mask: torch.Tensor | None = None):
        n, _, h, w = pixel_values.shape
        p = self.patch_size
        if h % p or w % p:
            raise ValueError(f"pixel size {h}x{w} is not a multiple of the patch size {p}")
        if patch_mask is None:
            patch_mask = torch.ones(n, h // p, w // p, dtype=torch.bool, device=pixel_values.device)  # (N,h,w)
        emb = self.model.embeddings
        # reference: transformers/models/idefics2/modeling_idefics2.py, Idefics2VisionEmbeddings.forward
        x = emb.patch_embedding(pixel_values.to(emb.patch_embedding.weight.dtype))  # (N,D,h,w)
        x = x.flatten(2).transpose(1, 2).contiguous()  # (N,P,D); contiguous: see the hook in __init__
        pos = fractional_position_ids(patch_mask, self.grid) + int(self.has_cls)  # (N,P)
        x = x + emb.position_embedding(pos)  # (N,P,D)
        mask = patch_mask.flatten(1)  # (N,P)
        keys = mask
        if self.has_cls:
            # reference: transformers/models/clip/modeling_clip.py, CLIPVisionEmbeddings.forward (class token first)
            cls = emb.class_embedding + emb.position_embedding.weight[0]  # (D,)
            x = torch.cat([cls.to(x.dtype).expand(n, 1, -1), x], dim=1)  # (N,1+P,D)
            keys = torch.cat([mask.new_ones(n, 1), mask], dim=1)  # (N,1+P)
        if self.pre_norm is not None:
            x = self.pre_norm(x)
        # reference: transformers/models/idefics2/modeling_idefics2.py, Idefics2VisionTransformer.forward
        attn_mask = create_bidirectional_mask(config=self.model.config, inputs_embeds=x, attention_mask=keys)
        x = self.model.encoder(inputs_embeds=x, attention_mask=attn_mask).last_hidden_state  # (N,[1+]P,D)
        x = x[:, 1:] if self.has_cls else x  # (N,P,D)
        if self.post_norm is not None:
            x = self.post_norm(x)
        return x, mask  # (N,P,D), (N,P)


def load_vision_encoder(name_or_path: str, **kwargs) -> VisionEncoder:
    """`AutoModel.from_pretrained` (zoo:/directory/hub id, see loading.py) wrapped as a VisionEncoder.

    A dual encoder (SiglipModel, CLIPModel) is unwrapped to its vision tower; its text tower is dropped.
    """
    return VisionEncoder(from_pretrained(AutoModel, name_or_path, **kwargs))
