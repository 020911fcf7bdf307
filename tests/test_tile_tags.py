"""image.tile_tags (F9): text tags before each split view's tokens, or a learned embedding per view position."""
import pytest
import torch

from vlmlab.config import compose
from vlmlab.contract.errors import ConfigError
from vlmlab.data import Processor, TaskDataset, collate
from vlmlab.images import ImageConfig, build_image_processor, tile_positions, tile_tag
from vlmlab.model.build import build_vlm
from vlmlab.world.tasks import load_mixture

TINY = ["vision=tiny", "llm=tiny", "debug=smoke", "image=split", "image.split_eval=true"]


def setup(tags, fusion="autoregressive"):
    cfg = compose(TINY + [f"image.tile_tags={tags}", f"fusion={fusion}"])
    vlm, tok = build_vlm(cfg)
    images = build_image_processor(cfg.image, vlm.vision, cfg.vision.mean, cfg.vision.std)
    proc = Processor(tok, vlm.ids, images, vlm.visual_tokens_per_view, cfg.fusion.kind, 512)
    ds = TaskDataset(load_mixture(cfg.data, "train"), proc, train=False, with_answer=True)  # eval: every image split
    return vlm, tok, proc, ds


def test_view_positions_and_tags():
    assert tile_positions(torch.tensor([5, 1, 5])).tolist() == [1, 2, 3, 4, 0, 0, 1, 2, 3, 4, 0]
    assert [tile_tag(k, 5) for k in range(5)] == ["<tile_1>", "<tile_2>", "<tile_3>", "<tile_4>", "<tile_global>"]
    with pytest.raises(ConfigError, match="allowed: none, text, learned"):
        ImageConfig(split=2, tile_tags="rows")
    with pytest.raises(ConfigError, match="image.split >= 2"):
        ImageConfig(split=0, tile_tags="text")


def test_text_tags_precede_each_views_tokens():
    vlm, tok, proc, ds = setup("text")
    plain = setup("none")[3][0].input_ids  # the same sample without tags
    ids = ds[0].input_ids
    text = tok.decode(ids)
    for k in range(5):
        assert tile_tag(k, 5) in text
    assert text.index("<tile_1>") < text.index("<tile_2>") < text.index("<tile_global>")
    tag_ids = sum(len(tok("<tile_%d>" % (k + 1), add_special_tokens=False).input_ids) for k in range(4))
    tag_ids += len(tok("<tile_global>", add_special_tokens=False).input_ids)
    assert len(ids) == len(plain) + tag_ids  # the tags are the only difference
    assert [i for i in ids if i == vlm.ids.image] == [i for i in plain if i == vlm.ids.image]
    unsupervised = sum(label == -100 for label in ds[0].labels)
    plain_unsupervised = sum(label == -100 for label in setup("none")[3][0].labels)
    assert unsupervised == plain_unsupervised + tag_ids  # the tags sit in the prompt, which carries no loss


def test_learned_positions_change_each_views_tokens_and_train():
    vlm, _, proc, ds = setup("learned")
    assert vlm.tile_embed.num_embeddings == 5 and vlm.tile_embed.weight.requires_grad
    batch = collate([ds[i] for i in range(2)], proc.ids.pad, proc.images.patch_size)
    vlm.eval()
    with torch.no_grad():
        before = vlm(**batch)[1]
        vlm.tile_embed.weight.normal_(0, 0.5)
        after = vlm(**batch)[1]
    assert (after - before).abs().max() > 1e-3  # zero-initialised: a no-op until it learns
    vlm.train()
    loss, _ = vlm(**batch, return_logits=False)
    loss.backward()
    assert vlm.tile_embed.weight.grad.abs().sum() > 0


def test_learned_positions_with_cross_attention_and_text_tags_refused_there():
    vlm, _, proc, ds = setup("learned", "cross_attention")
    batch = collate([ds[i] for i in range(2)], proc.ids.pad, proc.images.patch_size)
    loss, _ = vlm(**batch, return_logits=False)
    assert torch.isfinite(loss)
    with pytest.raises(ConfigError, match="not allowed with fusion=cross_attention"):
        setup("text", "cross_attention")
