"""Builds the committed tiny fixtures: a random-init Llama with a byte-level BPE tokenizer, and random-init
SigLIP / CLIP vision towers. They load through the same `from_pretrained` path as real backbones.

    python tests/assets/make_assets.py      # rewrites tests/assets/tiny_*
"""
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM,
                          PreTrainedTokenizerFast, SiglipVisionConfig, SiglipVisionModel)

HERE = Path(__file__).parent
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "<image>", "<fake_token_around_image>", "<end_of_utterance>"]
TEXT = [
    "Question: what colour is the circle? Answer: red", "Caption: a blue square left of a green triangle.",
    "Question: how many objects are there? Answer: 3", "Question: what word is written? Answer: lamp",
    "a red circle, a blue square, a green triangle, a yellow star and a purple heart.",
    "the fox lives in the forest and eats berries.", "zero one two three four five six seven eight nine ten",
]


def tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=384, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TEXT * 20, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", extra_special_tokens=SPECIALS[4:])


def main() -> None:
    torch.manual_seed(0)
    tok = tokenizer()
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                      pad_token_id=tok.pad_token_id, tie_word_embeddings=True))
    lm.save_pretrained(HERE / "tiny_llama")
    tok.save_pretrained(HERE / "tiny_llama")
    vis = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32,
               patch_size=8)
    SiglipVisionModel(SiglipVisionConfig(**vis)).save_pretrained(HERE / "tiny_siglip")
    CLIPVisionModel(CLIPVisionConfig(**vis)).save_pretrained(HERE / "tiny_clip")


if __name__ == "__main__":
    main()
