"""Pretrain a tiny SigLIP (transformers SiglipModel) on world scenes, and measure it.

Objective (world v2): SigLIP's pairwise sigmoid loss on whole pictures and their reference captions, plus dense
supervision of the tower's patch features (`dense_weight`), as detection-, segmentation- and OCR-style
pretraining gives real encoders (Florence-2, PaLI's OCR data): region heads name each object's colour and shape and
the word from the patches over its box; per-patch heads read the colour and the shape (its fill texture) of the
object under each patch centre, the letter of the script under it (character-level OCR boxes) and whether an
object's centre lies in the patch (a detector's centre heatmap; world v2 rc3: the count is its sum); a head on the
mean patch reads how many objects the view holds. World v1 trained SigLIP's loss alone (and, as an experiment, a
captioning head): a batch of 32 captions is told apart by colour alone, and the tower never learned shape,
count or glyphs; the v2 draft's region heads alone never learned words (docs/world.md, "negative results").

Views: each pretraining scene (the world's own canvases, 1-5 objects, a word with probability `word_prob`) gives
its whole picture resized to the square pretraining resolution, and a random crop of `crop_side` of each side
resized the same way: crops show objects and glyphs at the pixel sizes that splitting later shows the tower. Each
view carries the world's grain (`grain`, images.add_view_grain) as the VLM's views do.
`checkpoints` snapshots the tower along its one pretraining run; the zoo keeps them with their unimodal scores.
The targets themselves (what each patch and region of a view should say) are in world/vision_targets.py.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm
from transformers import PreTrainedTokenizerFast, SiglipConfig, SiglipModel

from vlmlab.images import add_view_grain
from vlmlab.world.pages import PagesObjective, PagesSpec
from vlmlab.world.resume import TrainState
from vlmlab.world import kb
from vlmlab.world.config import WORLD_V2, WorldConfig
from vlmlab.world.language import captions
from vlmlab.world.lm import cosine_lr
from vlmlab.world.questions import random_scene
from vlmlab.world.scenes import Scene, label_map, render
from vlmlab.world.vision_targets import LETTERS, MAX_COUNT, dense_targets, region_targets, word_box

SQUARE_VIEW = WorldConfig(long_side_min=128, long_side_max=128, word_prob=0.25)  # retrieval's scenes


@dataclass
class VisionSpec:
    hidden: int = 128  # vision width
    layers: int = 4  # vision encoder layers
    heads: int = 4  # attention heads (both towers)
    intermediate: int = 512  # MLP width (both towers)
    image_size: int = 96  # fixed pretraining resolution (square)
    patch: int = 8  # patch size: (96 / 8)^2 = 144 patches
    text_layers: int = 2  # text tower layers (width = hidden)
    text_len: int = 32  # caption tokens (padded to this length, as SigLIP)
    steps: int = 1200  # optimiser steps of the one pretraining run (rc1-rc2: 1600; 1200 fits the zoo budget)
    batch: int = 32  # whole pictures per step (plus as many crops)
    lr: float = 2e-3  # peak AdamW learning rate (cosine to 10%)
    pool: int = 4000  # distinct training scenes
    seed: int = 0  # init, scenes and data order
    dense_weight: float = 1.0  # weight of the dense heads (colour, shape, word per patch; count per view); 0 = SigLIP only
    crop_side: tuple[float, float] = (0.4, 0.8)  # side of the square random crop, fraction of the canvas's short side
    word_prob: float = 0.5  # share of pretraining scenes that show a word
    checkpoints: tuple[int, ...] = field(default_factory=tuple)  # steps at which to snapshot the tower
    long_side: tuple[int, int] = (WORLD_V2["long_side_min"], WORLD_V2["long_side_max"])  # pretraining canvases' long side, pixels (the world's data.long_side_*)
    centre_head: bool = True  # the per-patch object-centre head (rc3); False = rc2's heads (an ablation of rc3's tower)
    word_head: bool = False  # a per-patch word head: every patch over the word's ink box names the word (text spotting)
    word_crops: float = 0.0  # share of the crops of word-bearing scenes placed over the word (OCR-style text crops)
    letter_weight: float = 1.0  # weight of the per-patch letter loss among the dense losses
    order_weight: float = 0.0  # weight of the region order heads (each object's left-to-right and top-to-bottom rank among the view's objects); 0 = none (v2)
    grain: float = WORLD_V2["grain"]  # the world's view grain (data.grain): SD in grey levels on every pretraining view, after its resize
    script: str = WORLD_V2["script"]  # the script of the scenes' words (the world's data.script)
    word_height: float = WORLD_V2["word_height"]  # the scenes' word height, a fraction of the canvas long side (the world's data.word_height)
    pages: PagesSpec | None = None  # text pages through the same tower every step (world/pages.py); None = none (v2)

    def world(self) -> WorldConfig:
        """The world whose canvases this tower is pretrained and probed on."""
        return WorldConfig(long_side_min=self.long_side[0], long_side_max=self.long_side[1], grain=self.grain,
                           script=self.script, word_height=self.word_height)


def to_pixels(img: Image.Image, size: int, grain: float = 0.0) -> torch.Tensor:
    """PIL -> (3, size, size) float in [-1, 1] (SigLIP's mean = std = 0.5), with the world's view grain."""
    arr = add_view_grain(np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)), grain)
    return torch.from_numpy(arr.astype(np.float32)).permute(2, 0, 1) / 127.5 - 1.0


def square_scenes(seed: str, n: int, objects: tuple[int, int] = (1, 5), word_prob: float | None = None) -> list[Scene]:
    rng = random.Random(seed)
    prob = SQUARE_VIEW.word_prob if word_prob is None else word_prob
    return [random_scene(rng, SQUARE_VIEW, rng.randint(*objects), rng.choice(kb.WORDS) if rng.random() < prob else None,
                         square=True) for _ in range(n)]


def pretraining_scenes(seed: str, n: int, word_prob: float, world: WorldConfig | None = None) -> list[Scene]:
    """The world's own canvases (sizes, aspect ratios), 1-5 objects, a word with probability word_prob."""
    rng, world = random.Random(seed), world or WorldConfig()
    return [random_scene(rng, world, rng.randint(1, 5), rng.choice(kb.WORDS) if rng.random() < word_prob else None)
            for _ in range(n)]


def make_views(scenes: list[Scene], spec: VisionSpec, seed: str) -> dict[str, torch.Tensor]:
    """Two views per scene: the whole canvas resized to the square (squashed, as the VLM's square mode shows it)
    and a square random crop. {"pixels": (N, 2, 3, S, S) uint8, "targets": (N, 2, 6, P) dense_targets,
    "masks": (N, 2, REGIONS, P) bool and "labels": (N, 2, REGIONS, 5) region_targets}."""
    rng, size, grid = random.Random(seed), spec.image_size, spec.image_size // spec.patch
    out = {"pixels": [], "targets": [], "masks": [], "labels": []}
    for s in tqdm(scenes, desc="views", leave=False):
        img, labels = render(s), label_map(s)
        side = rng.uniform(*spec.crop_side) * min(s.width, s.height)
        x0, y0 = rng.uniform(0, s.width - side), rng.uniform(0, s.height - side)
        if spec.word_crops and s.word is not None and rng.random() < spec.word_crops:  # a text crop: the word inside
            wl, wt, wr, wb = word_box(s)
            x0 = rng.uniform(max(0.0, min(wr - side, wl)), max(0.0, min(wl, s.width - side)))
            y0 = rng.uniform(max(0.0, min(wb - side, wt)), max(0.0, min(wt, s.height - side)))
        boxes = [(0.0, 0.0, float(s.width), float(s.height)), (x0, y0, x0 + side, y0 + side)]
        out["pixels"].append(torch.stack([torch.from_numpy(add_view_grain(np.array(
            img.crop(tuple(round(v) for v in box)).resize((size, size), Image.Resampling.BICUBIC)), spec.grain)).permute(2, 0, 1)
            for box in boxes]))
        out["targets"].append(torch.from_numpy(np.stack([dense_targets(s, labels, box, grid) for box in boxes])))
        regions = [region_targets(s, box, grid) for box in boxes]
        out["masks"].append(torch.from_numpy(np.stack([m for m, _ in regions])))
        out["labels"].append(torch.from_numpy(np.stack([lab for _, lab in regions])))
    return {k: torch.stack(v) for k, v in out.items()}


class DenseHeads(torch.nn.Module):
    """Linear read-outs of the tower's patch features (dropped after pretraining)."""

    def __init__(self, hidden: int, centre: bool = True, word: bool = False, letter_weight: float = 1.0,
                 order_weight: float = 0.0):
        super().__init__()
        self.centre, self.word_patches, self.letter_weight, self.order_weight = centre, word, letter_weight, order_weight
        self.patch_colour = torch.nn.Linear(hidden, len(kb.COLOURS) + 1)
        self.patch_shape = torch.nn.Linear(hidden, len(kb.SHAPES) + 1)
        self.patch_letter = torch.nn.Linear(hidden, len(LETTERS) + 1)
        self.patch_centre = torch.nn.Linear(hidden, 2)
        if word:  # created last, so a tower without it draws the same initial weights as before
            self.patch_word = torch.nn.Linear(hidden, len(kb.WORDS) + 1)
        self.colour = torch.nn.Linear(hidden, len(kb.COLOURS))
        self.shape = torch.nn.Linear(hidden, len(kb.SHAPES))
        self.word = torch.nn.Linear(hidden, len(kb.WORDS))
        self.count = torch.nn.Linear(hidden, MAX_COUNT + 1)
        if order_weight > 0:  # created last and only when used, so a tower without them draws the same weights
            self.order_x = torch.nn.Linear(hidden, MAX_COUNT)
            self.order_y = torch.nn.Linear(hidden, MAX_COUNT)

    def region_logits(self, feats: torch.Tensor, masks: torch.Tensor) -> list[torch.Tensor]:
        """feats (N, P, D), masks (N, R, P) -> logits (N*R, classes) of each region's mean: colour, shape and word,
        then (with the order heads) the rank left to right and top to bottom."""
        m = masks.float()
        pooled = (m @ feats) / m.sum(-1, keepdim=True).clamp(min=1)  # (N,R,D)
        heads = (self.colour, self.shape, self.word) + ((self.order_x, self.order_y) if self.order_weight > 0 else ())
        return [head(pooled).flatten(0, 1) for head in heads]

    def loss(self, feats: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """feats (N, P, D) patch features; batch holds the views' targets, masks and labels (make_views).

        Each object's and the word's region (the patches over its box, averaged) is classified, as a detector's
        region head does; every patch's colour, shape (its texture) and letter (the glyph under its centre, as
        character-level OCR boxes teach) and whether an object's centre lies in it (a detector's centre heatmap) are
        read, each with foreground and background averaged apart so the few patches on an object or a word are not
        drowned; the mean patch reads the object count. With `order_weight`, each object's region also names its rank
        among the view's objects, left to right and top to bottom (relative position, as referring expressions
        teach: a region's features must say where it sits against the others), each loss weighted by it."""
        ce = torch.nn.functional.cross_entropy
        losses = [(self.order_weight if k >= 3 else 1.0)
                  * ce(logits, batch["labels"][..., k].flatten(), ignore_index=-100)
                  for k, logits in enumerate(self.region_logits(feats, batch["masks"]))
                  if (batch["labels"][..., k] >= 0).any()]
        rows = [(0, self.patch_colour), (1, self.patch_shape), (4, self.patch_letter)]
        rows += [(5, self.patch_centre)] if self.centre else []
        rows += [(2, self.patch_word)] if self.word_patches else []
        for row, head in rows:
            target = batch["targets"][:, row].flatten()
            per_patch = ce(head(feats).flatten(0, 1), target, reduction="none")  # (N*P,)
            fg = target > 0
            weight = self.letter_weight if row == 4 else 1.0
            losses.append(weight * (per_patch[~fg].mean() + (per_patch[fg].mean() if fg.any() else 0.0)))
        losses.append(ce(self.count(feats.mean(1)), batch["targets"][:, 3, 0]))
        return sum(losses) / len(losses)


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


def train_siglip(tok: PreTrainedTokenizerFast, spec: VisionSpec, desc: str = "vision",
                 on_checkpoint=None, state_path=None, save_every: int = 50,
                 extra: torch.nn.Module | None = None) -> SiglipModel:
    """One pretraining run; `on_checkpoint(step, model)` is called at each of spec.checkpoints (model in eval mode).
    `state_path`: the training state is saved there every `save_every` steps and a run finds it to resume
    (resume.py); the file is removed when the run ends. `extra`: an experiment's added objective (e.g. text pages,
    calibration/experiments/text_pages.py), a module whose `loss(vision_model)` is added to every step's loss
    and whose parameters train with the tower's; its state_dict and its own generator (`extra.gen`, if it has one)
    are part of the resumable state, so a resumed run with it also ends bit-identical. `spec.pages` adds the
    world's text pages the same way (world/pages.py)."""
    scenes = pretraining_scenes(f"siglip-train/{spec.seed}", spec.pool, spec.word_prob, spec.world())
    views = make_views(scenes, spec, f"siglip-views/{spec.seed}")  # whole + crop per scene (make_views)
    pixels = views["pixels"]  # (pool,2,3,S,S) uint8
    texts = torch.stack([encode_texts(tok, captions(s), spec.text_len) for s in scenes])  # (pool, 4 refs, L)
    model = build_siglip(tok, spec)
    torch.manual_seed(spec.seed + 1)
    heads = DenseHeads(spec.hidden, spec.centre_head, spec.word_head, spec.letter_weight, spec.order_weight)
    pages = (PagesObjective(spec.pages, spec.hidden, spec.image_size, spec.patch, spec.grain, spec.seed)
             if spec.pages is not None else None)
    params = (list(model.parameters()) + list(heads.parameters()) + (list(pages.parameters()) if pages else [])
              + (list(extra.parameters()) if extra else []))
    gen = torch.Generator().manual_seed(spec.seed)
    opt = torch.optim.AdamW(params, lr=spec.lr, weight_decay=0.05)
    resumable = {"model": model, "heads": heads, "opt": opt, "gen": gen}
    if pages is not None:
        resumable.update(pages=pages, pages_gen=pages.gen)
    if extra is not None:
        resumable["extra"] = extra
        if isinstance(getattr(extra, "gen", None), torch.Generator):
            resumable["extra_gen"] = extra.gen
    state = TrainState(state_path, save_every, **resumable)
    start, _ = state.load()
    model.train()
    bar = tqdm(range(start, spec.steps), desc=desc, initial=start, total=spec.steps)
    for step in bar:
        idx = torch.randperm(spec.pool, generator=gen)[: spec.batch]
        crops = torch.randperm(spec.pool, generator=gen)[: spec.batch]
        ref = torch.randint(0, texts.shape[1], (len(idx),), generator=gen)  # a random reference caption each
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, spec.steps, spec.lr)
        whole = pixels[idx, 0].float() / 127.5 - 1.0  # (B,3,S,S)
        out = model(input_ids=texts[idx, ref], pixel_values=whole, return_loss=True)
        loss = out.loss
        if spec.dense_weight > 0:
            crop_feats = model.vision_model(pixel_values=pixels[crops, 1].float() / 127.5 - 1.0).last_hidden_state
            feats = torch.cat([out.vision_model_output.last_hidden_state, crop_feats])  # (2B,P,D)
            batch = {k: torch.cat([v[idx, 0], v[crops, 1]]) for k, v in views.items() if k != "pixels"}
            loss = loss + spec.dense_weight * heads.loss(feats, batch)
        if pages is not None:
            loss = loss + pages.loss(model.vision_model)  # its own generator: the scenes' batches stay as without it
        if extra is not None:
            loss = loss + extra.loss(model.vision_model)  # its own randomness: the scenes' batches stay as without it
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if on_checkpoint is not None and step + 1 in spec.checkpoints and step + 1 < spec.steps:
            model.eval()
            on_checkpoint(step + 1, model)
            model.train()
        state.save(step + 1, spec.steps)
    model.eval()
    if on_checkpoint is not None and spec.steps in spec.checkpoints:
        on_checkpoint(spec.steps, model)
    state.clear()
    return model


@torch.no_grad()
def retrieval_r1(model: SiglipModel, tok: PreTrainedTokenizerFast, spec: VisionSpec, n: int = 500, gallery: int = 50) -> float:
    """Zero-shot R@1 within galleries of `gallery` held-out scenes (chance 1/gallery), mean of
    image->text and text->image; a hit is the right caption text (identical captions count)."""
    scenes = square_scenes("siglip-eval/retrieval", n)
    caps = [captions(s)[0] for s in scenes]
    img = model.get_image_features(pixel_values=torch.stack([to_pixels(render(s), spec.image_size, spec.grain) for s in scenes]))
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
    return float((probe_predict(train_x, train_y, test_x) == test_y).float().mean())


def probe_predict(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor) -> torch.Tensor:
    """The zoo's and the calibration's probe: logistic regression on standardised features, 300 full-batch Adam
    steps (lr 0.05, weight decay 1e-3); the test scenes' predicted classes."""
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
    with torch.no_grad():
        return head(test_x).argmax(1)
