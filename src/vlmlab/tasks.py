"""The paper's four benchmark analogs, registered in the task registry (contract/tasks.py).

  vqa      VQAv2 analog: colour / shape / count / position / exist questions; VQA accuracy
  textvqa  TextVQA analog: read the word in the scene; VQA accuracy
  okvqa    OK-VQA analog: a fact about a partly named object, of a kind held out of training; VQA accuracy
  caption  COCO analog: describe the scene; CIDEr (x100), prompt "Caption:", shots show the first reference

Each entry names its toy-world sample maker (world/questions.py), its metric (metrics.py) and the real
dataset it stands for (benchmarks.py). A new task is one more `register_task(...)` like these.
"""
from __future__ import annotations

from vlmlab.benchmarks import BenchmarkSpec
from vlmlab.contract.tasks import Task, first, register_task
from vlmlab.metrics import caption_tokens, cider, normalize_answer, vqa_accuracy
from vlmlab.world import questions


def vqa_items(predictions: list[str], answers: list[list[str]]) -> list[float]:
    """VQA accuracy of each question, in percent."""
    return [100.0 * vqa_accuracy(p, a) for p, a in zip(predictions, answers)]


def vqa_score(predictions: list[str], answers: list[list[str]]) -> float:
    """Mean VQA accuracy in percent."""
    return sum(vqa_items(predictions, answers)) / max(1, len(predictions))


def _cider(predictions: list[str], answers: list[list[str]]) -> tuple[float, list[float]]:
    """pycocoevalcap's CIDEr-D (x100) over the set, keyed by position: (corpus score, each caption's score)."""
    keys = [str(i) for i in range(len(predictions))]
    corpus, per = cider(dict(zip(keys, predictions)), dict(zip(keys, answers)))
    return corpus, [per[k] for k in keys]


def cider_items(predictions: list[str], answers: list[list[str]]) -> list[float]:
    """CIDEr-D (x100) of each caption against its references, with the set's IDF; their mean is the corpus score."""
    return _cider(predictions, answers)[1]


def cider_score(predictions: list[str], answers: list[list[str]]) -> float:
    """Corpus CIDEr-D (x100)."""
    return _cider(predictions, answers)[0]


register_task(Task(
    "vqa", questions.make_vqa, vqa_score, normalize=normalize_answer, item_scores=vqa_items,
    benchmark=BenchmarkSpec("vqa", "lmms-lab/VQAv2", "validation", "validation"),
    description="VQAv2 analog: colour, shape, count, position and existence questions"))
register_task(Task(
    "textvqa", questions.make_textvqa, vqa_score, normalize=normalize_answer, item_scores=vqa_items,
    benchmark=BenchmarkSpec("textvqa", "lmms-lab/textvqa", "validation", "train"),
    description="TextVQA analog: read the word written in the scene"))
register_task(Task(
    "okvqa", questions.make_okvqa, vqa_score, normalize=normalize_answer, item_scores=vqa_items,
    benchmark=BenchmarkSpec("okvqa", "lmms-lab/OK-VQA", "val2014", "val2014", image_id=None),
    description="OK-VQA analog: a fact about a partly named object (held-out kinds at test)"))
register_task(Task(
    "caption", questions.make_caption, cider_score, prompt=lambda q: "Caption:", normalize=caption_tokens,
    item_scores=cider_items,
    shot_answer=first, unit="CIDEr",
    benchmark=BenchmarkSpec("caption", "lmms-lab/COCO-Caption2017", "val", "val", question=None, answers="answer",
                            image_id=None),  # one row per picture; question_id is the file name
    description="COCO analog: describe the scene (4 references)"))
