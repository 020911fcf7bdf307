"""Image handling for the `image=square|preserve|split` axis (paper finding F5, F6).

An image becomes a list of *views*, each a normalised float tensor (3, H, W):
  square    every view resized to S x S (the classic fixed-resolution encoder input).
  preserve  aspect ratio kept, long side <= max_size and short side >= min_size, both sides rounded to a
            multiple of the patch size (NaViT / Idefics2); the batch pads views and masks padded patches.
  split     n x n crops (row-major) followed by the whole image, each resized by the rule above, so n=2 gives
            5 views and 5x the visual tokens (the order of transformers' Idefics2 image processor).
  blind     (`image.blind=true`, with any mode) the blind control: the picture is replaced by a uniform one of the
            same size at the normalisation mean before any of the above, in training and evaluation, so the model
            is the same recipe with the image's information removed (its views, tokens and compute unchanged).

Grain (`grain`, the world's `data.grain`; 0 = none, world v2): Gaussian grain of that SD in grey levels on every
view the encoder sees, added after the view's resize and before normalisation, so a whole picture and a split crop
carry the same grain per encoder pixel (canvas grain would be averaged away by the larger shrink of the whole
picture: calibration/grain_placement.yaml, docs/world.md). It is fixed per view: seeded by the resized view's own
pixels, so the same picture gives the same views in every epoch, seed and process, and the feature store's keys
repeat.

Which training samples are split is decided by a hash of the sample id, not by the run's RNG: the same
samples are split every epoch and under every seed, so two seeds of a run see the same split samples and
their difference measures training noise only. At evaluation `split_eval` applies to every sample.

The view store (`ViewStore`, `vision.view_store_mb`; on by default): a picture's views are a pure function of its
file's bytes, the pipeline's settings and whether it is split, so they are made once per machine and read back as
uint8 pixels afterwards, skipping the decode, the resizes and the grain (at 720-960-px canvases with grain those
cost ~7 ms a sample unsplit and ~13 ms split, paid on every load; read from the store, 0.2 and 0.6 ms:
results/bench_views.csv). A picture passed undecoded (a `datasets.Image(decode=False)` value, as
`undecoded` leaves a dataset) is keyed by a hash of (VIEWS_VERSION, Pillow's and NumPy's versions, the settings that
make the pixels, the split flag, the file's bytes); a decoded PIL picture always runs the pipeline. The normalisation
runs after the store on every load, so a run with the store equals a run without it bit for bit
(tests/test_view_store.py).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
import PIL
from PIL import Image

from vlmlab.contract.errors import ConfigError
from vlmlab.contract.schema import knob
from vlmlab.view_store import ViewStore, decode, image_bytes


TILE_TAGS = ("none", "text", "learned")
VIEWS_VERSION = "1"  # bump when the code changes the pixels a setting makes (resize, crops, grain): the view store keys on it


def tile_tag(view: int, views: int) -> str:
    """NVLM-style text tag of view `view` of `views` (crops first, the whole image last)."""
    return "<tile_global>" if view == views - 1 else f"<tile_{view + 1}>"


def tile_positions(views_per_image: torch.Tensor) -> torch.Tensor:
    """(I,) views of each image, in order -> (sum,) each view's position: 0 for an image's last (whole) view,
    k for its k-th crop (1-based); an unsplit image's one view is its whole image, 0."""
    starts = views_per_image.cumsum(0) - views_per_image
    rank = torch.arange(int(views_per_image.sum()), device=views_per_image.device) - starts.repeat_interleave(views_per_image)
    count = views_per_image.repeat_interleave(views_per_image)
    return torch.where(rank == count - 1, torch.zeros_like(rank), rank + 1)


@dataclass
class ImageConfig:
    mode: str = "square"                # square | preserve
    size: Optional[int] = knob(None, ge=1)  # square: side S of every view (None = the encoder's native resolution)
    min_size: Optional[int] = knob(None, ge=1)  # preserve: the short side is raised to at least this (None = native / 2)
    max_size: Optional[int] = knob(None, ge=1)  # preserve: the long side is capped at this (None = native)
    split: int = knob(0, ge=0)          # n: 0 or 1 = off, n >= 2 = n x n crops + the whole image
    split_train_fraction: float = knob(0.5, ge=0.0, le=1.0)  # share of training samples that are split (by hash of id)
    split_eval: bool = True             # split every image at evaluation (when split >= 2)
    tile_tags: str = "none"             # split views' positions: none | text (NVLM's tile tags) | learned (per-view embedding)
    blind: bool = False                 # the blind control: every picture, in training and evaluation, replaced by a
                                        # uniform one of its size at the normalisation mean (same views, tokens, compute)
    mean: Optional[list[float]] = knob(None, length=3)  # per-channel normalisation mean (None = the vision config's, else 0.5)
    std: Optional[list[float]] = knob(None, gt=0, length=3)  # per-channel normalisation std (None = the vision config's, else 0.5)

    def __post_init__(self):
        if self.mode not in ("square", "preserve"):
            raise ConfigError(f"image.mode={self.mode!r} is not allowed; allowed: square, preserve")
        if self.tile_tags not in TILE_TAGS:
            raise ConfigError(f"image.tile_tags={self.tile_tags!r} is not allowed; allowed: {', '.join(TILE_TAGS)}")
        if self.tile_tags != "none" and self.split < 2:
            raise ConfigError(f"image.tile_tags={self.tile_tags} is not allowed with image.split={self.split}; "
                              "allowed: tile tags with image.split >= 2 (they name the split views)")
        if self.min_size is not None and self.max_size is not None and not 0 < self.min_size <= self.max_size:
            raise ConfigError(f"image: need 0 < min_size ({self.min_size}) <= max_size ({self.max_size})")

    def resolved(self, native: int, mean: Optional[list[float]] = None,
                 std: Optional[list[float]] = None) -> "ImageConfig":
        """A copy with every None filled in from the encoder: its native resolution and normalisation."""
        return dataclasses.replace(
            self, size=self.size or native, max_size=self.max_size or native,
            min_size=self.min_size or max(1, native // 2),
            mean=list(self.mean or mean or [0.5, 0.5, 0.5]), std=list(self.std or std or [0.5, 0.5, 0.5]))


def split_boxes(width: int, height: int, n: int) -> list[tuple[int, int, int, int]]:
    """(left, top, right, bottom) of n x n crops, row-major, tiling the image exactly (no overlap, no gap)."""
    xs = [round(i * width / n) for i in range(n + 1)]
    ys = [round(i * height / n) for i in range(n + 1)]
    return [(xs[c], ys[r], xs[c + 1], ys[r + 1]) for r in range(n) for c in range(n)]


def add_view_grain(view: np.ndarray, sd: float) -> np.ndarray:
    """(H, W, 3) uint8 view -> the same with Gaussian grain of `sd` grey levels on every pixel and channel, rounded
    and clipped; the grain is drawn from a hash of the view's shape and pixels, so a view always gets the same grain."""
    if sd <= 0:
        return view
    digest = hashlib.blake2b(str(view.shape).encode() + np.ascontiguousarray(view).tobytes(), digest_size=8).digest()
    grain = np.random.default_rng(int.from_bytes(digest, "big")).normal(0.0, sd, view.shape)
    return np.clip(np.rint(view.astype(np.float64) + grain), 0, 255).astype(np.uint8)


def split_hash_fraction(sample_id: str) -> float:
    """A stable number in [0, 1) for a sample id (same on every machine, epoch and seed)."""
    return int.from_bytes(hashlib.sha1(sample_id.encode()).digest()[:8], "big") / 2**64


class ImageProcessor:
    """A picture (PIL, or undecoded for the view store) -> list of views (3, H, W); see the module docstring."""

    def __init__(self, cfg: ImageConfig, patch_size: int, grain: float = 0.0, store: ViewStore | None = None):
        if grain < 0:
            raise ConfigError(f"grain={grain} is not allowed; allowed: an SD in grey levels >= 0 (0 = none)")
        self.grain = float(grain)
        need = ("size",) if cfg.mode == "square" else ("min_size", "max_size")
        if any(getattr(cfg, k) is None for k in need):
            raise ValueError(f"image.{'/'.join(need)} unset: resolve it first (ImageConfig.resolved(native_size))")
        cfg = dataclasses.replace(cfg, mean=cfg.mean or [0.5] * 3, std=cfg.std or [0.5] * 3)
        self.cfg, self.patch_size = cfg, patch_size
        if cfg.mode == "square" and cfg.size % patch_size:
            raise ConfigError(f"image.size={cfg.size} is not allowed with this encoder; allowed: a multiple of its "
                              f"patch size {patch_size}")
        if cfg.mode == "preserve" and cfg.max_size < patch_size:
            raise ConfigError(f"image.max_size={cfg.max_size} is not allowed with this encoder; allowed: at least its "
                              f"patch size {patch_size}")
        self.mean = torch.tensor(cfg.mean, dtype=torch.float32).view(3, 1, 1)  # (3,1,1)
        self.std = torch.tensor(cfg.std, dtype=torch.float32).view(3, 1, 1)    # (3,1,1)
        self.store = store
        pixels = {k: getattr(cfg, k) for k in ("mode", "size", "min_size", "max_size", "split", "blind", "mean")}
        self.pipeline = json.dumps({"views": VIEWS_VERSION, "pillow": PIL.__version__, "numpy": np.__version__,
                                    "patch": patch_size, "grain": self.grain, **pixels}, sort_keys=True).encode()

    def view_size(self, width: int, height: int) -> tuple[int, int]:
        """(W, H) a view of a width x height picture is resized to."""
        if self.cfg.mode == "square":
            return self.cfg.size, self.cfg.size
        p, lo_side, hi_side = self.patch_size, self.cfg.min_size, self.cfg.max_size
        long, short = max(width, height), min(width, height)
        scale = min(1.0, hi_side / long)           # shrink only when too large (no upscaling past need)
        scale = max(scale, lo_side / short)        # raise the short side to min_size
        # Extreme ratios (long/short > max/min) cannot keep their ratio: long is capped at max, short held at min.
        lo = math.ceil(lo_side / p) * p
        hi = max(lo, hi_side // p * p)

        def fit(side: int) -> int:
            return min(hi, max(lo, round(side * scale / p) * p))

        return fit(width), fit(height)

    def view_pixels(self, image: Image.Image, width: int, height: int) -> np.ndarray:
        """The view's (H, W, 3) uint8 pixels: resized, with the world's grain (what the view store keeps)."""
        view = np.asarray(image.convert("RGB").resize((width, height), Image.BICUBIC))  # (H,W,3) uint8
        return add_view_grain(view, self.grain)

    def normalise(self, view: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 -> the encoder's (3, H, W) float input."""
        x = torch.from_numpy(view.astype(np.float32) / 255.0).permute(2, 0, 1)  # (3,H,W)
        return (x - self.mean) / self.std  # (3,H,W)

    def should_split(self, sample_id: str | None, train: bool) -> bool:
        """Split this sample? Training: a fixed, hash-chosen share of samples; evaluation: `split_eval`."""
        if self.cfg.split < 2:
            return False
        if not train:
            return self.cfg.split_eval
        if sample_id is None:
            raise ValueError("training with image.split needs the sample id to choose which samples split")
        return split_hash_fraction(sample_id) < self.cfg.split_train_fraction

    def pictures(self, image: Image.Image, split: bool) -> list[Image.Image]:
        """The pictures that become views: the image, or its n x n crops followed by the whole image."""
        if not split:
            return [image]
        return [image.crop(box) for box in split_boxes(*image.size, self.cfg.split)] + [image]

    def make_views(self, image: Image.Image, split: bool) -> list[np.ndarray]:
        """A decoded picture's views as (H, W, 3) uint8 pixels, before normalisation."""
        image = image.convert("RGB")
        if self.cfg.blind:  # no information left, every shape and token count kept
            image = Image.new("RGB", image.size, tuple(round(255 * m) for m in self.cfg.mean))
        return [self.view_pixels(pic, *self.view_size(*pic.size)) for pic in self.pictures(image, split)]

    def __call__(self, image: Image.Image | dict, sample_id: str | None = None,
                 train: bool = False) -> list[torch.Tensor]:
        """A picture (PIL, or a datasets Image value left undecoded: {"bytes", "path"}) -> its views (3, H, W)."""
        split = self.should_split(sample_id, train)
        if not isinstance(image, dict) or self.store is None:
            picture = decode(image) if isinstance(image, dict) else image
            return [self.normalise(v) for v in self.make_views(picture, split)]
        data = image_bytes(image)
        keys = self.store.keys(self.pipeline, split, data, self.cfg.split ** 2 + 1 if split else 1)
        found = self.store.get(keys)
        if len(found) == len(keys):
            self.store.hits += 1
            return [self.normalise(found[k].numpy()) for k in keys]
        views = self.make_views(decode(image, data), split)
        self.store.put({k: torch.from_numpy(np.array(v)) for k, v in zip(keys, views)})
        self.store.misses += 1
        return [self.normalise(v) for v in views]


def collate_views(views: Sequence[torch.Tensor], patch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad a flat list of views (all samples' views, in order) to the batch's largest H and W.

    Returns pixel_values (N, 3, Hmax, Wmax) zero-padded at the bottom/right, patch_mask
    (N, Hmax/p, Wmax/p) bool with True on real patches, and sizes (N, 2) long = each view's (H, W).
    """
    sizes = torch.tensor([tuple(v.shape[1:]) for v in views], dtype=torch.long)  # (N,2)
    if (sizes % patch_size).any():
        raise ValueError(f"view sizes {sizes.tolist()} are not multiples of the patch size {patch_size}")
    h_max, w_max = sizes.max(0).values.tolist()
    pixel_values = torch.stack([F.pad(v, (0, w_max - v.shape[2], 0, h_max - v.shape[1])) for v in views])  # (N,3,Hmax,Wmax)
    rows = torch.arange(h_max // patch_size)  # (h,)
    cols = torch.arange(w_max // patch_size)  # (w,)
    grid = sizes // patch_size  # (N,2) real patches per side
    patch_mask = (rows[None, :, None] < grid[:, 0, None, None]) & (cols[None, None, :] < grid[:, 1, None, None])  # (N,h,w)
    return pixel_values, patch_mask, sizes


def visual_tokens_per_image(cfg: ImageConfig, patch_size: int, image_size: tuple[int, int] | None = None,
                            split: bool | None = None,
                            tokens_per_view: Callable[[int, tuple[int, int]], int] | None = None) -> int:
    """Visual tokens one image of `image_size` (W, H) yields: the sum over its views of tokens_per_view(patches).

    `tokens_per_view` maps a view's patch count P and grid (rows, cols) to its token count (e.g.
    `VLM.visual_tokens_per_view`); default
    identity (no pooling). `split` defaults to whether evaluation splits; square mode needs no image_size.
    """
    proc = ImageProcessor(cfg, patch_size)
    if split is None:
        split = proc.should_split(None, train=False)
    width, height = image_size or (cfg.size, cfg.size)
    n = cfg.split if split and cfg.split >= 2 else 1
    sizes = [(r - l, b - t) for l, t, r, b in split_boxes(width, height, n)] if n > 1 else []
    sizes.append((width, height))  # the whole image is always a view
    tokens = 0
    for w, h in sizes:
        vw, vh = proc.view_size(w, h)
        patches = (vw // patch_size) * (vh // patch_size)
        tokens += tokens_per_view(patches, (vh // patch_size, vw // patch_size)) if tokens_per_view else patches
    return tokens


def build_image_processor(cfg: ImageConfig, encoder, mean: Optional[list[float]] = None,
                          std: Optional[list[float]] = None, grain: float = 0.0,
                          store: ViewStore | None = None) -> ImageProcessor:
    """The image pipeline for an encoder (anything with `image_size` and `patch_size`): unset sizes come from
    its native resolution, unset normalisation from `mean` / `std` (the vision config's), else 0.5; `grain` is the
    world's (data.grain); `store` the view store for undecoded pictures."""
    return ImageProcessor(cfg.resolved(encoder.image_size, mean, std), encoder.patch_size, grain, store)
