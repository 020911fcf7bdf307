"""The benchmarked models at equal dimensions, random-init, and one synthetic batch for each.

  ours_fa            vlmlab VLM, fusion=autoregressive, SwiGLU projection + perceiver (Idefics2's layout,
                     which is also the recipe's connector)
  idefics2           transformers Idefics2ForConditionalGeneration
  ours_xattn         vlmlab VLM, fusion=cross_attention (gated blocks every `every` layers) with Idefics1's
                     perceiver layout: no projection, ReLU MLPs (connector.projection=none, resampler_mlp=relu)
  ours_xattn_recipe  the same with the recipe's connector (SwiGLU projection, SwiGLU perceiver MLPs): what
                     the ablations' cross-attention cells run, for its cost against the same reference
  idefics1           transformers IdeficsForVisionText2Text (use_resampler=True, cross_layer_interval=every)

Each group (GROUPS, the reference last) shares the LM (a Llama; Idefics1 has its own Llama-like decoder)
and the vision tower's dims and activation (SigLIP's tanh GELU; Idefics1's CLIP-like tower, which has a
class token, is given that activation: its default exact GELU has a much cheaper CPU kernel, which would
time a choice of backbone, not the implementations). Remaining differences are in `PARAM_NOTES`. Trainable sets:
`frozen` trains the connector/perceiver, the cross-attention blocks and (ours only) the 2-row VLM token
table; `full` trains everything.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn
from transformers import (Idefics2Config, Idefics2ForConditionalGeneration, IdeficsConfig,
                          IdeficsForVisionText2Text, LlamaConfig, LlamaForCausalLM, SiglipVisionConfig,
                          SiglipVisionModel)

from vlmlab.model.connector import ConnectorConfig, build_connector
from vlmlab.model.cross_attention import CrossAttentionConfig, add_cross_attention
from vlmlab.model.llm import TokenIds
from vlmlab.model.navit import VisionEncoder
from vlmlab.model.trainable import TrainableConfig, apply_trainable
from vlmlab.model.vlm import VLM

PAD, BOS, EOS, IMAGE, FAKE, FIRST_TEXT = 0, 1, 2, 4, 5, 7  # the zoo tokenizer's special ids


@dataclass(frozen=True)
class Dims:
    """Defaults: the toy recipe as of writing; `recipe_dims()` reads the live values."""
    batch: int = 16           # optim.batch_size
    image: int = 96           # square image side (zoo vision: 96 px, patch 8 -> 144 patches)
    patch: int = 8
    v_hidden: int = 128       # vision tower (world/vision.py VisionSpec)
    v_layers: int = 4
    v_heads: int = 4
    v_inter: int = 512
    hidden: int = 128         # LM (world/lm.py LMSpec)
    layers: int = 4
    heads: int = 4
    inter: int = 384
    vocab: int = 1024         # zoo tokenizer
    n_latents: int = 16       # conf/connector/perceiver.yaml
    depth: int = 3
    p_heads: int = 4
    p_head_dim: int = 32
    p_mlp_mult: int = 4       # our connector MLPs: hidden = mult x LM width (Idefics2: fixed, see PARAM_NOTES)
    every: int = 1            # conf/fusion/cross_attention.yaml (block heads / MLP: matched to Idefics1's)
    text: int = 26            # text tokens after the image block: FA length 45, cross-attention 28 (the
    answer: int = 6           # toy mixture's padded batch max); the last `answer` tokens carry the loss
    new_tokens: int = 8       # generation: greedy tokens after the prompt


def recipe_dims() -> Dims:
    """The default recipe's dims: zoo backbones (world/lm.py LMSpec, world/vision.py VisionSpec, the zoo
    tokenizer's 1024 tokens) and conf/'s connector, cross-attention interval and batch size."""
    from vlmlab.config import compose
    from vlmlab.world.lm import LMSpec
    from vlmlab.world.vision import VisionSpec

    lm, vis = LMSpec(), VisionSpec()
    cfg = compose(["fusion=cross_attention", "logger=none"])
    c = cfg.connector
    return Dims(batch=cfg.optim.batch_size, image=vis.image_size, patch=vis.patch, v_hidden=vis.hidden,
                v_layers=vis.layers, v_heads=vis.heads, v_inter=vis.intermediate, hidden=lm.hidden, layers=lm.layers,
                heads=lm.heads, inter=lm.intermediate, n_latents=c.n_latents, depth=c.depth, p_heads=c.n_heads,
                p_head_dim=c.head_dim, p_mlp_mult=c.mlp_hidden_mult, every=cfg.fusion.cross_attention.every)


SIZES = {  # "toy" = recipe_dims(), read when asked for (dims_for)
    "tiny": Dims(batch=2, image=32, v_hidden=32, v_layers=2, v_heads=2, v_inter=64, hidden=32, layers=2, heads=2,
                 inter=64, vocab=384, n_latents=4, depth=1, p_heads=2, p_head_dim=16, text=8, answer=3, new_tokens=2),
    # vision width = LM width, as at toy: Idefics1 resamples at the vision width, ours (and Idefics2) at the LM's
    "big": Dims(batch=8, image=224, patch=14, v_hidden=512, v_layers=6, v_heads=8, v_inter=2048, hidden=512,
                layers=8, heads=8, inter=1536, vocab=32000, n_latents=64, p_heads=16, p_head_dim=96, every=4,
                text=48, answer=8),
}
SIZE_NAMES = ("tiny", "toy", "big")


def dims_for(size: str) -> Dims:
    return recipe_dims() if size == "toy" else SIZES[size]


PARAM_NOTES = {
    "ours_fa": "ours: projection SwiGLU hidden = p_mlp_mult x LM width (Idefics2: LM intermediate); random latents",
    "idefics2": "Idefics2: projection SwiGLU hidden = LM intermediate; latents init to ones",
    "ours_xattn": "ours in Idefics1's perceiver layout (connector.projection=none, resampler_mlp=relu); RMSNorm",
    "ours_xattn_recipe": "ours as the recipe: SwiGLU projection + SwiGLU perceiver MLPs (3 mats); RMSNorm",
    "idefics1": "Idefics1: no projection, ReLU perceiver MLP (2 mats), LayerNorm; CLIP tower + class token, "
                "given SigLIP's tanh GELU",
}


def explained_gap(d: Dims, model: str) -> int:
    """params(model) - params(its group's reference), from the differences in PARAM_NOTES alone (the rest is equal).

    ours_fa: our projection's hidden width is p_mlp_mult x D_lm, Idefics2's the LM's intermediate size.
    ours_xattn: per perceiver layer a ReLU MLP of p_mlp_mult x D_v against Idefics1's 4 x D_v, and RMSNorms
    against LayerNorms (no bias: -D_v per norm, 3 per layer and the final one); Idefics1's CLIP tower has a
    class token, one more position and a pre-norm (4 D_v) where SigLIP's patch embedding has a bias (D_v).
    ours_xattn_recipe (needs D_v = D_lm, as its perceiver works at the LM width): instead a SwiGLU projection
    before the perceiver, where Idefics1 has none, and SwiGLU perceiver MLPs (3 matrices of m x D).
    Every one of ours adds its 2-row token table.
    """
    dv, dl, m = d.v_hidden, d.hidden, d.p_mlp_mult
    table = 2 * dl
    if model == "ours_fa":
        return (2 * dv + dl) * (m * dl - d.inter) + table
    vision = dv - (dv + dv + 2 * dv)  # SigLIP's patch bias - (class token, extra position, pre-LayerNorm)
    if model == "ours_xattn":
        return d.depth * (2 * m * dv * dv - 2 * 4 * dv * dv - 3 * dv) - dv + vision + table
    assert model == "ours_xattn_recipe" and dv == dl, "the recipe's perceiver works at the LM width: D_v = D_lm"
    projection = 2 * dv * m * dl + m * dl * dl
    perceiver = d.depth * (3 * m * dl * dl - 2 * 4 * dl * dl - 3 * dl) - dl
    return projection + perceiver + vision + table


@dataclass
class Subject:
    """A model plus closures over its batch: `loss()` for a training step, `generate()` for n tokens."""
    name: str
    model: nn.Module
    loss: Callable[[], torch.Tensor]
    generate: Callable[[], int]  # returns the number of new tokens produced per sample
    parts: dict[str, list[nn.Module]] = field(default_factory=dict)  # for the profiler: vision, perceiver, ...


def _lm_kwargs(d: Dims) -> dict:
    return dict(vocab_size=d.vocab, hidden_size=d.hidden, intermediate_size=d.inter, num_hidden_layers=d.layers,
                num_attention_heads=d.heads, num_key_value_heads=d.heads, max_position_embeddings=1024,
                tie_word_embeddings=True, pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS, rms_norm_eps=1e-6)


def _vision_kwargs(d: Dims) -> dict:
    return dict(hidden_size=d.v_hidden, intermediate_size=d.v_inter, num_hidden_layers=d.v_layers,
                num_attention_heads=d.v_heads, image_size=d.image, patch_size=d.patch)


def token_batch(d: Dims, fusion: str, seed: int = 0, device: str = "cpu") -> dict:
    """input_ids / labels / attention_mask (B, L) of `<s> image-block text`, the last `answer` tokens supervised."""
    g = torch.Generator().manual_seed(seed)
    image = [FAKE] + [IMAGE] * d.n_latents + [FAKE] if fusion == "autoregressive" else [IMAGE]
    head = torch.tensor([BOS] + image).expand(d.batch, -1)
    text = torch.randint(FIRST_TEXT, d.vocab, (d.batch, d.text), generator=g)
    ids = torch.cat([head, text], 1)                                              # (B, L)
    labels = torch.full_like(ids, -100)
    labels[:, -d.answer:] = ids[:, -d.answer:]
    pixels = torch.randn(d.batch, 3, d.image, d.image, generator=g)              # (B, 3, H, W)
    out = {"input_ids": ids, "labels": labels, "attention_mask": torch.ones_like(ids), "pixel_values": pixels}
    return {k: v.to(device) for k, v in out.items()}


def _unreachable_eos(d: Dims) -> int:
    return d.vocab + 1  # an id no logit can produce: every generation runs exactly new_tokens steps


def _ours(d: Dims, fusion: str, trainable: str, seed: int, layout: str = "recipe") -> VLM:
    """layout: "recipe" (the connector's defaults: SwiGLU projection and perceiver MLPs) or "idefics1"."""
    torch.manual_seed(seed)
    vision = VisionEncoder(SiglipVisionModel(SiglipVisionConfig(**_vision_kwargs(d))))
    llm = LlamaForCausalLM(LlamaConfig(**_lm_kwargs(d), attn_implementation="sdpa"))
    idefics1_layout = dict(projection="none", resampler_mlp="relu") if layout == "idefics1" else {}
    conn = build_connector(ConnectorConfig(kind="perceiver", n_latents=d.n_latents, depth=d.depth, n_heads=d.p_heads,
                                           head_dim=d.p_head_dim, mlp_hidden_mult=d.p_mlp_mult, **idefics1_layout),
                           vision.hidden_size, d.hidden)
    xattn = None
    if fusion == "cross_attention":  # Idefics1's block dims: LM heads, LM head size, LM intermediate
        xcfg = CrossAttentionConfig(every=d.every, n_heads=d.heads, head_dim=d.hidden // d.heads,
                                    mlp_mult=max(1, round(d.inter / d.hidden)))
        xattn = add_cross_attention(llm, xcfg, conn.out_dim)
    ids = TokenIds(image=IMAGE, fake=FAKE, bos=BOS, eos=_unreachable_eos(d), pad=PAD)
    vlm = VLM(vision, conn, llm, ids, fusion=fusion, xattn=xattn)
    policy = "full" if trainable == "full" else "frozen"
    apply_trainable(vlm, TrainableConfig(vision=policy, llm=policy))
    return vlm


def _our_parts(vlm: VLM) -> dict[str, nn.Module]:
    return {"vision": [vlm.vision], "projection": [vlm.connector.proj], "perceiver": [vlm.connector.resampler],
            "lm": [vlm.llm.model], "lm_head": [vlm.llm.lm_head]}


def _set_trainable(model: nn.Module, trainable: str, new_modules: list[nn.Module]) -> None:
    for p in model.parameters():
        p.requires_grad_(trainable == "full")
    for m in new_modules:
        m.requires_grad_(True)


def _ours_subject(name: str, fusion: str, d: Dims, trainable: str, seed: int, device: str,
                  layout: str = "recipe") -> Subject:
    vlm = _ours(d, fusion, trainable, seed, layout).to(device)
    b = token_batch(d, fusion, seed, device)
    views = torch.arange(d.batch, device=device)
    prompt = {k: b[k][:, :-d.answer] for k in ("input_ids", "attention_mask")}

    def generate():
        out = vlm.generate(**prompt, pixel_values=b["pixel_values"], view_to_sample=views, max_new_tokens=d.new_tokens)
        return len(out[0])
    parts = _our_parts(vlm)
    if vlm.xattn is not None:
        parts["xattn blocks"] = list(vlm.xattn.blocks.values())
    # the training step exactly as runner.py runs it: LM head on the supervised positions only
    return Subject(name, vlm, lambda: vlm(**b, view_to_sample=views, return_logits=False)[0], generate, parts)


def ours_fa(d: Dims, trainable: str = "frozen", seed: int = 0, device: str = "cpu") -> Subject:
    return _ours_subject("ours_fa", "autoregressive", d, trainable, seed, device)


def idefics2(d: Dims, trainable: str = "frozen", seed: int = 0, device: str = "cpu") -> Subject:
    torch.manual_seed(seed)
    text = dict(model_type="llama", **_lm_kwargs(d))
    perceiver = dict(hidden_size=d.hidden, rms_norm_eps=1e-6, resampler_n_latents=d.n_latents,
                     resampler_depth=d.depth, resampler_n_heads=d.p_heads, resampler_head_dim=d.p_head_dim,
                     num_key_value_heads=d.p_heads)
    cfg = Idefics2Config(vision_config=_vision_kwargs(d), perceiver_config=perceiver, text_config=text,
                         image_token_id=IMAGE, tie_word_embeddings=True)
    model = Idefics2ForConditionalGeneration(cfg).to(device)
    _set_trainable(model, trainable, [model.model.connector])
    b = token_batch(d, "autoregressive", seed, device)
    b["pixel_values"] = b["pixel_values"][:, None]  # (B, 1 image, 3, H, W)
    prompt = {k: b[k][:, :-d.answer] for k in ("input_ids", "attention_mask")}

    def generate():
        out = model.generate(**prompt, pixel_values=b["pixel_values"], max_new_tokens=d.new_tokens, do_sample=False,
                             eos_token_id=_unreachable_eos(d), pad_token_id=PAD)
        return out.shape[1] - prompt["input_ids"].shape[1]
    m = model.model
    parts = {"vision": [m.vision_model], "projection": [m.connector.modality_projection],
             "perceiver": [m.connector.perceiver_resampler], "lm": [m.text_model], "lm_head": [model.lm_head]}
    return Subject("idefics2", model, lambda: model(**b, use_cache=False).loss, generate, parts)


def ours_xattn(d: Dims, trainable: str = "frozen", seed: int = 0, device: str = "cpu") -> Subject:
    return _ours_subject("ours_xattn", "cross_attention", d, trainable, seed, device, layout="idefics1")


def ours_xattn_recipe(d: Dims, trainable: str = "frozen", seed: int = 0, device: str = "cpu") -> Subject:
    return _ours_subject("ours_xattn_recipe", "cross_attention", d, trainable, seed, device)


def idefics1(d: Dims, trainable: str = "frozen", seed: int = 0, device: str = "cpu") -> Subject:
    torch.manual_seed(seed)
    vision = dict(embed_dim=d.v_hidden, image_size=d.image, patch_size=d.patch, intermediate_size=d.v_inter,
                  num_hidden_layers=d.v_layers, num_attention_heads=d.v_heads,
                  hidden_act=SiglipVisionConfig().hidden_act)  # ours' tower's activation (module docstring)
    perceiver = dict(use_resampler=True, resampler_n_latents=d.n_latents, resampler_depth=d.depth,
                     resampler_n_heads=d.p_heads, resampler_head_dim=d.p_head_dim)
    lm = {k: v for k, v in _lm_kwargs(d).items() if k != "num_key_value_heads"}  # Idefics1: no GQA knob
    cfg = IdeficsConfig(**lm, cross_layer_interval=d.every, use_resampler=True, vision_config=vision,
                        perceiver_config=perceiver, freeze_text_layers=False, freeze_vision_layers=False)
    model = IdeficsForVisionText2Text(cfg).to(device)
    _set_trainable(model, trainable, [model.model.perceiver_resampler, model.model.gated_cross_attn_layers])
    b = token_batch(d, "cross_attention", seed, device)
    b["pixel_values"] = b["pixel_values"][:, None]                               # (B, 1 image, 3, H, W)
    b["image_attention_mask"] = (b["input_ids"] == IMAGE).long().cumsum(1)[..., None]  # (B, L, 1): after <image>
    prompt = {k: b[k][:, :-d.answer] for k in ("input_ids", "attention_mask", "image_attention_mask")}

    def generate():
        out = model.generate(**prompt, pixel_values=b["pixel_values"], max_new_tokens=d.new_tokens, do_sample=False,
                             eos_token_id=_unreachable_eos(d), pad_token_id=PAD)
        return out.shape[1] - prompt["input_ids"].shape[1]
    m = model.model
    parts = {"vision": [m.vision_model], "perceiver": [m.perceiver_resampler], "lm": [*m.layers, m.norm],
             "xattn blocks": list(m.gated_cross_attn_layers), "lm_head": [model.lm_head]}
    return Subject("idefics1", model, lambda: model(**b, use_cache=False).loss, generate, parts)


# per fusion: ours, then the reference (last); ratios are ours / reference
GROUPS = {"autoregressive": (ours_fa, idefics2), "cross_attention": (ours_xattn, ours_xattn_recipe, idefics1)}


def param_counts(model: nn.Module) -> tuple[int, int]:
    """(total, trainable), each parameter counted once (tied embeddings once)."""
    seen = {id(p): p for p in model.parameters()}.values()
    return sum(p.numel() for p in seen), sum(p.numel() for p in seen if p.requires_grad)

