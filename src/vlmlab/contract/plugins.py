"""Plugins: modules that register tasks, connectors or metrics before a config is validated.

`plugins=[my_pkg.tasks, /abs/path/extra.py]` (a config key; an ablation file's `plugins:` list is passed
through it) imports each entry once per process: a module name by import, a .py path from its file.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

from vlmlab.contract.errors import ConfigError, one_line

_loaded: set[str] = set()


def plugin_path(entry: str, folder: Path) -> str:
    """A plugin listed in a file: a module name as is; a .py path made absolute against the file's folder."""
    if entry.endswith(".py"):
        p = Path(entry).expanduser()
        return str(p if p.is_absolute() else (folder / p).resolve())
    return entry


def load_plugins(entries) -> None:
    for entry in [str(e) for e in entries or []]:
        if entry in _loaded:
            continue
        try:
            if entry.endswith(".py"):
                path = Path(entry).expanduser().resolve()
                if not path.is_file():
                    raise FileNotFoundError(f"no such file {path}")
                name = f"vlmlab_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
                spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
            else:
                importlib.import_module(entry)
        except Exception as e:  # noqa: BLE001 -- any failure of a user's module is reported in one line
            raise ConfigError(f"plugins: cannot load {entry!r}: {type(e).__name__}: {one_line(e)}") from e
        _loaded.add(entry)
