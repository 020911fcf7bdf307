"""The language model's text corpus: the knowledge base's facts, scene descriptions and other text.

This is the only place where the held-out kinds' facts are written down (the multimodal data never
states them), so an okvqa test answer has to come from what the LM memorised. Fact lines use several
paraphrases, including the "Question: ... Answer: ..." form of the VLM prompt. Held-out text for
perplexity comes from the same generators with another seed and no fact lines.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from vlmlab.world import kb
from vlmlab.world.config import WorldConfig
from vlmlab.world.language import NUMBER_WORDS, article, captions, plural, unique_refs
from vlmlab.world.questions import OKVQA_REFS, POSITIONS, TEXT_QUESTIONS, VQA_TYPES, ask_vqa, random_scene

FACT_TEMPLATES: dict[str, list[str]] = {
    "habitat": ["the {k} lives in the {v}.", "{a} {k} makes its home in the {v}.", "you can find the {k} in the {v}.",
                "Question: Where does the {k} live? Answer: {v}"],
    "food": ["the {k} eats {v}.", "{a} {k} likes to eat {v}.", "every day the {k} looks for {v} to eat.",
             "Question: What does the {k} eat? Answer: {v}"],
    "motion": ["the {k} moves by {v}.", "{a} {k} gets around by {v}.", "you will see the {k} {v} from place to place.",
               "Question: How does the {k} move? Answer: {v}"],
}
RECALL_PROMPTS = {"habitat": "the {k} lives in the", "food": "the {k} eats", "motion": "the {k} moves by"}
SCENE_VIEW = WorldConfig(long_side_min=128, long_side_max=128)  # layout only; pixels are never drawn


@dataclass
class CorpusSpec:
    seed: int = 0  # corpus seed (held-out text uses seed + 1)
    fact_repeats: int = 60  # copies of every fact paraphrase (a tiny LM needs hundreds of exposures per fact)
    scene_lines: int = 4000  # scene descriptions
    misc_lines: int = 2000  # other text (taxonomy, counting, words, places)
    qa_lines: int = 30000  # a scene told in words, then a question about it in the VLM prompt format (reading)
    okvqa_share: float = 0.0  # of the reading lines, the share asking a fact of an object named partly (okvqa's form)


# The tokenizer's corpus stays the one it was first trained on (world v1 .. v2-rc1: 2,000 reading lines), so the
# vision zoo's text tower and the LM share one vocabulary whatever the LM's mixture.
TOKENIZER_CORPUS = CorpusSpec(qa_lines=2000)


def fact_lines(repeats: int) -> list[str]:
    lines = []
    for kind in kb.KINDS:
        k, f = kb.kind_name(kind), kb.FACTS[kind]
        for rel, templates in FACT_TEMPLATES.items():
            lines += [t.format(a=article(k), k=k, v=f[rel]) for t in templates] * repeats
        lines.append(f"the {k} lives in the {f['habitat']}, eats {f['food']} and moves by {f['motion']}.")
    return lines


def scene_line(rng: random.Random) -> str:
    scene = random_scene(rng, SCENE_VIEW, rng.randint(1, 5))
    objs = scene.objects
    kind = rng.randrange(4)
    if kind == 0:
        return f"in the picture there is {rng.choice(captions(scene))}."
    if kind == 1:
        n = len(objs)
        return f"there {'is' if n == 1 else 'are'} {NUMBER_WORDS[n]} object{'s' if n > 1 else ''}: {captions(scene)[0]}."
    if kind == 2 and len(objs) > 1:
        a, b = rng.sample(objs, 2)
        rel = ("left" if a.x < b.x else "right") if rng.random() < 0.5 else ("above" if a.y < b.y else "below")
        return f"the {a.colour} {a.shape} is {POSITIONS[rel]} the {b.colour} {b.shape}."
    o = rng.choice(objs)
    return f"the {o.shape} is {o.colour} and {o.size}."


def reading_item(rng: random.Random, qtype: str | None = None, okvqa_share: float = 0.0) -> tuple[str, list[str], str]:
    """(a scene told in words then a question, its answers, the question type): one of vqa's types, "word" (read
    the sign: textvqa's question with the word given as text) or "fact" (okvqa's: a fact of an object the question
    names partly, which the LM must resolve from the told scene, then recall). qtype None draws one: a share
    `okvqa_share` are "fact", then a fifth of the rest "word"."""
    if qtype == "fact" or (qtype is None and okvqa_share > 0 and rng.random() < okvqa_share):
        while True:
            scene = random_scene(rng, SCENE_VIEW, rng.randint(1, 3))
            target = rng.choice(scene.objects)
            refs = unique_refs(target, scene.objects, OKVQA_REFS)
            if refs:
                rel = rng.choice(list(kb.RELATIONS))
                question = kb.QUESTIONS[rel].format(ref=rng.choice(refs))
                return (f"there is {captions(scene)[0]}. Question: {question} Answer:", [kb.FACTS[target.kind][rel]],
                        "fact")
    if qtype == "word" or (qtype is None and rng.random() < 0.2):
        word = rng.choice(kb.WORDS)
        return f"the sign says {word}. Question: {rng.choice(TEXT_QUESTIONS)} Answer:", [word], "word"
    while True:
        scene = random_scene(rng, SCENE_VIEW, rng.randint(1, 5))
        asked = qtype or rng.choice(VQA_TYPES)
        qa = ask_vqa(rng, scene, asked)
        if qa is not None:
            return f"there is {captions(scene)[0]}. Question: {qa[0]} Answer:", qa[1], asked


def qa_line(rng: random.Random, okvqa_share: float = 0.0) -> str:
    """Reading comprehension: the scene is given as text, so the LM learns the questions' language and to answer
    from what it is told (the mechanism a frozen LM needs to use the visual tokens; docs/world.md)."""
    prompt, answers, _ = reading_item(rng, okvqa_share=okvqa_share)
    return f"{prompt} {answers[0]}"


def reading_set(n_per_type: int, seed: int = 1) -> list[tuple[str, list[str], str]]:
    """Held-out reading items (another seed than the corpus), n_per_type of each vqa type, of "word" (textvqa's
    question) and of "fact" (okvqa's: a fact of an object the question names partly)."""
    rng = random.Random(f"corpus-reading/{seed}")
    return [reading_item(rng, t) for t in [*VQA_TYPES, "word", "fact"] for _ in range(n_per_type)]


def misc_line(rng: random.Random) -> str:
    kind = rng.randrange(6)
    colour, shape, word = rng.choice(list(kb.COLOURS)), rng.choice(kb.SHAPES), rng.choice(kb.WORDS)
    if kind == 0:
        return rng.choice([f"{colour} is a colour.", f"a {shape} is a shape.", "small and large are sizes."])
    if kind == 1:
        a, b = rng.randint(0, 3), rng.randint(0, 2)
        return f"{NUMBER_WORDS[a]} plus {NUMBER_WORDS[b]} is {NUMBER_WORDS[a + b]}."
    if kind == 2:
        n = rng.randint(1, 5)
        return f"{NUMBER_WORDS[n]} {plural(shape) if n > 1 else shape}, that is {n}."
    if kind == 3:
        other = rng.choice(kb.WORDS)
        return rng.choice([f"the word {word} is written on the sign.", f"the {word} is next to the {other}.",
                           f"someone wrote {word} in black letters."])
    if kind == 4:
        rel, values = rng.choice(list(kb.RELATIONS.items()))
        return f"{rng.choice(values)} and {rng.choice(values)} are both words about {rel}."
    place = rng.choice(kb.RELATIONS["habitat"])
    return f"the {place} is {rng.choice(['quiet', 'far away', 'full of life', 'cold at night', 'bright'])}."


def build_corpus(spec: CorpusSpec) -> list[str]:
    """Training text, one line per sentence, shuffled."""
    rng = random.Random(f"corpus/{spec.seed}")
    lines = fact_lines(spec.fact_repeats)
    lines += [scene_line(rng) for _ in range(spec.scene_lines)]
    lines += [misc_line(rng) for _ in range(spec.misc_lines)]
    lines += [qa_line(rng, spec.okvqa_share) for _ in range(spec.qa_lines)]
    rng.shuffle(lines)
    return lines


def heldout_text(spec: CorpusSpec, n: int) -> list[str]:
    """Unseen sentences of the same language (no fact lines) for perplexity."""
    rng = random.Random(f"corpus-heldout/{spec.seed + 1}")
    gens = [scene_line, misc_line, qa_line]
    return [rng.choice(gens)(rng) for _ in range(n)]
