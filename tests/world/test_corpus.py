"""The LM corpus's reading items and the reading measure: answers are right by construction, the measure scores
what the model says."""

import random

import pytest

from vlmlab.world import kb
from vlmlab.world.corpus import TOKENIZER_CORPUS, CorpusSpec, build_corpus, qa_line, reading_item, reading_set
from vlmlab.world.lm import reading_accuracy
from vlmlab.world.questions import VQA_TYPES


def test_reading_set_covers_every_type_and_is_held_out():
    items = reading_set(4)
    assert [t for _, _, t in items] == [t for t in [*VQA_TYPES, "word", "fact"] for _ in range(4)]
    assert reading_set(4) == items                       # a pure function of its seed
    corpus = set(build_corpus(CorpusSpec(fact_repeats=1, scene_lines=10, misc_lines=10, qa_lines=2000)))
    assert sum(f"{p} {a[0]}" in corpus for p, a, t in items if t not in ("word", "fact")) < len(items) // 4  # mostly unseen scenes


def test_reading_items_carry_their_answer_in_the_text():
    rng = random.Random(0)
    for _ in range(200):
        prompt, answers, qtype = reading_item(rng)
        assert prompt.endswith("Answer:")
        if qtype == "word":
            assert answers[0] in kb.WORDS and f"says {answers[0]}." in prompt
        if qtype in ("colour", "shape"):
            assert answers[0] in prompt.split("Question:")[0]  # the told scene names it
    line = qa_line(random.Random(1))
    assert "Question:" in line and not line.endswith("Answer:")


def test_fact_items_ask_okvqa_questions_about_the_told_scene():
    rng = random.Random(2)
    for _ in range(100):
        prompt, answers, qtype = reading_item(rng, "fact")
        told, question = prompt.split(" Question: ")
        assert qtype == "fact"
        assert not any(f"{c} {s}" in question for c in kb.COLOURS for s in kb.SHAPES)  # never colour and shape
        rel = next(r for r, q in kb.QUESTIONS.items() if q.split("{")[0] in question)
        assert any(f"{c} {s}" in told and kb.FACTS[(c, s)][rel] == answers[0] for c, s in kb.KINDS)  # a told kind's fact


def test_the_okvqa_share_sets_the_mix_of_reading_lines():
    rng = random.Random(3)
    kinds = [reading_item(rng, okvqa_share=0.5)[2] for _ in range(400)]
    assert 150 < kinds.count("fact") < 250 and "word" in kinds
    rng = random.Random(3)
    assert "fact" not in [reading_item(rng)[2] for _ in range(200)]


def test_the_tokenizer_corpus_is_fixed():
    # the LM's mixture may change; the tokenizer (shared with the vision zoo's text tower) is trained on this one
    assert TOKENIZER_CORPUS.qa_lines == 2000 and CorpusSpec().qa_lines > TOKENIZER_CORPUS.qa_lines


class _Parrot:
    """A stand-in LM that says a fixed reply to every prompt."""

    def __init__(self, tok, reply: str):
        self.reply = tok(" " + reply, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]

    def generate(self, input_ids, **kw):
        import torch
        return torch.cat([input_ids, torch.tensor([self.reply] * len(input_ids))], 1)


@pytest.fixture(scope="module")
def tok():
    from vlmlab.world.tokenizer import train_tokenizer
    return train_tokenizer(build_corpus(CorpusSpec(fact_repeats=1, scene_lines=200, misc_lines=100, qa_lines=100)))


def test_reading_accuracy_scores_what_is_said(tok):
    items = [("the sign says cake. Question: What does the text say? Answer:", ["cake"], "word"),
             ("the sign says door. Question: What does the text say? Answer:", ["door"], "word"),
             ("there is a small red star. Question: How many objects are there? Answer:", ["1", "one"], "count")]
    side = tok.padding_side
    assert reading_accuracy(_Parrot(tok, "cake."), tok, items) == {"word": 0.5, "count": 0.0, "all": 1 / 3}
    assert reading_accuracy(_Parrot(tok, "one"), tok, items)["count"] == 1.0
    assert tok.padding_side == side  # generation pads on the left; the tokenizer's own side is restored
