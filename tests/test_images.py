"""Image handling: square / preserve sizes, splitting, the hash-chosen split share, collate masks, token counts."""
import numpy as np
import pytest
import torch
from PIL import Image

from vlmlab.images import (ImageConfig, ImageProcessor, collate_views, split_boxes, split_hash_fraction,
                           visual_tokens_per_image)

P = 4  # patch size


def picture(w, h, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_square_gives_s_by_s_and_normalises():
    proc = ImageProcessor(ImageConfig(mode="square", size=32), P)
    for w, h in [(10, 30), (50, 20), (32, 32)]:
        (view,) = proc(picture(w, h))
        assert view.shape == (3, 32, 32)
    (white,) = proc(Image.new("RGB", (7, 9), (255, 255, 255)))
    assert torch.allclose(white, torch.ones_like(white))  # (1 - 0.5) / 0.5


@pytest.mark.parametrize("w,h", [(30, 90), (90, 30), (200, 600), (600, 200), (40, 50), (8, 12)])
def test_preserve_keeps_ratio_within_bounds_and_patch_multiples(w, h):
    cfg = ImageConfig(mode="preserve", min_size=16, max_size=64)
    (view,) = ImageProcessor(cfg, P)(picture(w, h))
    H, W = view.shape[1:]
    assert H % P == 0 and W % P == 0
    assert max(H, W) <= cfg.max_size and min(H, W) >= cfg.min_size
    # rounding each side to a patch multiple moves it by at most P/2: bound the ratio error by that
    assert abs(W / H - w / h) / (w / h) <= P / min(H, W) + 1e-9
    if max(w, h) <= cfg.max_size and min(w, h) >= cfg.min_size:  # already in bounds: not resized beyond rounding
        assert abs(W - w) <= P / 2 and abs(H - h) <= P / 2


def test_preserve_extreme_ratio_caps_long_and_holds_short():
    proc = ImageProcessor(ImageConfig(mode="preserve", min_size=16, max_size=64), P)
    assert proc.view_size(1000, 50) == (64, 16)  # 20:1 > max/min: long at max, short at min
    assert proc.view_size(50, 1000) == (16, 64)


def test_split_boxes_tile_the_image():
    img = picture(37, 23)
    boxes = split_boxes(37, 23, 2)
    assert len(boxes) == 4 and sum((r - l) * (b - t) for l, t, r, b in boxes) == 37 * 23
    canvas = Image.new("RGB", img.size)
    for box in boxes:
        canvas.paste(img.crop(box), box[:2])
    assert np.array_equal(np.asarray(canvas), np.asarray(img))


@pytest.mark.parametrize("mode", ["square", "preserve"])
def test_split_gives_crops_plus_whole_image(mode):
    cfg = ImageConfig(mode=mode, size=32, min_size=8, max_size=64, split=2, split_eval=True)
    proc = ImageProcessor(cfg, P)
    img = picture(48, 32)
    views = proc(img, train=False)
    assert len(views) == 5
    (whole,) = ImageProcessor(ImageConfig(mode=mode, size=32, min_size=8, max_size=64), P)(img)
    assert torch.equal(views[-1], whole)  # the whole image comes last
    if mode == "preserve":
        assert [tuple(v.shape[1:]) for v in views[:4]] == [(16, 24)] * 4
    assert len(ImageProcessor(ImageConfig(size=32, split=2, split_eval=False), P)(img, train=False)) == 1


def test_split_choice_is_hash_based_and_stable():
    proc = ImageProcessor(ImageConfig(size=32, split=2, split_train_fraction=0.5), P)
    ids = [f"vqa-{i}" for i in range(2000)]
    chosen = [proc.should_split(i, train=True) for i in ids]
    assert chosen == [proc.should_split(i, train=True) for i in ids]  # same every epoch
    assert abs(np.mean(chosen) - 0.5) < 0.05
    assert all(0 <= split_hash_fraction(i) < 1 for i in ids[:50])
    assert not any(ImageProcessor(ImageConfig(size=32, split=2, split_train_fraction=0.0), P).should_split(i, True) for i in ids)
    assert all(ImageProcessor(ImageConfig(size=32, split=2, split_train_fraction=1.0), P).should_split(i, True) for i in ids)
    assert not ImageProcessor(ImageConfig(size=32, split=0, split_train_fraction=1.0), P).should_split("a", True)


def test_collate_masks_exactly_the_padded_patches():
    views = [torch.randn(3, 8, 12), torch.randn(3, 16, 8), torch.randn(3, 4, 4)]
    pixel_values, patch_mask, sizes = collate_views(views, P)
    assert pixel_values.shape == (3, 3, 16, 12) and patch_mask.shape == (3, 4, 3)
    assert sizes.tolist() == [[8, 12], [16, 8], [4, 4]]
    for v, pv, m in zip(views, pixel_values, patch_mask):
        h, w = v.shape[1] // P, v.shape[2] // P
        expected = torch.zeros_like(m)
        expected[:h, :w] = True
        assert torch.equal(m, expected)
        assert torch.equal(pv[:, : v.shape[1], : v.shape[2]], v)
        pad = torch.ones_like(pv, dtype=torch.bool)
        pad[:, : v.shape[1], : v.shape[2]] = False
        assert not pv[pad].any()  # zero padding
    with pytest.raises(ValueError):
        collate_views([torch.randn(3, 6, 8)], P)


def test_visual_tokens_per_image():
    square = ImageConfig(mode="square", size=32)
    assert visual_tokens_per_image(square, P) == 64
    assert visual_tokens_per_image(ImageConfig(mode="square", size=32, split=2), P) == 5 * 64
    assert visual_tokens_per_image(ImageConfig(mode="square", size=32, split=2), P, tokens_per_view=lambda n, grid: 16) == 80
    preserve = ImageConfig(mode="preserve", min_size=8, max_size=64)
    assert visual_tokens_per_image(preserve, P, image_size=(48, 32)) == 12 * 8
    assert visual_tokens_per_image(ImageConfig(mode="preserve", min_size=8, max_size=64, split=2), P,
                                   image_size=(48, 32)) == 12 * 8 + 4 * 6 * 4


def test_grain_zero_leaves_the_views_as_they_were():
    img = picture(50, 30, seed=3)
    for cfg in (ImageConfig(size=32), ImageConfig(size=32, split=2)):
        plain, zero = ImageProcessor(cfg, P)(img), ImageProcessor(cfg, P, grain=0.0)(img)
        assert all(torch.equal(a, b) for a, b in zip(plain, zero))


def test_grain_is_fixed_per_view_and_differs_between_views():
    """The same picture gets the same grain in every call and processor (the feature store's keys repeat); each
    view draws its own, and another picture another."""
    cfg = ImageConfig(size=32, split=2)
    img = picture(64, 48, seed=1)
    first, again = ImageProcessor(cfg, P, grain=8.0)(img), ImageProcessor(cfg, P, grain=8.0)(img)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    clean = ImageProcessor(cfg, P)(img)
    noise = [(g - c) * 0.5 * 255 for g, c in zip(first, clean)]  # back to grey levels (std 0.5)
    assert not torch.equal(noise[0], noise[1])
    other = ImageProcessor(cfg, P, grain=8.0)(picture(64, 48, seed=2))[0] - ImageProcessor(cfg, P)(picture(64, 48, seed=2))[0]
    assert not torch.allclose(other * 0.5 * 255, noise[0])


def test_grain_has_its_sd_in_every_view_whole_picture_and_crop_alike():
    """Grain goes on after the resize: a whole 480-px picture shrunk 15x and a crop shrunk 7.5x carry the same SD
    per encoder pixel (canvas grain would be averaged down by each view's own shrink)."""
    proc = ImageProcessor(ImageConfig(size=32, split=2), P, grain=8.0)
    views = proc(Image.new("RGB", (480, 480), (128, 128, 128)))
    assert len(views) == 5
    for v in views:
        sd = float((v * 0.5 * 255).std())
        assert 7.2 < sd < 8.8
    blind = ImageProcessor(ImageConfig(size=32, blind=True), P, grain=8.0)
    assert torch.equal(blind(picture(40, 40, 1))[0], blind(picture(40, 40, 2))[0])  # no information, same grain


def test_negative_grain_is_refused():
    from vlmlab.contract.errors import ConfigError
    with pytest.raises(ConfigError, match="grain"):
        ImageProcessor(ImageConfig(size=32), P, grain=-1.0)
