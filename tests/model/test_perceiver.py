"""Connectors: token counts, shapes, and that padded patches change nothing in the perceiver's output."""
import pytest
import torch

from vlmlab.model.connector import ConnectorConfig, build_connector

DV, DL = 24, 32


def perceiver(projection="mlp", n_latents=5, resampler_mlp="swiglu"):
    torch.manual_seed(0)
    cfg = ConnectorConfig(kind="perceiver", n_latents=n_latents, depth=2, n_heads=4, head_dim=8,
                          projection=projection, mlp_hidden_mult=2, resampler_mlp=resampler_mlp)
    return build_connector(cfg, DV, DL).eval()


@pytest.mark.parametrize("projection,width", [("mlp", DL), ("linear", DL), ("none", DV)])
@pytest.mark.parametrize("resampler_mlp", ["swiglu", "relu"])
def test_perceiver_yields_n_latents_tokens(projection, width, resampler_mlp):
    conn = perceiver(projection, n_latents=7, resampler_mlp=resampler_mlp)
    out = conn(torch.randn(3, 10, DV), torch.ones(3, 10, dtype=torch.bool))
    assert out.shape == (3, 7, width) and conn.out_dim == width
    assert conn.num_tokens(10) == conn.num_tokens(1000) == 7
    assert conn(torch.randn(2, 4, DV), None).shape == (2, 7, width)  # no mask: every patch is real


def test_idefics1_layout_has_idefics1_parameter_count():
    """projection=none + resampler_mlp=relu: per layer q/k/v/out (4 D x inner... here inner = heads x head_dim),
    a 2-matrix MLP of mult x D, three norms; no projection at all. Counted against the formula."""
    conn = perceiver("none", n_latents=7, resampler_mlp="relu")
    inner, hidden = 4 * 8, 2 * DV
    per_layer = 4 * DV * inner + 2 * DV * hidden + 3 * DV
    assert sum(p.numel() for p in conn.parameters()) == 7 * DV + 2 * per_layer + DV
    assert not any(p.numel() for p in conn.proj.parameters())
    swiglu = perceiver("none", n_latents=7)
    assert sum(p.numel() for p in swiglu.parameters()) - sum(p.numel() for p in conn.parameters()) == 2 * DV * hidden


def test_padded_patches_change_nothing():
    conn = perceiver()
    a, b = torch.randn(1, 6, DV), torch.randn(1, 10, DV)  # two images with 6 and 10 real patches
    with torch.no_grad():
        alone = torch.cat([conn(a, None), conn(b, None)])  # (2, n, DL), each image unpadded
        feats = torch.full((2, 16, DV), 1e3)  # padding holds large garbage
        feats[0, :6], feats[1, :10] = a[0], b[0]
        mask = torch.zeros(2, 16, dtype=torch.bool)
        mask[0, :6], mask[1, :10] = True, True
        padded = conn(feats, mask)
        unmasked = conn(feats, None)
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=1e-5)
    assert (unmasked - alone).abs().max() > 1e-2  # the mask is what removes the padding


@pytest.mark.parametrize("kind,act", [("linear", "swiglu"), ("mlp", "swiglu"), ("mlp", "gelu")])
def test_no_pooling_connectors_keep_every_patch(kind, act):
    conn = build_connector(ConnectorConfig(kind=kind, mlp_act=act, mlp_hidden_mult=2), DV, DL)
    feats = torch.randn(2, 9, DV)
    assert conn.num_tokens(9) == 9
    out = conn(feats, torch.zeros(2, 9, dtype=torch.bool))  # mask is ignored
    assert out.shape == (2, 9, DL)
    torch.testing.assert_close(out, conn(feats, None))


def test_perceiver_trains_end_to_end():
    conn = perceiver().train()
    conn(torch.randn(2, 6, DV), torch.ones(2, 6, dtype=torch.bool)).square().mean().backward()
    assert conn.resampler.latents.grad.abs().sum() > 0
    assert all(p.grad is not None for p in conn.parameters())


def test_unknown_kind_is_rejected():
    with pytest.raises(ValueError, match="allowed: linear, mlp, perceiver"):
        build_connector(ConnectorConfig(kind="qformer"), DV, DL)
    with pytest.raises(ValueError, match="swiglu, gelu"):
        build_connector(ConnectorConfig(kind="mlp", mlp_act="relu"), DV, DL)
    with pytest.raises(ValueError, match="allowed: mlp, linear, none"):
        build_connector(ConnectorConfig(projection="swiglu"), DV, DL)
    with pytest.raises(ValueError, match="allowed: swiglu, relu"):
        build_connector(ConnectorConfig(resampler_mlp="gelu"), DV, DL)
