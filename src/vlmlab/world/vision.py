"""Pretrain a tiny SigLIP (transformers SiglipModel) on square world scenes, and measure it.

Image-text pairs are square scenes rendered at 128 px, downsampled to the fixed pretraining
resolution (64 px) and paired with one of their reference captions; the loss is SigLIP's pairwise
sigmoid loss (SiglipModel(return_loss=True)). The VLM later uses `.vision_model` only.

With `caption_weight > 0` a small caption decoder (CaptionHead, dropped after pretraining) also learns to write
each scene's full caption from the tower's patch features, CoCa / CapPa style: a contrastive batch of 32 is told
apart by colour alone, while a caption must name every object's size, colour and shape, left to right, their
count, and (with `word_caption`) the word written in the scene. `word_height` draws the pretraining scenes'
font size from a range, so the tower sees glyphs at the pixel sizes splitting later shows it.
Quality: zero-shot image<->caption retrieval R@1 in galleries of 50 held-out scenes, and linear-probe accuracy
of colour, shape (one-object scenes) and object count from mean-pooled patch features.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm
from transformers import PreTrainedTokenizerFast, SiglipConfig, SiglipModel

from vlmlab.world import kb
from vlmlab.world.config import WorldConfig
from vlmlab.world.language import captions
from vlmlab.world.lm import cosine_lr
from vlmlab.world.questions import random_scene
from vlmlab.world.scenes import Scene, render

SQUARE_VIEW = WorldConfig(long_side_min=128, long_side_max=128, word_prob=0.25)


@dataclass
class VisionSpec:
    hidden: int = 128  # vision width
    layers: int = 4  # vision encoder layers
    heads: int = 4  # attention heads (both towers)
    intermediate: int = 512  # MLP width (both towers)
    image_size: int = 64  # fixed pretraining resolution (square)
    patch: int = 8  # patch size: (64 / 8)^2 = 64 patches
    text_layers: int = 2  # text tower layers (width = hidden)
    text_len: int = 32  # caption tokens (padded to this length, as SigLIP)
    steps: int = 800  # optimiser steps (the quality knob: weak and strong differ here)
    batch: int = 32  # image-text pairs per step
    lr: float = 2e-3  # peak AdamW learning rate (cosine to 10%)
    pool: int = 4000  # distinct training scenes
    seed: int = 0  # init, scenes and data order
    caption_weight: float = 0.0  # > 0: add the captioning loss (CaptionHead) with this weight
    caption_layers: int = 2  # caption decoder layers (width = hidden)
    caption_len: int = 48  # caption tokens for the decoder
    word_caption: bool = False  # captions end with 'with the word <w>' when the scene shows one
    word_prob: float = 0.25  # share of pretraining scenes that show a word
    word_height: tuple[float, float] = (0.05, 0.05)  # font size range, fraction of the canvas long side


def to_pixels(img: Image.Image, size: int) -> torch.Tensor:
    """PIL -> (3, size, size) float in [-1, 1] (SigLIP's mean = std = 0.5)."""
    arr = np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32)
    return torch.from_numpy(arr).permute(2, 0, 1) / 127.5 - 1.0


def square_scenes(seed: str, n: int, objects: tuple[int, int] = (1, 5), word_prob: float | None = None,
                  word_height: tuple[float, float] | None = None) -> list[Scene]:
    rng = random.Random(seed)
    out = []
    prob = SQUARE_VIEW.word_prob if word_prob is None else word_prob
    for _ in range(n):
        word = rng.choice(kb.WORDS) if rng.random() < prob else None
        view = SQUARE_VIEW if word_height is None else replace(SQUARE_VIEW, word_height=rng.uniform(*word_height))
        out.append(random_scene(rng, view, rng.randint(*objects), word, square=True))
    return out


def caption_text(scene: Scene, with_word: bool) -> str:
    """The captioning target: count and every object left to right, then the written word."""
    text = captions(scene)[1]
    return f"{text} with the word {scene.word}" if with_word and scene.word else text


class CaptionHead(torch.nn.Module):
    """A causal transformer decoder that writes the caption from patch features (cross-attention to them)."""

    def __init__(self, vocab: int, hidden: int, heads: int, intermediate: int, layers: int, length: int):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, hidden)
        self.pos = torch.nn.Parameter(torch.zeros(length, hidden))
        layer = torch.nn.TransformerDecoderLayer(hidden, heads, intermediate, dropout=0.0, batch_first=True,
                                                 norm_first=True)
        self.decoder = torch.nn.TransformerDecoder(layer, layers)
        self.norm = torch.nn.LayerNorm(hidden)
        self.out = torch.nn.Linear(hidden, vocab)

    def loss(self, patches: torch.Tensor, ids: torch.Tensor, pad: int) -> torch.Tensor:
        """Next-token cross-entropy of ids (N, L) given patches (N, P, D); padding ignored."""
        x = self.embed(ids[:, :-1]) + self.pos[: ids.shape[1] - 1]  # (N,L-1,D)
        causal = torch.nn.Transformer.generate_square_subsequent_mask(x.shape[1], device=x.device)
        h = self.norm(self.decoder(x, patches, tgt_mask=causal, tgt_is_causal=True))  # (N,L-1,D)
        target = ids[:, 1:].masked_fill(ids[:, 1:] == pad, -100)  # (N,L-1)
        return torch.nn.functional.cross_entropy(self.out(h).flatten(0, 1), target.flatten())


def encode_texts(tok: PreTrainedTokenizerFast, texts: list[str], length: int) -> torch.Tensor:
    return tok(texts, padding="max_length", truncation=True, max_length=length, return_tensors="pt")["input_ids"]


def build_siglip(tok: PreTrainedTokenizerFast, spec: VisionSpec) -> SiglipModel:
    cfg = SiglipConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=spec.hidden, intermediate_size=spec.intermediate,
                         num_hidden_layers=spec.text_layers, num_attention_heads=spec.heads,
                         max_position_embeddings=spec.text_len, projection_size=spec.hidden,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id),
        vision_config=dict(hidden_size=spec.hidden, intermediate_size=spec.intermediate, num_hidden_layers=spec.layers,
                           num_attention_heads=spec.heads, image_size=spec.image_size, patch_size=spec.patch),
    )
    torch.manual_seed(spec.seed)
    model = SiglipModel(cfg)
    with torch.no_grad():  # SigLIP paper's init (t' = log 10, b = -10); transformers leaves 0, 0 and the loss collapses
        model.logit_scale.fill_(math.log(10.0))
        model.logit_bias.fill_(-10.0)
    return model


def train_siglip(tok: PreTrainedTokenizerFast, spec: VisionSpec, desc: str = "vision") -> SiglipModel:
    scenes = square_scenes(f"siglip-train/{spec.seed}", spec.pool, word_prob=spec.word_prob,
                           word_height=spec.word_height if spec.word_height != (0.05, 0.05) else None)
    pixels = torch.stack([to_pixels(render(s), spec.image_size) for s in tqdm(scenes, desc=f"{desc} scenes", leave=False)])
    texts = torch.stack([encode_texts(tok, captions(s), spec.text_len) for s in scenes])  # (pool, 4 refs, L)
    model = build_siglip(tok, spec)
    head = None
    params = list(model.parameters())
    if spec.caption_weight > 0:
        torch.manual_seed(spec.seed + 1)
        head = CaptionHead(len(tok), spec.hidden, spec.heads, spec.intermediate, spec.caption_layers, spec.caption_len)
        params += list(head.parameters())
        cap_ids = encode_texts(tok, [caption_text(s, spec.word_caption) for s in scenes], spec.caption_len)  # (pool, L)
    gen = torch.Generator().manual_seed(spec.seed)
    opt = torch.optim.AdamW(params, lr=spec.lr, weight_decay=0.05)
    model.train()
    bar = tqdm(range(spec.steps), desc=desc)
    for step in bar:
        idx = torch.randperm(spec.pool, generator=gen)[: spec.batch]
        ref = torch.randint(0, texts.shape[1], (len(idx),), generator=gen)  # a random reference caption each
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, spec.steps, spec.lr)
        out = model(input_ids=texts[idx, ref], pixel_values=pixels[idx], return_loss=True)
        loss = out.loss
        if head is not None:
            loss = loss + spec.caption_weight * head.loss(out.vision_model_output.last_hidden_state, cap_ids[idx],
                                                          tok.pad_token_id)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    return model


@torch.no_grad()
def retrieval_r1(model: SiglipModel, tok: PreTrainedTokenizerFast, spec: VisionSpec, n: int = 500, gallery: int = 50) -> float:
    """Zero-shot R@1 within galleries of `gallery` held-out scenes (chance 1/gallery), mean of
    image->text and text->image; a hit is the right caption text (identical captions count)."""
    scenes = square_scenes("siglip-eval/retrieval", n)
    caps = [captions(s)[0] for s in scenes]
    img = model.get_image_features(pixel_values=torch.stack([to_pixels(render(s), spec.image_size) for s in scenes]))
    txt = model.get_text_features(input_ids=encode_texts(tok, caps, spec.text_len))
    img, txt = [torch.nn.functional.normalize(getattr(e, "pooler_output", e), dim=-1) for e in (img, txt)]
    hits = []
    for g in range(0, n - gallery + 1, gallery):
        sim = img[g: g + gallery] @ txt[g: g + gallery].T  # (G, G)
        c = caps[g: g + gallery]
        hits += [c[j] == c[i] for i, j in enumerate(sim.argmax(1).tolist())]
        hits += [c[j] == c[i] for i, j in enumerate(sim.argmax(0).tolist())]
    return float(np.mean(hits))


def _probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor) -> float:
    """Logistic-regression probe on standardised features; test accuracy."""
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    train_x, test_x = (train_x - mu) / sd, (test_x - mu) / sd
    torch.manual_seed(0)
    head = torch.nn.Linear(train_x.shape[1], int(train_y.max()) + 1)
    opt = torch.optim.Adam(head.parameters(), lr=0.05, weight_decay=1e-3)
    for _ in range(300):
        loss = torch.nn.functional.cross_entropy(head(train_x), train_y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float((head(test_x).argmax(1) == test_y).float().mean())


@torch.no_grad()
def _features(model: SiglipModel, scenes: list[Scene], size: int) -> torch.Tensor:
    px = torch.stack([to_pixels(render(s), size) for s in scenes])
    return torch.cat([model.vision_model(pixel_values=b).last_hidden_state.mean(1) for b in px.split(128)])  # (N, D)


def attribute_probe(model: SiglipModel, spec: VisionSpec, n_train: int = 600, n_test: int = 400) -> dict[str, float]:
    """Linear-probe accuracy of colour and shape (one-object scenes) and count (1-5 objects)."""
    out = {}
    single = square_scenes("siglip-eval/single", n_train + n_test, objects=(1, 1))
    feats = _features(model, single, spec.image_size)
    for attr, names in (("colour", list(kb.COLOURS)), ("shape", kb.SHAPES)):
        y = torch.tensor([names.index(getattr(s.objects[0], attr)) for s in single])
        out[attr] = _probe(feats[:n_train], y[:n_train], feats[n_train:], y[n_train:])
    multi = square_scenes("siglip-eval/multi", n_train + n_test)
    feats = _features(model, multi, spec.image_size)
    y = torch.tensor([len(s.objects) - 1 for s in multi])
    out["count"] = _probe(feats[:n_train], y[:n_train], feats[n_train:], y[n_train:])
    return out
