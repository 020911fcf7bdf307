"""One function that wires the VLM from the config: each builder gets only its own part of it."""
from __future__ import annotations

import torch

from vlmlab.contract.errors import ConfigError

from vlmlab.model.connector import budget_resolution, build_connector
from vlmlab.model.cross_attention import add_cross_attention
from vlmlab.model.feature_store import FeatureStore, cacheable, fingerprint
from vlmlab.model.llm import load_llm
from vlmlab.model.navit import load_vision_encoder
from vlmlab.model.trainable import apply_trainable
from vlmlab.model.vlm import VLM
from vlmlab.paths import cache_root


def build_vlm(cfg, seed: int = 0):
    """Returns (vlm, tokenizer). New modules (connector, cross-attention, new token rows) are initialised
    from `seed` alone, so seed s of two cells shares its initialisation wherever the cells share parts.
    A visual-token budget of a connector without pooling (connector.visual_tokens with linear or mlp, square views,
    image.size unset) is met by resolution: cfg.image.size is set here, before the image pipeline is built from it
    (connector.budget_resolution)."""
    vision = load_vision_encoder(cfg.vision.name_or_path, trust_remote_code=cfg.vision.trust_remote_code)
    cfg.image = budget_resolution(cfg.image, cfg.connector, vision.patch_size)
    llm, tokenizer, ids = load_llm(cfg.llm)
    lm_dim = llm.get_input_embeddings().embedding_dim
    torch.manual_seed(seed)
    grid_side = (cfg.image.size or vision.image_size) // vision.patch_size  # a square view's patches per side
    connector = build_connector(cfg.connector, vision.hidden_size, lm_dim, grid_side)
    if cfg.fusion.kind == "autoregressive" and connector.out_dim != lm_dim:
        raise ConfigError(f"fusion=autoregressive puts visual tokens in the LM's input, so they must be {lm_dim} wide; "
                         f"the connector's are {connector.out_dim} (connector.projection=none needs "
                         f"fusion=cross_attention, or equal vision and LM widths)")
    torch.manual_seed(seed + 1)
    xattn = add_cross_attention(llm, cfg.fusion.cross_attention, connector.out_dim) \
        if cfg.fusion.kind == "cross_attention" else None
    if cfg.image.tile_tags == "text" and cfg.fusion.kind != "autoregressive":
        raise ConfigError("image.tile_tags=text is not allowed with fusion=cross_attention; allowed: none, learned "
                          "(text tags go before each view's tokens in the prompt, which cross-attention does not hold)")
    tiles = cfg.image.split ** 2 + 1 if cfg.image.tile_tags == "learned" else 0  # n x n crops and the whole image
    vlm = VLM(vision, connector, llm, ids, fusion=cfg.fusion.kind, xattn=xattn, tile_slots=tiles)
    apply_trainable(vlm, cfg.trainable)
    if cfg.vision.feature_store_mb > 0 and cacheable(vlm.vision):
        vlm.feature_store = FeatureStore(cache_root() / "features.sqlite", cfg.vision.feature_store_mb,
                                         fingerprint(vlm.vision))
    return vlm, tokenizer
