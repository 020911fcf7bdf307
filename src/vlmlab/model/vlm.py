"""The VLM that glues the parts: vision encoder -> connector -> fusion into a causal LM.

Fully autoregressive (Idefics2): every image view becomes `T` visual tokens that replace the `<image>`
placeholder embeddings of the prompt (`<fake_token_around_image> <image>*T <fake_token_around_image>`),
and the LM runs its normal causal mask over the joint sequence. Cross-attention (Idefics1 / Flamingo):
the prompt carries one `<image>` token, and gated cross-attention blocks inside the LM read the visual
tokens of the most recent image. Image positions never carry a loss (the collator masks their labels).

The VLM's own token embeddings (`<image>`, `<fake_token_around_image>`) live in `vlm_embed`, a small table
that trains with the new modules, so they learn even when the LM is frozen (Idefics2 does the same).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vlmlab.images import tile_positions
from vlmlab.model.cross_attention import token_to_image_from_ids
from vlmlab.model.llm import TokenIds


class VLM(nn.Module):
    def __init__(self, vision: nn.Module, connector: nn.Module, llm: nn.Module, ids: TokenIds,
                 fusion: str = "autoregressive", xattn: nn.Module | None = None, tile_slots: int = 0):
        super().__init__()
        if fusion not in ("autoregressive", "cross_attention"):
            raise ValueError(f"fusion must be autoregressive or cross_attention, got {fusion!r}")
        if (fusion == "cross_attention") != (xattn is not None):
            raise ValueError("cross_attention fusion needs its xattn blocks, and only it")
        self.vision, self.connector, self.llm, self.xattn = vision, connector, llm, xattn
        self.fusion, self.ids = fusion, ids
        self.feature_store = None  # a FeatureStore for a frozen tower (build.py, vision.feature_store_mb)
        base = llm.get_input_embeddings()
        self.vlm_token_ids = (ids.image, ids.fake)
        # logits = lm_head(hidden) exactly, so training may apply the head to the supervised positions alone
        self._plain_head = not any(getattr(llm.config, k, None) for k in
                                   ("final_logit_softcapping", "logit_scale", "logits_scaling"))
        self.vlm_embed = nn.Embedding(len(self.vlm_token_ids), base.embedding_dim)
        # image.tile_tags=learned: one embedding per view position (0 the whole image, k the k-th crop) added to the
        # view's visual tokens (SmolVLM's learned position tokens); zero at the start, so it begins as no tags
        self.tile_embed = nn.Embedding(tile_slots, connector.out_dim) if tile_slots else None
        if self.tile_embed is not None:
            nn.init.zeros_(self.tile_embed.weight)
        with torch.no_grad():  # start from the LM's own rows (mean-resized or reserved)
            self.vlm_embed.weight.copy_(base.weight[list(self.vlm_token_ids)].float())

    # ---- images -> visual tokens -------------------------------------------------------------
    def encode_images(self, pixel_values: torch.Tensor, patch_mask: torch.Tensor | None):
        """Returns visual tokens (N, T, D_lm) and their validity mask (N, T) bool."""
        grad_vision = any(p.requires_grad for p in self.vision.parameters())
        if self.feature_store is not None and patch_mask is None and not grad_vision:
            feats, fmask = self.feature_store.encode(self.vision, pixel_values)  # equal views, stored ones reused
        else:
            with torch.set_grad_enabled(torch.is_grad_enabled() and grad_vision):
                feats, fmask = self.vision(pixel_values, patch_mask)  # (N, P, Dv), (N, P)
        if getattr(self.connector, "uses_grid", False):            # pools blocks of the patch grid
            p = self.vision.patch_size
            grid = (pixel_values.shape[-2] // p, pixel_values.shape[-1] // p)  # the batch's (padded) patch grid
            return self.connector(feats, fmask, grid=grid), self.connector.token_mask(fmask, grid)
        tokens = self.connector(feats, fmask)                      # (N, T, D_lm)
        if tokens.shape[1] == feats.shape[1]:                      # no pooling: one token per patch
            return tokens, fmask
        return tokens, torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)

    def visual_tokens_per_view(self, num_patches: int, grid: tuple[int, int] | None = None) -> int:
        """Tokens of one view of `num_patches` patches laid out as `grid` (rows, cols)."""
        if getattr(self.connector, "uses_grid", False):
            return self.connector.num_tokens(num_patches, grid)
        return self.connector.num_tokens(num_patches)

    # ---- the joint input ---------------------------------------------------------------------
    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        emb = self.llm.get_input_embeddings()(input_ids)  # (B, L, D)
        for row, tid in enumerate(self.vlm_token_ids):
            sel = input_ids == tid
            if sel.any():
                emb = torch.where(sel.unsqueeze(-1), self.vlm_embed.weight[row].to(emb.dtype), emb)
        return emb

    def prepare(self, input_ids, pixel_values, patch_mask, view_to_sample, view_to_image=None) -> torch.Tensor:
        """Embeds the prompt and fuses the images in; returns inputs_embeds (B, L, D)."""
        emb = self.embed(input_ids)
        if pixel_values is None:
            if self.xattn is not None:
                self.xattn.clear_image_context()  # a text-only batch must not read the previous images
            return emb
        tokens, tmask = self.encode_images(pixel_values, patch_mask)  # (N, T, D), (N, T)
        if self.tile_embed is not None:
            image_of_view = view_to_sample * (int(view_to_image.max()) + 1 if view_to_image is not None else 1) + (
                view_to_image if view_to_image is not None else 0)  # (N,) the views of one image are adjacent
            counts = torch.unique_consecutive(image_of_view, return_counts=True)[1]  # (images,)
            pos = tile_positions(counts)  # (N,)
            if int(pos.max()) >= self.tile_embed.num_embeddings:
                raise ValueError(f"an image has {int(counts.max())} views; the tile embeddings hold "
                                 f"{self.tile_embed.num_embeddings} positions")
            tokens = tokens + self.tile_embed(pos).unsqueeze(1).to(tokens.dtype)
        if self.fusion == "autoregressive":
            slots = input_ids == self.ids.image                          # (B, L)
            visual = tokens[tmask]                                       # (sum of real tokens, D)
            if slots.sum() != visual.shape[0]:
                raise ValueError(f"{int(slots.sum())} <image> slots in the text but {visual.shape[0]} visual tokens")
            return emb.masked_scatter(slots.unsqueeze(-1), visual.to(emb.dtype))
        if view_to_image is None:
            view_to_image = torch.zeros_like(view_to_sample)
        self.xattn.set_image_context(*self._images_per_sample(tokens, tmask, view_to_sample, view_to_image,
                                                              input_ids))
        return emb

    def _images_per_sample(self, tokens, tmask, view_to_sample, view_to_image, input_ids):
        """Cross-attention context: the views of each image joined, (B, I_max, T_max, D) + mask (B, I_max, T_max);
        text tokens read the most recent image (one `<image>` token marks each image in the text)."""
        B, I, D = input_ids.shape[0], int(view_to_image.max()) + 1, tokens.shape[-1]
        slot = (view_to_sample * I + view_to_image)[:, None].expand_as(tmask)[tmask]  # (S,) slot of each real token
        order = torch.sort(slot, stable=True).indices                                  # a slot's views keep their order
        slot = slot[order]
        count = torch.bincount(slot, minlength=B * I)                                  # (B*I,) tokens per image
        pos = torch.arange(slot.numel(), device=slot.device) - (count.cumsum(0) - count)[slot]  # (S,) rank in slot
        t_max = int(count.max())
        states = tokens.new_zeros(B * I, t_max, D).index_put((slot, pos), tokens[tmask][order])  # (B*I, T_max, D)
        mask = torch.zeros(B * I, t_max, dtype=torch.bool, device=tokens.device).index_put(
            (slot, pos), torch.ones_like(slot, dtype=torch.bool))                      # (B*I, T_max)
        return (states.view(B, I, t_max, D), mask.view(B, I, t_max),
                token_to_image_from_ids(input_ids, self.ids.image))

    # ---- training and generation -------------------------------------------------------------
    def forward(self, input_ids, attention_mask, labels=None, pixel_values=None, patch_mask=None,
                view_to_sample=None, view_to_image=None, return_logits: bool = True):
        """(loss, logits (B, L, V)). With labels and return_logits=False (training) the LM head runs only where a
        label is set: the same loss without the (B, L, V) logits (at vocab 32k: -19% step time, -27% memory)."""
        emb = self.prepare(input_ids, pixel_values, patch_mask, view_to_sample, view_to_image)
        target = None if labels is None else F.pad(labels[:, 1:], (0, 1), value=-100)  # (B, L): next token's label
        if return_logits or target is None or not self._plain_head:
            logits = self.llm(inputs_embeds=emb, attention_mask=attention_mask, use_cache=False).logits  # (B, L, V)
            loss = None if target is None else F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(),
                                                                 ignore_index=-100)
            return loss, logits
        h = self.llm.get_decoder()(inputs_embeds=emb, attention_mask=attention_mask, use_cache=False)
        sel = target != -100                                                   # (B, L) positions with a loss
        logits = self.llm.get_output_embeddings()(h.last_hidden_state[sel])    # (S, V)
        return F.cross_entropy(logits.float(), target[sel]), None

    @torch.no_grad()
    def generate(self, input_ids, attention_mask, pixel_values=None, patch_mask=None, view_to_sample=None,
                 view_to_image=None, max_new_tokens: int = 16, min_new_tokens: int = 0) -> list[list[int]]:
        """Greedy decoding with the KV cache; prompts must be left-padded. Returns new token ids per sample
        (`min_new_tokens` > 0 holds back the end-of-sequence token until then: compute.py counts per token)."""
        emb = self.prepare(input_ids, pixel_values, patch_mask, view_to_sample, view_to_image)
        out = self.llm.generate(inputs_embeds=emb, attention_mask=attention_mask, max_new_tokens=max_new_tokens,
                                min_new_tokens=min_new_tokens, do_sample=False, use_cache=True, eos_token_id=self.ids.eos,
                                pad_token_id=self.ids.pad)
        result = []
        for row in out.tolist():  # generate() with inputs_embeds returns only the new tokens
            result.append(row[: row.index(self.ids.eos)] if self.ids.eos in row else row)
        return result
