"""How good a zoo backbone is on its own, and which two checkpoints make a backbone pair (world/zoo.py builds them).

Each checkpoint of a zoo pretraining run gets its unimodal scores here: the LM its held-out perplexity, fact
recall and reading accuracy; the vision encoder its retrieval R@1 and linear probes. `unimodal` puts each on one
scale, the share of the way from chance to perfect, so that `choose_pair` can pick the weak checkpoint whose gap to
the strong one is closest to the paper's (issue 16's "backbones on the paper's terms").
"""
from __future__ import annotations

from transformers import PreTrainedTokenizerFast

from vlmlab.world.corpus import heldout_text, reading_set
from vlmlab.world.lm import fact_recall, perplexity, reading_accuracy
from vlmlab.world.vision import retrieval_r1
from vlmlab.world.zoo_specs import ZooSpec

# The paper's unimodal gaps as a share of the way from chance to perfect (../shared/PAPER.md, finding 1).
PAPER_GAP = {"lm": (60.1 - 35.1) / (100 - 25), "vision": (83.2 - 78.0) / 100}
PAPER_GAP_SOURCE = {"lm": "MMLU 35.1 -> 60.1 (chance 25): LLaMA-1-7B -> Mistral-7B",
                    "vision": "ImageNet 78.0 -> 83.2: CLIP-ViT-H -> SigLIP-SO400M"}
VISION_UNIMODAL_PROBES = ("colour", "shape", "count", "position", "glyph (split)")


def lm_scores(model, tok: PreTrainedTokenizerFast, spec: ZooSpec) -> dict:
    recall = fact_recall(model, tok)
    reading = reading_accuracy(model, tok, reading_set(spec.reading_per_type))
    return {"heldout_perplexity": perplexity(model, tok, heldout_text(spec.corpus, spec.eval_lines), spec.lm.seq),
            "fact_recall": recall, "fact_recall_chance": 1 / 8, "unimodal": (recall - 1 / 8) / (1 - 1 / 8),
            "reading": reading.pop("all"), **{f"reading_{k}": v for k, v in reading.items()}}


def vision_scores(model, tok: PreTrainedTokenizerFast, spec: ZooSpec) -> dict:
    from vlmlab.model.navit import VisionEncoder
    from vlmlab.world.probes import CHANCE, probe_table

    tower = model.vision_model
    use_head, head = tower.use_head, tower.head  # VisionEncoder drops the pooling head; retrieval (and training) use it
    try:
        probes = probe_table(VisionEncoder(tower).eval(), spec.probe_train, spec.probe_test, spec.vision.world())
    finally:
        tower.use_head, tower.head = use_head, head
    norm = [(probes[p] - CHANCE[p]) / (1 - CHANCE[p]) for p in VISION_UNIMODAL_PROBES]
    return {"retrieval_r1_at_50": retrieval_r1(model, tok, spec.vision, spec.eval_scenes), "retrieval_chance": 1 / 50,
            **{f"probe_{k.replace(' ', '_').replace('(', '').replace(')', '')}": v for k, v in probes.items()},
            "unimodal": sum(norm) / len(norm)}


def choose_pair(kind: str, checkpoints: list[dict]) -> dict:
    """Strong = the last checkpoint; weak = the earlier one whose unimodal gap to strong is closest to the paper's."""
    strong = max(checkpoints, key=lambda c: c["step"])
    earlier = [c for c in checkpoints if c["step"] < strong["step"]] or [strong]
    u = strong["quality"]["unimodal"]
    weak = min(earlier, key=lambda c: (abs(u - c["quality"]["unimodal"] - PAPER_GAP[kind]), -c["step"]))
    return {"weak": weak["name"], "strong": strong["name"], "gap": u - weak["quality"]["unimodal"],
            "paper_gap": PAPER_GAP[kind], "paper": PAPER_GAP_SOURCE[kind],
            "rule": "strong = last checkpoint; weak = the checkpoint whose unimodal gap to strong is closest to the paper's"}
