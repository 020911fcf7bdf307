"""The world's vocabulary and knowledge base (a constant of GENERATOR_VERSION, not a config knob).

An object *kind* is a (colour, shape) pair: 8 colours x 8 shapes = 64 kinds. Each kind has one fact
per relation (where it lives, what it eats, how it moves), drawn once with a fixed seed so that
every value is held by exactly 8 kinds. The language model's corpus states all 64 kinds' facts; the
multimodal data states the facts of the 48 *seen* kinds only. The 16 held-out kinds (each colour and
each shape exactly twice) split into 8 validation and 8 test kinds for okvqa.
"""

from __future__ import annotations

import random

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (214, 39, 40),
    "orange": (255, 127, 14),
    "yellow": (222, 190, 0),
    "green": (44, 160, 44),
    "blue": (31, 90, 200),
    "purple": (128, 60, 170),
    "pink": (240, 120, 190),
    "brown": (120, 72, 40),
}
SHAPES = ["circle", "square", "triangle", "star", "diamond", "hexagon", "cross", "heart"]
SIZES = ["small", "large"]

# Words for textvqa: short, common, none of them a colour, shape or size name.
WORDS = [
    "sun", "map", "key", "cat", "dog", "box", "cup", "hat", "pen", "bus", "car", "egg",
    "fox", "owl", "ink", "jam", "log", "net", "pig", "rug", "toy", "van", "web", "zoo",
    "bird", "boat", "cake", "door", "coin", "frog", "gold", "kite", "lamp", "leaf", "milk", "moon",
    "nest", "rock", "rose", "sand", "ship", "shoe", "snow", "tree", "wolf", "bell", "corn", "drum",
]

RELATIONS: dict[str, list[str]] = {
    "habitat": ["forest", "desert", "river", "mountain", "cave", "swamp", "meadow", "ocean"],
    "food": ["seeds", "honey", "leaves", "fish", "berries", "grass", "bugs", "nuts"],
    "motion": ["rolling", "hopping", "flying", "swimming", "crawling", "sliding", "walking", "jumping"],
}
# The okvqa question for each relation; {ref} is a partial description of the object ("the star").
QUESTIONS: dict[str, str] = {
    "habitat": "Where does the {ref} live?",
    "food": "What does the {ref} eat?",
    "motion": "How does the {ref} move?",
}
KB_SEED = 1234  # fixed: the zoo's LMs memorised these facts

Kind = tuple[str, str]  # (colour, shape)
KINDS: list[Kind] = [(c, s) for c in COLOURS for s in SHAPES]


def kind_name(kind: Kind) -> str:
    return f"{kind[0]} {kind[1]}"


def _held_out(offset: int) -> list[Kind]:
    # a cyclic diagonal: each colour and each shape appears once per offset
    cols = list(COLOURS)
    return [(cols[i], SHAPES[(i + offset) % len(SHAPES)]) for i in range(len(cols))]


HELD_OUT_VALIDATION: list[Kind] = _held_out(0)
HELD_OUT_TEST: list[Kind] = _held_out(4)
HELD_OUT: set[Kind] = set(HELD_OUT_VALIDATION) | set(HELD_OUT_TEST)
SEEN_KINDS: list[Kind] = [k for k in KINDS if k not in HELD_OUT]


def _draw_facts() -> dict[Kind, dict[str, str]]:
    rng = random.Random(KB_SEED)
    facts: dict[Kind, dict[str, str]] = {k: {} for k in KINDS}
    for rel, values in RELATIONS.items():
        pool = values * (len(KINDS) // len(values))  # each value held by 8 kinds
        rng.shuffle(pool)
        for kind, value in zip(KINDS, pool):
            facts[kind][rel] = value
    return facts


FACTS: dict[Kind, dict[str, str]] = _draw_facts()


def okvqa_kinds(split: str) -> list[Kind]:
    """Kinds an okvqa question may ask about in a split (train: seen kinds only)."""
    return {"train": SEEN_KINDS, "validation": HELD_OUT_VALIDATION, "test": HELD_OUT_TEST}[split]
