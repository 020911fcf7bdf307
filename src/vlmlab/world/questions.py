"""One sample of each task: draw a scene, ask a question about it, give the gold answers.

Every sample is a pure function of (cfg, task, split, index) through a string-seeded
random.Random, so splits are reproducible, independent of size, and disjoint by construction.
Each maker has the task registry's signature (rng, world_cfg, sample_id, split) -> Sample; vlmlab/tasks.py
registers them.
- vqa: colour | shape | count | position | exist (yes/no answers balanced 50/50)
- textvqa: read the one word in the scene (1-3 objects beside it)
- okvqa: a fact about an object named only partly ("the star"), so the model must see the missing
  attribute and know the kind's fact; validation/test ask only about held-out kinds
- caption: describe the scene (4 references, canonical first)
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from vlmlab.world import kb
from vlmlab.world.config import WorldConfig
from vlmlab.world.language import NUMBER_WORDS, captions, plural, unique_refs
from vlmlab.world.scenes import LayoutError, Obj, Scene, layout, sample_canvas

VQA_TYPES = ["colour", "shape", "count", "position", "exist"]
TEXT_QUESTIONS = ["What word is written in the image?", "What does the text say?", "What is written in the picture?"]
POSITIONS = {"left": "to the left of", "right": "to the right of", "above": "above", "below": "below"}
OKVQA_REFS = [("shape",), ("colour",), ("size",), ("size", "shape"), ("size", "colour")]  # never colour + shape
OPPOSITE = {"left": "right", "right": "left", "above": "below", "below": "above"}


@dataclass
class Sample:
    id: str
    task: str
    scene: Scene
    question: str
    answers: list[str]
    qtype: str  # vqa: one of VQA_TYPES; textvqa: "word"; okvqa: the relation; caption: "caption"
    kind: kb.Kind | None = None  # okvqa: the kind whose fact is asked


def sample_rng(cfg: WorldConfig, task: str, split: str, index: int) -> random.Random:
    return random.Random(f"{cfg.seed}/{task}/{split}/{index}")


def random_specs(rng: random.Random, n: int) -> list[tuple[str, str, str]]:
    """n (shape, colour, size) triples from small per-scene palettes, so repeats (and counts > 1) are common."""
    shapes = rng.sample(kb.SHAPES, rng.randint(2, 4))
    colours = rng.sample(list(kb.COLOURS), rng.randint(2, 4))
    return [(rng.choice(shapes), rng.choice(colours), rng.choice(kb.SIZES)) for _ in range(n)]


def random_scene(rng: random.Random, cfg: WorldConfig, n: int, word: str | None = None, square: bool = False) -> Scene:
    while True:  # redraw objects and canvas until they fit
        try:
            return layout(rng, cfg, random_specs(rng, n), word, sample_canvas(rng, cfg, square))
        except LayoutError:
            continue


def _maybe_word(rng: random.Random, cfg: WorldConfig) -> str | None:
    return rng.choice(kb.WORDS) if rng.random() < cfg.word_prob else None


def _count_answers(n: int) -> list[str]:
    return [str(n), NUMBER_WORDS[n]]


def ask_vqa(rng: random.Random, scene: Scene, qtype: str) -> tuple[str, list[str]] | None:
    """A question of one type about the scene, or None when the scene cannot support it."""
    objs = scene.objects
    if qtype == "colour":
        cands = [(o, r) for o in objs for r in unique_refs(o, objs) if o.colour not in r.split()]
        if cands:
            o, ref = rng.choice(cands)
            return f"What colour is the {ref}?", [o.colour]
    elif qtype == "shape":
        cands = [(o, r) for o in objs for r in unique_refs(o, objs) if o.shape not in r.split()]
        if cands:
            o, ref = rng.choice(cands)
            return f"What shape is the {ref}?", [o.shape]
    elif qtype == "count":
        mode = rng.choice(["all", "shape", "colour"])
        if mode == "all":
            return "How many objects are there?", _count_answers(len(objs))
        if mode == "shape":  # mostly a present shape, sometimes an absent one (answer 0)
            s = rng.choice([o.shape for o in objs]) if rng.random() < 0.85 else rng.choice(kb.SHAPES)
            return f"How many {plural(s)} are there?", _count_answers(sum(o.shape == s for o in objs))
        c = rng.choice([o.colour for o in objs]) if rng.random() < 0.85 else rng.choice(list(kb.COLOURS))
        return f"How many {c} objects are there?", _count_answers(sum(o.colour == c for o in objs))
    elif qtype == "position":
        pairs = []
        for a in objs:
            for b in objs:
                if a is b:
                    continue
                ra, rb = unique_refs(a, objs), unique_refs(b, objs)
                margin = 0.5 * (a.r + b.r)  # a relation is asked only when it is clear-cut
                rels = ["left" if a.x < b.x else "right"] if abs(a.x - b.x) > margin else []
                rels += ["above" if a.y < b.y else "below"] if abs(a.y - b.y) > margin else []
                if ra and rb and rels:
                    pairs.append((ra[0], rb[0], rels))
        if pairs:
            ra, rb, rels = rng.choice(pairs)
            rel, truth = rng.choice(rels), rng.random() < 0.5
            asked = rel if truth else OPPOSITE[rel]
            return f"Is the {ra} {POSITIONS[asked]} the {rb}?", ["yes" if truth else "no"]
    elif qtype == "exist":
        present = {o.kind for o in objs}
        if rng.random() < 0.5:
            colour, shape = rng.choice(sorted(present))
            return f"Is there a {colour} {shape}?", ["yes"]
        colour, shape = rng.choice([k for k in kb.KINDS if k not in present])
        return f"Is there a {colour} {shape}?", ["no"]
    return None


def make_vqa(rng: random.Random, cfg: WorldConfig, sid: str, split: str) -> Sample:
    qtype = rng.choice(VQA_TYPES)
    while True:
        scene = random_scene(rng, cfg, rng.randint(cfg.min_objects, cfg.max_objects), _maybe_word(rng, cfg))
        qa = ask_vqa(rng, scene, qtype)
        if qa is not None:
            return Sample(f"{sid}-{qtype}", "vqa", scene, qa[0], qa[1], qtype)


def make_textvqa(rng: random.Random, cfg: WorldConfig, sid: str, split: str) -> Sample:
    word = rng.choice(kb.WORDS)
    scene = random_scene(rng, cfg, rng.randint(1, 3), word)
    return Sample(f"{sid}-word", "textvqa", scene, rng.choice(TEXT_QUESTIONS), [word], "word")


def make_okvqa(rng: random.Random, cfg: WorldConfig, sid: str, split: str) -> Sample:
    kind = rng.choice(kb.okvqa_kinds(split))
    rel = rng.choice(list(kb.RELATIONS))
    while True:
        specs = [(kind[1], kind[0], rng.choice(kb.SIZES))] + random_specs(rng, rng.randint(0, 2))
        try:
            scene = layout(rng, cfg, specs, _maybe_word(rng, cfg), sample_canvas(rng, cfg))
        except LayoutError:
            continue
        target: Obj = scene.objects[0]
        refs = unique_refs(target, scene.objects, OKVQA_REFS)
        if refs:
            question = kb.QUESTIONS[rel].format(ref=rng.choice(refs))
            return Sample(f"{sid}-{rel}", "okvqa", scene, question, [kb.FACTS[kind][rel]], rel, kind)


def make_caption(rng: random.Random, cfg: WorldConfig, sid: str, split: str) -> Sample:
    scene = random_scene(rng, cfg, rng.randint(cfg.min_objects, cfg.max_objects), _maybe_word(rng, cfg))
    return Sample(f"{sid}-caption", "caption", scene, "", captions(scene), "caption")


def make_sample(cfg: WorldConfig, task: str, split: str, index: int) -> Sample:
    """Sample `index` of a task's split: the registered task's maker, fed a string-seeded RNG."""
    from vlmlab.contract.tasks import get_task

    maker = get_task(task).make_sample
    return maker(sample_rng(cfg, task, split, index), cfg, f"{task}-{split}-{index:06d}", split)
