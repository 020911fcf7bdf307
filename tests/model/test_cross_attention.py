"""Gated cross-attention on tiny random Llama / Mistral / Qwen2: exact equality at gate 0, locality of
the images each token reads, cached == uncached generation, gradients reaching the gates, peft."""
import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM)

from vlmlab.model.cross_attention import CrossAttentionConfig, add_cross_attention, token_to_image_from_ids

ARCHS = {"llama": (LlamaConfig, LlamaForCausalLM), "mistral": (MistralConfig, MistralForCausalLM),
         "qwen2": (Qwen2Config, Qwen2ForCausalLM)}
PAD, EOS, IMG, DI = 0, 2, 5, 24  # pad / eos / <image> token ids; image feature width
XCFG = CrossAttentionConfig(every=2, n_heads=2, head_dim=8, mlp_mult=2)


def tiny_lm(arch):
    torch.manual_seed(0)
    cfg_cls, lm_cls = ARCHS[arch]
    cfg = cfg_cls(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=64, pad_token_id=PAD, bos_token_id=1,
                  eos_token_id=EOS, tie_word_embeddings=False)
    return lm_cls(cfg).eval()


def batch():
    """Row 0: text, image 0, text, image 1, text. Row 1 (left-padded): one image; its image 1 slot is empty."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(10, 64, (2, 12), generator=g)
    ids[0, 3], ids[0, 7] = IMG, IMG
    ids[1, :2], ids[1, 4] = PAD, IMG
    attn = (ids != PAD).long()
    states = torch.randn(2, 2, 3, DI, generator=g)                  # (B, I, T, Di)
    mask = torch.ones(2, 2, 3, dtype=torch.bool)
    mask[1, 1] = False                                              # row 1 has a single image
    mask[0, 1, 2] = False                                           # a padded token inside an image
    return ids, attn, states, mask, token_to_image_from_ids(ids, IMG)


def open_gates(fusion, value=0.5):
    with torch.no_grad():
        for block in fusion.blocks.values():
            block.alpha.fill_(value)
            block.beta.fill_(value)


def logits(lm, ids, attn):
    with torch.no_grad():
        return lm(input_ids=ids, attention_mask=attn).logits  # (B, L, V)


@pytest.mark.parametrize("arch", ARCHS)
def test_zero_gates_give_the_bare_lm_exactly(arch):
    lm = tiny_lm(arch)
    ids, attn, states, mask, t2i = batch()
    bare = logits(lm, ids, attn)
    fusion = add_cross_attention(lm, XCFG, image_dim=DI)
    assert sorted(fusion.blocks) == ["0", "2"]  # before every 2nd of 4 layers
    assert sum(p.numel() for p in fusion.parameters()) > 0
    with fusion.image_context(states, mask, t2i):
        assert torch.equal(logits(lm, ids, attn), bare)
    open_gates(fusion)
    assert torch.equal(logits(lm, ids, attn), bare)  # no context: text-only, blocks skipped


@pytest.mark.parametrize("arch", ARCHS)
def test_open_gates_change_only_tokens_after_an_image(arch):
    lm = tiny_lm(arch)
    ids, attn, states, mask, t2i = batch()
    bare = logits(lm, ids, attn)
    fusion = add_cross_attention(lm, XCFG, image_dim=DI)
    open_gates(fusion)
    fusion.set_image_context(states, mask, t2i)
    fused = logits(lm, ids, attn)
    before, after = t2i < 0, (t2i >= 0) & (attn > 0)
    torch.testing.assert_close(fused[before], bare[before], atol=1e-6, rtol=0)
    assert ((fused - bare).abs().amax(-1)[after] > 1e-4).all()
    # perturbing image 1 of row 0 leaves every token before it alone, and row 1 never reads it
    states2 = states.clone()
    states2[:, 1] += 1.0
    fusion.set_image_context(states2, mask, t2i)
    moved = (logits(lm, ids, attn) - fused).abs().amax(-1)  # (B, L)
    assert (moved[0, :7] < 1e-6).all() and (moved[0, 7:] > 1e-4).all() and (moved[1] < 1e-6).all()


def test_each_token_reads_only_its_most_recent_image():
    """At a block (the first one: its input does not depend on the images) a token's output is a function
    of its own image only; self-attention in later layers legitimately mixes earlier images in."""
    lm = tiny_lm("llama")
    ids, attn, states, mask, t2i = batch()
    fusion = add_cross_attention(lm, XCFG, image_dim=DI)
    open_gates(fusion)
    seen = []
    fusion.blocks["0"].register_forward_hook(lambda m, args, out: seen.append((args[0], out)))
    for s in (states, states + torch.randn_like(states) * (torch.arange(2) == 0).view(1, 2, 1, 1)):
        fusion.set_image_context(s, mask, t2i)  # second pass: image 0 perturbed, image 1 the same
        logits(lm, ids, attn)
    (h, out_a), (_, out_b) = seen
    changed = (out_a - out_b).abs().amax(-1) > 1e-5  # (B, L)
    assert torch.equal(changed, t2i == 0)
    assert torch.equal(out_a[t2i < 0], h[t2i < 0])  # no image: the block adds exactly nothing
    assert torch.isfinite(out_a).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_cached_generation_equals_uncached(arch):
    lm = tiny_lm(arch)
    ids, attn, states, mask, t2i = batch()
    fusion = add_cross_attention(lm, XCFG, image_dim=DI)
    open_gates(fusion, 1.0)
    kw = dict(attention_mask=attn, max_new_tokens=6, min_new_tokens=6, do_sample=False, pad_token_id=PAD,
              return_dict_in_generate=True, output_logits=True)
    with torch.no_grad():
        bare = lm.generate(ids, use_cache=True, **kw)
        fusion.set_image_context(states, mask, t2i)
        cached = lm.generate(ids, use_cache=True, **kw)
        uncached = lm.generate(ids, use_cache=False, **kw)
        from_embeds = lm.generate(inputs_embeds=lm.get_input_embeddings()(ids), use_cache=True, **kw)
    assert torch.equal(cached.sequences, uncached.sequences)
    torch.testing.assert_close(torch.stack(cached.logits), torch.stack(uncached.logits), atol=1e-4, rtol=1e-4)
    assert torch.equal(from_embeds.sequences, cached.sequences[:, ids.shape[1]:])  # how the VLM generates
    assert not torch.allclose(torch.stack(cached.logits), torch.stack(bare.logits))  # the images matter
    # new tokens read the last image of their row: a full forward with that written out gives the same scores
    seq = cached.sequences[:, :-1]
    last = t2i.max(1, keepdim=True).values.expand(-1, seq.shape[1] - ids.shape[1])
    fusion.set_image_context(states, mask, torch.cat([t2i, last], 1))
    full = logits(lm, seq, torch.cat([attn, torch.ones_like(last)], 1))[:, ids.shape[1] - 1:]
    torch.testing.assert_close(full, torch.stack(cached.logits, 1), atol=1e-4, rtol=1e-4)


def test_backward_reaches_the_gates():
    lm = tiny_lm("mistral")
    ids, attn, states, mask, t2i = batch()
    fusion = add_cross_attention(lm, XCFG, image_dim=DI)
    fusion.set_image_context(states, mask, t2i)
    lm(input_ids=ids, attention_mask=attn).logits.float().square().mean().backward()
    for block in fusion.blocks.values():
        assert block.alpha.grad.abs().item() > 0 and block.beta.grad.abs().item() > 0


@pytest.mark.parametrize("peft_first", [True, False])
def test_works_through_peft(peft_first):
    lm = tiny_lm("qwen2")
    ids, attn, states, mask, t2i = batch()
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    if peft_first:
        lm = get_peft_model(lm, lora)
    fusion = add_cross_attention(lm, CrossAttentionConfig(every=1, n_heads=2, head_dim=8, mlp_mult=2), DI)
    if not peft_first:
        lm = get_peft_model(lm, lora)
    assert len(fusion.blocks) == 4
    assert not any("lora" in n for n, _ in fusion.named_parameters())  # the blocks stay out of the LM
    bare = logits(lm, ids, attn)
    fusion.set_image_context(states, mask, t2i)
    assert torch.equal(logits(lm, ids, attn), bare)
    open_gates(fusion)
    assert not torch.allclose(logits(lm, ids, attn), bare)
    fusion.remove()
    assert torch.equal(logits(lm, ids, attn), bare)
