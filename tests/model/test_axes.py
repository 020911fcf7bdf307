"""Every design axis combines with every other: fusion x connector x trainable x image trains 2 steps and
generates (the paper's connectors in a pairwise covering design, the others across both fusions), on two LM
architectures and two vision architectures; trainable counts follow the policy exactly; a merged LoRA model gives
the same outputs."""
import itertools
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM, SiglipVisionConfig, SiglipVisionModel

from vlmlab.config import compose
from vlmlab.data import Processor, TaskDataset, collate
from vlmlab.images import build_image_processor
from vlmlab.model.build import build_vlm
from vlmlab.model.trainable import merge_lora, parameter_table
from vlmlab.world.tasks import load_mixture

FUSIONS = ["autoregressive", "cross_attention"]
CONNECTORS = sorted(p.stem for p in (Path(__file__).parents[2] / "conf" / "connector").glob("*.yaml"))  # the options
TRAINABLES = ["frozen", "lora", "full"]
IMAGES = [["image=square"], ["image=preserve"], ["image=split"], ["image=split", "image.mode=preserve"]]


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory):
    out = tmp_path_factory.mktemp("qwen") / "tiny_qwen2"
    tok = AutoTokenizer.from_pretrained(Path(__file__).parents[1] / "assets" / "tiny_llama")
    torch.manual_seed(0)
    Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                                 bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                 pad_token_id=tok.pad_token_id)).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def two_steps_and_generate(overrides, llm_dir=None, vision_dir=None):
    cfg = compose(["vision=tiny", "llm=tiny", "debug=smoke", *overrides])
    if llm_dir:
        cfg.llm.name_or_path = str(llm_dir)
    if vision_dir:
        cfg.vision.name_or_path = str(vision_dir)
    vlm, tok = build_vlm(cfg)
    images = build_image_processor(cfg.image, vlm.vision, cfg.vision.mean, cfg.vision.std)
    proc = Processor(tok, vlm.ids, images, vlm.visual_tokens_per_view, cfg.fusion.kind, 512)
    ds = TaskDataset(load_mixture(cfg.data, "train"), proc, train=True, with_answer=True)
    batch = collate([ds[i] for i in range(3)], vlm.ids.pad, images.patch_size)
    opt = torch.optim.AdamW([p for p in vlm.parameters() if p.requires_grad], lr=1e-3)
    for _ in range(2):
        loss, _ = vlm(**batch, return_logits=False)
        assert torch.isfinite(loss)
        loss.backward()
        opt.step()
        opt.zero_grad()
    gen = TaskDataset(load_mixture(cfg.data, "train"), proc, train=False, with_answer=False)
    gbatch = collate([gen[i] for i in range(2)], vlm.ids.pad, images.patch_size, left_pad=True)
    out = vlm.generate(gbatch["input_ids"], gbatch["attention_mask"], gbatch["pixel_values"], gbatch["patch_mask"],
                       gbatch["view_to_sample"], gbatch["view_to_image"], max_new_tokens=3)
    assert len(out) == 2
    return vlm


# the paper's connectors in a pairwise covering design: every pair of values of any two axes (fusion x connector,
# fusion x trainable, connector x image, ...) in at least one row, 12 rows for the 72 full combinations (test time);
# with s = connector + image, fusion = s mod 2 and trainable = s mod 3 meet in all 6 pairs as s runs over 0..5.
# Any other connector (pixel_shuffle, avgpool, ...) with each image handling across the two fusions (each image
# handling once per connector), its trainable policy cycling
PAPER_CONNECTORS = ["linear", "mlp", "perceiver"]
COMBINATIONS = [(FUSIONS[(c + i) % 2], connector, TRAINABLES[(c + i) % 3], i)
                for c, connector in enumerate(PAPER_CONNECTORS) for i in range(len(IMAGES))] + [
    (fusion, connector, TRAINABLES[(i + j) % len(TRAINABLES)], i)
    for connector in CONNECTORS if connector not in PAPER_CONNECTORS
    for j, fusion in enumerate(FUSIONS) for i in range(len(IMAGES)) if (i + j) % 2 == 0]  # half: test time


def test_the_paper_connectors_rows_cover_every_pair_of_axis_values():
    rows = [r for r in COMBINATIONS if r[1] in PAPER_CONNECTORS]
    axes = [FUSIONS, PAPER_CONNECTORS, TRAINABLES, range(len(IMAGES))]
    for a, b in itertools.combinations(range(4), 2):
        assert {(r[a], r[b]) for r in rows} == set(itertools.product(axes[a], axes[b])), (a, b)


@pytest.mark.parametrize("fusion,connector,trainable,image", COMBINATIONS)
def test_every_combination_trains_and_generates(fusion, connector, trainable, image):
    two_steps_and_generate([f"fusion={fusion}", f"connector={connector}", f"trainable={trainable}", *IMAGES[image]])


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("connector,trainable,image", [("perceiver", "lora", 1), ("mlp", "full", 3),
                                                        ("linear", "frozen", 2), ("pixel_shuffle", "lora", 3),
                                                        ("avgpool", "frozen", 1)])
def test_other_architectures(fusion, connector, trainable, image, tiny_qwen, assets):
    """Qwen2 as the LM with SigLIP, and CLIP as the encoder with Llama."""
    axes = [f"fusion={fusion}", f"connector={connector}", f"trainable={trainable}", *IMAGES[image]]
    two_steps_and_generate(axes, llm_dir=tiny_qwen)
    two_steps_and_generate(axes, vision_dir=assets / "tiny_clip")


@pytest.fixture(scope="module")
def wide_siglip(tmp_path_factory):
    """A vision tower 48 wide, against the tiny LM's 32."""
    out = tmp_path_factory.mktemp("siglip") / "wide_siglip"
    torch.manual_seed(0)
    SiglipVisionModel(SiglipVisionConfig(hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                                         num_attention_heads=4, image_size=32, patch_size=8)).save_pretrained(out)
    return out


def test_idefics1_connector_layout(wide_siglip):
    """connector.projection=none + resampler_mlp=relu (Idefics1's perceiver): the resampler works at the vision
    width and the cross-attention keys read that width; fully autoregressive fusion refuses unequal widths."""
    idefics1 = ["connector=perceiver", "connector.projection=none", "connector.resampler_mlp=relu"]
    vlm = two_steps_and_generate(["fusion=cross_attention", *idefics1], vision_dir=wide_siglip)
    assert vlm.connector.out_dim == 48 and vlm.llm.get_input_embeddings().embedding_dim == 32
    assert vlm.xattn.blocks["0"].to_k.in_features == 48
    two_steps_and_generate(["fusion=autoregressive", *idefics1])  # equal widths (32): the LM reads them
    with pytest.raises(ValueError, match="must be 32 wide"):
        build_vlm(compose(["vision=tiny", "llm=tiny", "fusion=autoregressive", *idefics1,
                           f"vision.name_or_path={wide_siglip}"]))


@pytest.mark.parametrize("policy", TRAINABLES)
def test_trainable_counts_follow_the_policy_exactly(policy):
    cfg = compose(["vision=tiny", "llm=tiny", "debug=smoke", "fusion=cross_attention", f"trainable={policy}"])
    vlm, _ = build_vlm(cfg)
    table = parameter_table(vlm)
    for comp in ("connector", "cross_attention", "new_tokens"):  # new modules always train fully
        assert table[comp]["trainable"] == table[comp]["total"] > 0
    for comp, module in (("vision", vlm.vision), ("llm", vlm.llm)):
        lora = {n: p for n, p in module.named_parameters() if "lora_" in n}
        if policy == "frozen":
            assert table[comp]["trainable"] == 0 and not lora
        elif policy == "full":
            assert table[comp]["trainable"] == table[comp]["total"] and not lora
        else:  # only the adapters: r * (in + out) per adapted linear layer
            assert all(p.requires_grad for p in lora.values())
            assert table[comp]["trainable"] == sum(p.numel() for p in lora.values()) > 0
            r = cfg.trainable.lora.r
            expected = sum(r * (m.in_features + m.out_features) for n, m in module.named_modules()
                           if hasattr(m, "lora_A") and isinstance(m.base_layer, torch.nn.Linear)
                           for m in [m.base_layer])
            assert table[comp]["trainable"] == expected
    assert table["all"]["trainable"] == sum(p.numel() for p in vlm.parameters() if p.requires_grad)


def test_merged_lora_gives_the_same_outputs():
    cfg = compose(["vision=tiny", "llm=tiny", "debug=smoke", "trainable=lora"])
    vlm, tok = build_vlm(cfg)
    images = build_image_processor(cfg.image, vlm.vision, cfg.vision.mean, cfg.vision.std)
    proc = Processor(tok, vlm.ids, images, vlm.visual_tokens_per_view, "autoregressive", 512)
    ds = TaskDataset(load_mixture(cfg.data, "train"), proc, train=True, with_answer=True)
    batch = collate([ds[i] for i in range(2)], vlm.ids.pad, images.patch_size)
    vlm.eval()
    torch.manual_seed(0)
    with torch.no_grad():
        bare = vlm(**batch)[1]  # LoRA's B starts at zero: the adapters do nothing yet
        for n, p in vlm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
        adapted = vlm(**batch)[1]
        merge_lora(vlm)
        merged = vlm(**batch)[1]
    assert not torch.allclose(bare, adapted, atol=1e-3)  # the adapters matter
    assert torch.allclose(adapted, merged, atol=1e-5)
