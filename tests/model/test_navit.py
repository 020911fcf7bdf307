"""NaViT vision encoder: equals the model's forward at native size, padding changes nothing, fractional positions."""
import pytest
import torch
from transformers import (CLIPConfig, CLIPModel, CLIPVisionConfig, CLIPVisionModel, SiglipConfig, SiglipModel,
                          SiglipVisionConfig, SiglipVisionModel)

from vlmlab.images import collate_views
from vlmlab.model.navit import VisionEncoder, fractional_position_ids, load_vision_encoder

TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32,
            patch_size=4)
ARCHS = {"siglip": (SiglipVisionConfig, SiglipVisionModel), "clip": (CLIPVisionConfig, CLIPVisionModel)}


def tiny_encoder(arch, attn="sdpa"):
    torch.manual_seed(0)
    config_cls, model_cls = ARCHS[arch]
    return VisionEncoder(model_cls(config_cls(**TINY, attn_implementation=attn)).eval())


@pytest.mark.parametrize("arch", ["siglip", "clip"])
def test_navit_path_at_native_size_equals_standard_forward(arch):
    enc = tiny_encoder(arch)
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = enc.model(pixel_values=pixels).last_hidden_state  # (2,[1+]64,32)
        ref = ref[:, 1:] if arch == "clip" else ref
        plain, plain_mask = enc(pixels)
        navit, navit_mask = enc.navit_forward(pixels, torch.ones(2, 8, 8, dtype=torch.bool))
    assert enc.hidden_size == 32 and enc.patch_size == 4 and enc.image_size == 32
    assert plain.shape == navit.shape == (2, 64, 32) and plain_mask.all() and navit_mask.all()
    torch.testing.assert_close(plain, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(navit, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch,attn", [("siglip", "sdpa"), ("siglip", "eager"), ("clip", "sdpa"), ("clip", "eager")])
def test_padding_changes_nothing(arch, attn):
    enc = tiny_encoder(arch, attn)
    small, big = torch.randn(3, 12, 24), torch.randn(3, 36, 16)  # 3x6 and 9x4 patches, neither native
    with torch.no_grad():
        alone, alone_mask = enc(small[None])  # no mask: NaViT path, every patch real
        pixels, patch_mask, _ = collate_views([small, big], enc.patch_size)  # (2,3,36,24), (2,9,6)
        batch, batch_mask = enc(pixels, patch_mask)
    assert alone.shape == (1, 18, 32) and alone_mask.all()
    assert batch.shape == (2, 54, 32) and batch_mask.sum().item() == 18 + 36
    torch.testing.assert_close(batch[0][batch_mask[0]], alone[0], atol=1e-5, rtol=0)
    with torch.no_grad():
        big_alone, _ = enc(big[None])
    torch.testing.assert_close(batch[1][batch_mask[1]], big_alone[0], atol=1e-5, rtol=0)


def test_position_ids_spread_a_small_grid_over_the_pretrained_grid():
    grid = 8
    native = fractional_position_ids(torch.ones(1, grid, grid, dtype=torch.bool), grid)
    assert torch.equal(native[0], torch.arange(grid * grid))  # native grid: the standard ids
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    mask[0, :4, :4] = True  # a half-size image padded to the batch's 8x8
    ids = fractional_position_ids(mask, grid).view(8, 8)
    expected = torch.tensor([0, 2, 4, 6])[:, None] * grid + torch.tensor([0, 2, 4, 6])[None, :]
    assert torch.equal(ids[:4, :4], expected)  # rows/columns 0,2,4,6 of the 8x8 table: spread, not the corner
    assert (ids[~mask[0]] == 0).all()
    wide = torch.ones(1, 2, 8, dtype=torch.bool)  # 1:4 grid: rows spread, columns native
    assert fractional_position_ids(wide, grid).view(2, 8)[1].tolist() == list(range(32, 40))


@pytest.mark.parametrize("arch", ["siglip", "clip"])
def test_load_vision_encoder_unwraps_dual_encoder(arch, tmp_path):
    torch.manual_seed(0)
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, vocab_size=99)
    if arch == "siglip":
        model = SiglipModel(SiglipConfig(text_config=text, vision_config=TINY))
    else:
        model = CLIPModel(CLIPConfig(text_config=text, vision_config=TINY))
    model.save_pretrained(tmp_path)
    enc = load_vision_encoder(str(tmp_path)).eval()
    assert type(enc.model).__name__ == type(model.vision_model).__name__ and enc.hidden_size == 32
    pixels = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        feats, _ = enc(pixels)
        ref = model.eval().vision_model(pixel_values=pixels).last_hidden_state
    torch.testing.assert_close(feats, ref[:, 1:] if arch == "clip" else ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ["siglip", "clip"])
def test_views_of_different_grids_are_bucketed_so_compute_follows_the_patch_count(arch):
    from torch.utils.flop_counter import FlopCounterMode

    enc = tiny_encoder(arch)
    views = [torch.randn(3, 12, 24), torch.randn(3, 36, 16), torch.randn(3, 12, 24)]  # 18 + 36 + 18 real patches
    pixels, patch_mask, _ = collate_views(views, enc.patch_size)  # padded to (3,3,36,24): 3 x 54 patches
    with torch.no_grad():
        padded, _ = enc.navit_forward(pixels, patch_mask)  # every padded patch computed, masked as a key
        with FlopCounterMode(display=False) as bucketed_flops:
            bucketed, mask = enc(pixels, patch_mask)
        with FlopCounterMode(display=False) as padded_flops:
            enc.navit_forward(pixels, patch_mask)
    torch.testing.assert_close(bucketed[mask], padded[mask], atol=1e-5, rtol=0)
    assert (bucketed[~mask] == 0).all()
    real, total = int(patch_mask.sum()), patch_mask.numel()
    assert (real, total) == (72, 162)
    ratio = bucketed_flops.get_total_flops() / padded_flops.get_total_flops()
    assert ratio < 0.5 and abs(ratio - real / total) < 0.1, ratio  # ~ the share of real patches
    pixels.requires_grad_(True)
    out, mask = enc(pixels, patch_mask)
    out[mask].sum().backward()
    assert pixels.grad is not None and pixels.grad[0, :, :12, :24].abs().sum() > 0
