"""pixel_shuffle and avgpool: r x r blocks of the patch grid become one token; padded patches change nothing."""
import pytest
import torch

from vlmlab.contract.errors import ConfigError
from vlmlab.model.connector import ConnectorConfig, at_visual_tokens, budget_resolution, build_connector
from vlmlab.model.grid_pool import blocks

DV, DL = 6, 16


def connector(kind, ratio):
    torch.manual_seed(0)
    return build_connector(ConnectorConfig(kind=kind, ratio=ratio, mlp_hidden_mult=2), DV, DL).eval()


def test_blocks_groups_each_r_by_r_square_of_the_grid():
    grid = torch.arange(4 * 6).float().view(1, 24, 1)  # a 4 x 6 grid, each patch's feature its row-major index
    b = blocks(grid, (4, 6), 2)  # (1, 2*3, 4, 1)
    assert b.shape == (1, 6, 4, 1)
    assert b[0, 0, :, 0].tolist() == [0, 1, 6, 7]  # top-left block: rows 0-1, cols 0-1
    assert b[0, 4, :, 0].tolist() == [14, 15, 20, 21]  # second block row, middle block
    odd = blocks(torch.ones(1, 15, 1), (3, 5), 2)  # 3 x 5 padded to 4 x 6 with zeros
    assert odd.shape == (1, 6, 4, 1) and odd.sum() == 15


@pytest.mark.parametrize("kind", ["pixel_shuffle", "avgpool"])
@pytest.mark.parametrize("ratio,tokens", [(1, 144), (2, 36), (3, 16), (4, 9), (5, 9)])
def test_tokens_per_view(kind, ratio, tokens):
    conn = connector(kind, ratio)
    out = conn(torch.randn(2, 144, DV), torch.ones(2, 144, dtype=torch.bool))
    assert out.shape == (2, tokens, DL) and conn.num_tokens(144) == tokens
    assert conn.num_tokens(12 * 7, (12, 7)) == -(-12 // ratio) * -(-7 // ratio)  # preserved aspect ratio
    with pytest.raises(ValueError, match="not a square grid"):
        conn.num_tokens(84)


def test_pixel_shuffle_keeps_every_patch_and_avgpool_averages():
    feats = torch.randn(1, 16, DV)
    shuffle, mean = connector("pixel_shuffle", 2), connector("avgpool", 2)
    first = next(m for m in shuffle.mlp.modules() if isinstance(m, torch.nn.Linear))
    assert first.in_features == 4 * DV  # r*r concatenated patch features
    with torch.no_grad():
        want = mean.mlp(blocks(feats, (4, 4), 2).mean(2))
        torch.testing.assert_close(mean(feats), want)
        swapped = feats.clone()
        swapped[0, [0, 1]] = feats[0, [1, 0]]  # two patches of one block trade places
        assert (shuffle(swapped) - shuffle(feats)).abs().max() > 1e-4  # the shuffle sees where each patch was
        torch.testing.assert_close(mean(swapped), mean(feats))  # the average does not


@pytest.mark.parametrize("kind", ["pixel_shuffle", "avgpool"])
def test_padded_patches_change_nothing(kind):
    """A 3 x 5 view padded into a 4 x 6 batch grid gives the same tokens as alone; padded tokens are masked."""
    conn = connector(kind, 2)
    real = torch.randn(1, 15, DV)
    padded = torch.full((1, 4, 6, DV), 1e3)  # garbage in the padding
    padded[0, :3, :5] = real.view(3, 5, DV)
    mask = torch.zeros(1, 4, 6, dtype=torch.bool)
    mask[0, :3, :5] = True
    with torch.no_grad():
        alone = conn(real, torch.ones(1, 15, dtype=torch.bool), grid=(3, 5))  # (1, 2*3, DL)
        batch = conn(padded.view(1, 24, DV), mask.view(1, 24), grid=(4, 6))  # (1, 2*3, DL)
    tmask = conn.token_mask(mask.view(1, 24), (4, 6))
    assert tmask.all() and batch.shape == alone.shape  # every 2 x 2 block of a 3 x 5 view holds a real patch
    torch.testing.assert_close(batch, alone)
    wide = torch.zeros(1, 4, 8, dtype=torch.bool)
    wide[0, :2, :3] = True  # a 2 x 3 view in a 4 x 8 batch grid: 1 x 2 real tokens of 2 x 4
    assert conn.token_mask(wide.view(1, 32), (4, 8)).view(2, 4).nonzero().tolist() == [[0, 0], [0, 1]]
    assert conn.num_tokens(6, (2, 3)) == 2


@pytest.mark.parametrize("kind,tokens,knob,value", [("perceiver", 36, "n_latents", 36), ("pixel_shuffle", 36, "ratio", 2),
                                                    ("avgpool", 9, "ratio", 4), ("pixel_shuffle", 16, "ratio", 3),
                                                    ("mlp", 144, "kind", "mlp")])
def test_visual_tokens_sets_each_connectors_own_knob(kind, tokens, knob, value):
    cfg = at_visual_tokens(ConnectorConfig(kind=kind, visual_tokens=tokens), 12)
    assert getattr(cfg, knob) == value
    conn = build_connector(ConnectorConfig(kind=kind, visual_tokens=tokens, depth=1, n_heads=2, head_dim=4), DV, DL, 12)
    assert conn.num_tokens(144) == tokens


def test_visual_tokens_a_connector_cannot_make_is_refused():
    with pytest.raises(ConfigError, match="allowed: 144, 36, 16, 9, 4, 1"):
        at_visual_tokens(ConnectorConfig(kind="pixel_shuffle", visual_tokens=10), 12)
    with pytest.raises(ConfigError, match="one token per patch, 144 here"):
        at_visual_tokens(ConnectorConfig(kind="mlp", visual_tokens=36), 12)
    with pytest.raises(ValueError, match="grid_side"):
        build_connector(ConnectorConfig(kind="perceiver", visual_tokens=9), DV, DL)


def test_a_connector_without_pooling_meets_a_token_budget_by_resolution():
    from vlmlab.images import ImageConfig

    square = ImageConfig()
    assert budget_resolution(square, ConnectorConfig(kind="mlp", visual_tokens=16), 8).size == 32  # 4 x 4 patches
    assert budget_resolution(square, ConnectorConfig(kind="linear", visual_tokens=4), 14).size == 28
    for image, conn in [(square, ConnectorConfig(kind="perceiver", visual_tokens=16)),  # pools: its own knob
                        (square, ConnectorConfig(kind="mlp")),  # no budget
                        (ImageConfig(size=64), ConnectorConfig(kind="mlp", visual_tokens=16)),  # explicit size kept
                        (ImageConfig(mode="preserve"), ConnectorConfig(kind="mlp", visual_tokens=16))]:
        assert budget_resolution(image, conn, 8) is image
    with pytest.raises(ConfigError, match="a square number"):
        budget_resolution(square, ConnectorConfig(kind="mlp", visual_tokens=12), 8)


def test_the_budgeted_mlp_arm_builds_and_counts_its_tokens():
    """Through the config, the model and the image pipeline: connector=mlp at 4 tokens shows 16 px views (2 x 2 patches
    of the tiny encoder) and makes 4 visual tokens per image, as the pooling connectors do at the same budget."""
    from vlmlab.config import compose
    from vlmlab.images import build_image_processor, visual_tokens_per_image
    from vlmlab.model.build import build_vlm

    for kind in ("mlp", "avgpool"):
        cfg = compose(["vision=tiny", "llm=tiny", "debug=smoke", f"connector={kind}", "connector.visual_tokens=4"])
        vlm, _ = build_vlm(cfg)
        images = build_image_processor(cfg.image, vlm.vision, cfg.vision.mean, cfg.vision.std)
        assert visual_tokens_per_image(images.cfg, images.patch_size, tokens_per_view=vlm.visual_tokens_per_view) == 4
        side = 2 * vlm.vision.patch_size if kind == "mlp" else vlm.vision.image_size
        assert images.cfg.size == side
