"""Where vlmlab keeps what it builds: the cache root (world data, backbone zoo) and the repo's run folders."""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """$VLMLAB_CACHE, default ~/.cache/vlmlab. Holds the toy world's datasets and the backbone zoo."""
    return Path(os.environ.get("VLMLAB_CACHE", Path.home() / ".cache" / "vlmlab")).expanduser()


def repo_root() -> Path:
    """The repository's root (conf/, ablations/, results/ are under it)."""
    return Path(__file__).resolve().parents[2]


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The commit of the code that ran (with '-dirty' when the tree has changes); None outside git."""
    import subprocess

    here = Path(cwd or Path(__file__).parent)
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None
