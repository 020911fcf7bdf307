"""Task metrics: VQA accuracy with the official VQA answer normalisation, and CIDEr via pycocoevalcap.

The normalisation follows the VQA challenge evaluation (Antol et al. 2015; the `vqaEval.py` rules):
lower-case, punctuation handling that keeps decimals, number words to digits, articles dropped,
common contractions restored. Accuracy is min(1, #matching human answers / 3), averaged over the
10-choose-9 subsets when ten answers are given; with fewer references (the toy world has one or a few
equivalent answers) a prediction matching any reference scores 1.
"""
from __future__ import annotations

import re

from pycocoevalcap.cider.cider import Cider

_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldnt": "couldn't", "couldve": "could've",
    "didnt": "didn't", "doesnt": "doesn't", "dont": "don't", "hadnt": "hadn't", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hes": "he's", "im": "i'm", "isnt": "isn't", "itd": "it'd",
    "itll": "it'll", "ive": "i've", "lets": "let's", "shouldnt": "shouldn't", "thats": "that's",
    "theres": "there's", "theyre": "they're", "theyve": "they've", "wasnt": "wasn't", "werent": "weren't",
    "whats": "what's", "wheres": "where's", "whos": "who's", "wont": "won't", "wouldnt": "wouldn't",
    "youre": "you're", "youve": "you've",
}
_NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
            "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = {"a", "an", "the"}
_PUNCT = [";", r"/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",",
          "?", "!"]
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")


def _process_punctuation(text: str) -> str:
    out = text
    for p in _PUNCT:
        if (p + " " in text or " " + p in text) or re.search(_COMMA_STRIP, text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out)


def normalize_answer(text: str) -> str:
    text = text.replace("\n", " ").replace("\t", " ").strip().lower()
    text = _process_punctuation(text)
    words = [_NUMBERS.get(w, w) for w in text.split() if w not in _ARTICLES]
    return " ".join(_CONTRACTIONS.get(w, w) for w in words)


def vqa_accuracy(prediction: str, answers: list[str]) -> float:
    pred = normalize_answer(prediction)
    gts = [normalize_answer(a) for a in answers]
    if len(gts) < 10:
        return float(pred in gts)
    scores = []
    for i in range(len(gts)):
        others = gts[:i] + gts[i + 1:]
        scores.append(min(1.0, sum(g == pred for g in others) / 3.0))
    return sum(scores) / len(scores)


def caption_tokens(text: str) -> str:
    """Lower-case and strip punctuation, as the PTB tokenizer step of the COCO evaluation does."""
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def cider(predictions: dict[str, str], references: dict[str, list[str]]) -> tuple[float, dict[str, float]]:
    """Corpus CIDEr-D (x100, the scale papers quote) and per-sample scores."""
    keys = sorted(predictions)
    if not keys:
        return 0.0, {}
    gts = {k: [caption_tokens(r) for r in references[k]] for k in keys}
    res = {k: [caption_tokens(predictions[k]) or "<empty>"] for k in keys}
    score, per = Cider().compute_score(gts, res)
    return 100.0 * float(score), {k: 100.0 * float(s) for k, s in zip(keys, per)}
