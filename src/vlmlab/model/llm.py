"""The language model: any transformers causal LM and its tokenizer, with the VLM's special tokens ensured."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from vlmlab.contract.errors import ConfigError
from vlmlab.model.loading import from_pretrained

IMAGE_TOKEN = "<image>"                         # placeholder replaced by visual tokens (FA) / marks the image (x-attn)
FAKE_TOKEN = "<fake_token_around_image>"        # frames each image's visual tokens, as in Idefics2
VLM_TOKENS = (IMAGE_TOKEN, FAKE_TOKEN)


@dataclass
class LLMConfig:
    name_or_path: str = "zoo:lm_strong"  # zoo:<name>, a save_pretrained directory, or a hub id
    revision: str | None = None          # hub revision (ignored for local directories)
    trust_remote_code: bool = False      # only if you trust the hub repo's code
    attn_implementation: str = "sdpa"    # eager | sdpa (| flash_attention_2 on CUDA)

    def __post_init__(self):
        allowed = ("eager", "sdpa", "flash_attention_2", "flex_attention")
        if self.attn_implementation not in allowed:
            raise ConfigError(f"llm.attn_implementation={self.attn_implementation!r} is not allowed; "
                              f"allowed: {', '.join(allowed)}")


@dataclass
class TokenIds:
    image: int
    fake: int
    bos: int | None
    eos: int
    pad: int


def load_llm(cfg: LLMConfig) -> tuple[torch.nn.Module, object, TokenIds]:
    """Load the LM and tokenizer; add the VLM's tokens (and a pad token) where missing and resize the embeddings."""
    from transformers import AutoModelForCausalLM, AutoTokenizer  # here, not above: config imports this file

    kw = {"revision": cfg.revision} if cfg.revision else {}
    tok = from_pretrained(AutoTokenizer, cfg.name_or_path, cfg.trust_remote_code, **kw)
    model = from_pretrained(AutoModelForCausalLM, cfg.name_or_path, cfg.trust_remote_code,
                            attn_implementation=cfg.attn_implementation, dtype=torch.float32, **kw)
    missing = [t for t in VLM_TOKENS if tok.convert_tokens_to_ids(t) in (None, tok.unk_token_id)]
    if missing:
        tok.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    if len(tok) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tok), mean_resizing=True)
    ids = TokenIds(image=tok.convert_tokens_to_ids(IMAGE_TOKEN), fake=tok.convert_tokens_to_ids(FAKE_TOKEN),
                   bos=tok.bos_token_id, eos=tok.eos_token_id, pad=tok.pad_token_id)
    return model, tok, ids
