"""A byte-level BPE tokenizer trained on the world corpus, with the VLM's special tokens reserved.

Saved as a PreTrainedTokenizerFast (loads with AutoTokenizer.from_pretrained). Like Llama's, it
prepends <s> to every encoded text unless add_special_tokens=False; it never appends </s>.
"""

from __future__ import annotations


from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

# docs/INTERFACES.md; ids 0..6 in this order
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>", "<image>", "<fake_token_around_image>", "<end_of_utterance>"]


def train_tokenizer(lines: list[str], vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(lines, trainer=trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        extra_special_tokens=SPECIAL_TOKENS[4:], model_max_length=1024,
    )
