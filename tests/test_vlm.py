"""The fully-autoregressive VLM: placeholder splice, label masks, one-batch overfitting, seed determinism."""
import torch

from vlmlab.config import compose
from vlmlab.data import Processor, TaskDataset, collate
from vlmlab.images import build_image_processor
from vlmlab.model.build import build_vlm
from vlmlab.world.tasks import load_mixture

TINY = ["vision=tiny", "llm=tiny", "debug=smoke"]


def setup(overrides=(), seed=0):
    cfg = compose(TINY + list(overrides))
    vlm, tok = build_vlm(cfg, seed=seed)
    images = build_image_processor(cfg.image, vlm.vision, cfg.vision.mean, cfg.vision.std)
    proc = Processor(tok, vlm.ids, images, vlm.visual_tokens_per_view, cfg.fusion.kind, 512)
    ds = TaskDataset(load_mixture(cfg.data, "train"), proc, train=True, with_answer=True)
    return cfg, vlm, proc, ds


def batch_of(ds, proc, n=4):
    return collate([ds[i] for i in range(n)], proc.ids.pad, proc.images.patch_size)


def test_image_tokens_replace_the_placeholders_and_carry_no_loss():
    cfg, vlm, proc, ds = setup(["connector=perceiver"])
    batch = batch_of(ds, proc)
    slots = batch["input_ids"] == vlm.ids.image
    T = cfg.connector.n_latents
    assert (slots.sum(1) == T).all()  # one view per image, n_latents tokens each
    for row in batch["input_ids"]:  # framed by <fake_token_around_image> on both sides
        pos = (row == vlm.ids.image).nonzero().flatten()
        assert row[pos[0] - 1] == vlm.ids.fake and row[pos[-1] + 1] == vlm.ids.fake
        assert (pos[1:] - pos[:-1] == 1).all()
    assert (batch["labels"][slots] == -100).all()
    assert (batch["labels"][batch["input_ids"] == vlm.ids.fake] == -100).all()
    # the embeddings at the slots are exactly the visual tokens, in order; elsewhere the text embeddings
    emb = vlm.prepare(batch["input_ids"], batch["pixel_values"], batch["patch_mask"], batch["view_to_sample"])
    tokens, _ = vlm.encode_images(batch["pixel_values"], batch["patch_mask"])
    assert torch.allclose(emb[slots], tokens.reshape(-1, tokens.shape[-1]))
    text = vlm.embed(batch["input_ids"])
    assert torch.equal(emb[~slots], text[~slots])
    # the answer (and only it, with </s>) is supervised
    for b in range(len(batch["labels"])):
        sup = batch["labels"][b] != -100
        assert sup.any() and batch["input_ids"][b][sup][-1] == vlm.ids.eos


def test_no_pooling_gives_one_token_per_patch():
    cfg, vlm, proc, ds = setup(["connector=mlp"])
    batch = batch_of(ds, proc, 2)
    patches = (proc.images.cfg.size // vlm.vision.patch_size) ** 2
    assert ((batch["input_ids"] == vlm.ids.image).sum(1) == patches).all()
    loss, _ = vlm(**batch)
    assert torch.isfinite(loss)


def test_loss_falls_when_overfitting_one_batch():
    cfg, vlm, proc, ds = setup(["trainable=full"])
    batch = batch_of(ds, proc)
    opt = torch.optim.AdamW([p for p in vlm.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(40):
        loss, _ = vlm(**batch)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses


def test_frozen_backbones_get_no_gradients_but_new_tokens_do():
    cfg, vlm, proc, ds = setup(["trainable=frozen"])
    loss, _ = vlm(**batch_of(ds, proc, 2))
    loss.backward()
    assert all(p.grad is None for p in vlm.vision.parameters())
    assert all(p.grad is None for p in vlm.llm.parameters())
    assert vlm.vlm_embed.weight.grad is not None and vlm.vlm_embed.weight.grad.abs().sum() > 0
    assert any(p.grad is not None for p in vlm.connector.parameters())


def test_cross_attention_context_keeps_each_image_apart():
    cfg, vlm, proc, ds = setup(["fusion=cross_attention"])
    from vlmlab.data import collate as collate_fn
    a, b = ds[0], ds[1]
    two = type(a)(a.input_ids + b.input_ids[1:], a.labels + b.labels[1:], a.views + b.views, [0] * len(a.views)
                  + [1] * len(b.views))  # one sample showing two images, as a 1-shot prompt does
    batch = collate_fn([two, ds[2]], vlm.ids.pad, proc.images.patch_size)
    tokens, tmask = vlm.encode_images(batch["pixel_values"], batch["patch_mask"])
    states, mask, t2i = vlm._images_per_sample(tokens, tmask, batch["view_to_sample"], batch["view_to_image"],
                                               batch["input_ids"])
    assert states.shape[:2] == (2, 2) and mask[0].all() and mask[1, 0].all() and not mask[1, 1].any()
    assert torch.equal(states[0, 1], tokens[1]) and torch.equal(states[1, 0], tokens[2])
    first, second = (batch["input_ids"][0] == vlm.ids.image).nonzero().flatten().tolist()
    assert (t2i[0, :first] == -1).all() and (t2i[0, first:second] == 0).all() and (t2i[0, second:] == 1).all()
