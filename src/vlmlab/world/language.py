"""How the world is put into words: referring expressions, plurals, numbers and captions.

Shared by the task generators (questions.py), the LM corpus (corpus.py) and SigLIP pretraining
(vision.py), so that all three describe scenes with the same phrases.
"""

from __future__ import annotations

from vlmlab.world.scenes import Obj, Scene

NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six"]
# attribute sets a referring expression may use, most specific last
REF_ATTRS: list[tuple[str, ...]] = [
    ("shape",), ("colour",), ("size",), ("colour", "shape"), ("size", "shape"), ("size", "colour"),
    ("size", "colour", "shape"),
]


def article(phrase_: str) -> str:
    return "an" if phrase_[0] in "aeiou" else "a"


def plural(shape: str) -> str:
    return shape + "es" if shape.endswith(("s", "x", "ch", "sh")) else shape + "s"


def phrase(o: Obj, attrs: tuple[str, ...]) -> str:
    """'large red star', 'red object', 'star' ..."""
    words = [getattr(o, a) for a in ("size", "colour") if a in attrs]
    return " ".join(words + [o.shape if "shape" in attrs else "object"])


def unique_refs(target: Obj, objects: list[Obj], allowed: list[tuple[str, ...]] | None = None) -> list[str]:
    """Phrases from `allowed` attribute sets that single out `target` among `objects`."""
    out = []
    for attrs in allowed or REF_ATTRS:
        key = tuple(getattr(target, a) for a in attrs)
        if sum(tuple(getattr(o, a) for a in attrs) == key for o in objects) == 1:
            out.append(phrase(target, attrs))
    return out


def _listing(objects: list[Obj], attrs: tuple[str, ...]) -> str:
    """Group equal descriptions in order of first appearance: 'a red star, two blue circles and a cube'."""
    keys = [phrase(o, attrs) for o in objects]
    order = list(dict.fromkeys(keys))
    parts = []
    for k in order:
        n = keys.count(k)
        if n == 1:
            parts.append(f"{article(k)} {k}")
        else:
            *adj, shape = k.split()
            parts.append(" ".join([NUMBER_WORDS[n], *adj, plural(shape)]))
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def captions(scene: Scene) -> list[str]:
    """Reference captions; the first is the canonical one (objects left to right)."""
    objs = sorted(scene.objects, key=lambda o: o.x)
    full, bare = ("size", "colour", "shape"), ("colour", "shape")
    n = len(objs)
    count = f"{NUMBER_WORDS[n]} object{'s' if n > 1 else ''}"
    return [
        _listing(objs, full),
        f"{count}: {_listing(objs, full)}",
        _listing(objs, bare),
        _listing(objs[::-1], full),
    ]
