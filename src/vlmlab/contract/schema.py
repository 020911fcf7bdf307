"""Allowed ranges of numeric knobs, declared next to each field of the config dataclasses.

    n_latents: int = knob(64, ge=1)    # a field whose value must be an integer >= 1

`check_ranges(cfg)` walks a config dataclass (recursively) and raises ConfigError naming the first key
outside its range, e.g. "connector.n_latents=0 is not allowed; allowed: an integer >= 1".
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import field
from typing import Any

from vlmlab.contract.errors import ConfigError

_BOUNDS = ("ge", "gt", "le", "lt")
_WORDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def knob(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING, ge=None, gt=None,
         le=None, lt=None, length: int | None = None):
    """A dataclass field carrying its allowed range (for lists: every element, and optionally their count)."""
    meta = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt), ("length", length)) if v is not None}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata={"range": meta})
    return field(default=default, metadata={"range": meta})


def describe(meta: dict, value: Any) -> str:
    """'an integer >= 1', 'a number > 0 and <= 1', 'a list of 3 numbers >= 0'."""
    bounds = " and ".join(f"{_WORDS[k]} {meta[k]}" for k in _BOUNDS if k in meta)
    if isinstance(value, (list, tuple)):
        count = f"{meta['length']} " if "length" in meta else ""
        return f"a list of {count}numbers{' ' + bounds if bounds else ''}"
    kind = "an integer" if isinstance(value, int) and not isinstance(value, bool) else "a number"
    return f"{kind} {bounds}".strip()


def _ok(x, meta: dict) -> bool:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or (isinstance(x, float) and math.isnan(x)):
        return False
    return all(((k != "ge" or x >= v) and (k != "gt" or x > v) and (k != "le" or x <= v) and (k != "lt" or x < v))
               for k, v in meta.items() if k in _BOUNDS)


def check_value(key: str, value: Any, meta: dict) -> None:
    if value is None or not meta:
        return
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if ("length" in meta and len(items) != meta["length"]) or not all(_ok(x, meta) for x in items):
        raise ConfigError(f"{key}={value!r} is not allowed; allowed: {describe(meta, value)}")


def check_ranges(cfg: Any, prefix: str = "") -> None:
    """Raise ConfigError for the first field of `cfg` (a dataclass, walked recursively) outside its range."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            check_ranges(value, key + ".")
        else:
            check_value(key, value, f.metadata.get("range", {}))
