"""Resolve a backbone reference to something `from_pretrained` takes, with errors that say how to get it.

A reference is one of:
  zoo:<name>   a backbone of the toy world's zoo (built on demand, see `make backbones`)
  <directory>  a local directory written by `save_pretrained`
  <hub id>     e.g. "google/siglip-so400m-patch14-384" (needs the hub, or a warm HF cache)
"""
from __future__ import annotations

import os
from pathlib import Path


class BackboneNotFound(RuntimeError):
    """A backbone reference that cannot be loaded; the message says how to get it."""


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
    return ref  # a hub id: from_pretrained fetches it, or finds it in the HF cache


def from_pretrained(cls, ref: str, trust_remote_code: bool = False, **kwargs):
    """`cls.from_pretrained` on a resolved reference; a missing hub model gets a clear message."""
    path = resolve_pretrained(ref)
    try:
        return cls.from_pretrained(path, trust_remote_code=trust_remote_code, **kwargs)
    except OSError as e:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        raise BackboneNotFound(
            f"{ref}: could not load ({type(e).__name__}: {str(e).splitlines()[0]}). "
            + ("HF_HUB_OFFLINE=1 is set: download it on a machine with hub access, or pass a local directory."
               if offline else "Check the hub id and your network, or pass a local directory; "
               "toy backbones come from `make backbones`.")) from e
