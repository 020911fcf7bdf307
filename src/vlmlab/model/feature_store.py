"""A persistent store of a frozen vision tower's features, shared by every run, cell and seed on the machine.

Most cells of a findings run share one frozen encoder on the same pictures, so its forward pass need run once
per picture per machine. A view's key is a hash of (the encoder's fingerprint, the view's shape, its pixels):
  - the fingerprint hashes the tower's class, weights and buffers, so another encoder (or a retrained zoo) misses;
  - the pixels carry everything the image pipeline did: resolution, splitting, normalisation, and the world
    version and seed that drew the picture. Any change of encoder, image config or world misses.
Values are one view's features (P, D), in the dtype the tower produced.

Storage: one SQLite database ($VLMLAB_CACHE/features.sqlite, WAL journal). Every insert is a transaction, so a
crash never leaves a half-written entry, and concurrent jobs (the sweep's two cells, torchrun ranks) read and
write it safely (writers queue on SQLite's lock, 120 s timeout). Size bound: `vision.feature_store_mb`; when the
stored features pass it, the least recently used entries (last use known to the minute) are deleted down to 90%
of it.

Exact where it is on: only the plain path (a batch of equal, unpadded views) of a tower with nothing to train
and no dropout (`cacheable`). Features of a view do not depend on the other views of its batch there (checked
on this CPU: batches of 16, 7 + 9 and 1 give the same bits), so a run with the store reproduces a run without
it bit for bit (tests/test_feature_store.py). Padded NaViT batches (image.mode=preserve) always run the tower.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

USE_RESOLUTION_S = 60.0  # last-use times (for eviction) are refreshed at most once a minute per entry
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def cacheable(vision: nn.Module) -> bool:
    """A tower whose features are a pure function of the pixels: nothing trains, no active dropout."""
    frozen = not any(p.requires_grad for p in vision.parameters())
    dropout = any(isinstance(m, nn.Dropout) and m.p > 0 for m in vision.modules())
    configs = [m.config for m in vision.modules() if hasattr(m, "config")]  # functional dropout (e.g. attention)
    config_dropout = any(float(getattr(c, k, 0.0) or 0.0) > 0 for c in configs
                         for k in ("attention_dropout", "hidden_dropout_prob", "attention_probs_dropout_prob", "dropout"))
    return frozen and not dropout and not config_dropout


def fingerprint(vision: nn.Module) -> bytes:
    """A hash of the tower's class, parameter and buffer names, shapes, dtypes and values."""
    h = hashlib.blake2b(type(vision).__qualname__.encode(), digest_size=16)
    for name, t in sorted(vision.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.digest()


class FeatureStore:
    def __init__(self, path: str | Path, limit_mb: float, encoder_fingerprint: bytes):
        self.path, self.limit, self.fp = Path(path), int(limit_mb * 2**20), encoder_fingerprint
        self.hits = self.misses = self.evicted = 0
        self._db, self._pid, self._since_check = None, None, 0

    def _conn(self) -> sqlite3.Connection:
        if self._db is None or self._pid != os.getpid():  # a forked process opens its own connection
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=120, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS features (key BLOB PRIMARY KEY, dtype TEXT, shape TEXT, "
                       "data BLOB, nbytes INTEGER, used REAL)")
            db.execute("CREATE INDEX IF NOT EXISTS features_used ON features(used)")
            self._db, self._pid = db, os.getpid()
        return self._db

    def key(self, view: torch.Tensor) -> bytes:
        data = view.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
        return hashlib.blake2b(self.fp + str(tuple(view.shape)).encode() + data, digest_size=20).digest()

    def _get(self, keys: list[bytes]) -> dict[bytes, torch.Tensor]:
        db, found, stale, now = self._conn(), {}, [], time.time()
        for i in range(0, len(keys), 500):  # SQLite's limit on bound parameters
            part = keys[i:i + 500]
            rows = db.execute(f"SELECT key, dtype, shape, data, used FROM features WHERE key IN "
                              f"({','.join('?' * len(part))})", part).fetchall()
            for key, dtype, shape, data, used in rows:
                dims = tuple(int(s) for s in shape.split(","))
                flat = torch.from_numpy(np.frombuffer(data, dtype=np.uint8).copy())
                found[key] = flat.view(DTYPES[dtype]).view(dims)
                if now - used > USE_RESOLUTION_S:
                    stale.append(key)
        for i in range(0, len(stale), 500):  # recency is kept to the minute: no write on most training steps
            part = stale[i:i + 500]
            db.execute(f"UPDATE features SET used = ? WHERE key IN ({','.join('?' * len(part))})", [now, *part])
        return found

    def _put(self, items: dict[bytes, torch.Tensor]) -> None:
        db, now = self._conn(), time.time()
        rows = []
        for key, t in items.items():
            t = t.detach().to("cpu").contiguous()
            dtype = str(t.dtype).removeprefix("torch.")
            rows.append((key, dtype, ",".join(map(str, t.shape)), t.view(torch.uint8).numpy().tobytes(), t.nbytes, now))
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT OR IGNORE INTO features VALUES (?, ?, ?, ?, ?, ?)", rows)
        db.execute("COMMIT")
        self._since_check += sum(r[4] for r in rows)
        if self._since_check > 0.02 * self.limit:
            self._since_check = 0
            self.evict()

    def evict(self) -> None:
        """Least recently used entries go until the store holds at most 90% of its bound."""
        db = self._conn()
        total = db.execute("SELECT COALESCE(SUM(nbytes), 0) FROM features").fetchone()[0]
        if total <= self.limit:
            return
        db.execute("BEGIN IMMEDIATE")
        excess, freed, gone = total - int(0.9 * self.limit), 0, []
        for key, nbytes in db.execute("SELECT key, nbytes FROM features ORDER BY used"):
            if freed >= excess:
                break
            gone.append((key,))
            freed += nbytes
        db.executemany("DELETE FROM features WHERE key = ?", gone)
        db.execute("COMMIT")
        self.evicted += len(gone)

    def encode(self, vision: nn.Module, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, P, D) features and an all-true (N, P) mask for N equal-shape views, running the tower on misses only."""
        keys = [self.key(v) for v in pixel_values]
        found = self._get(list(dict.fromkeys(keys)))
        miss = [i for i, k in enumerate(keys) if k not in found]
        if miss:
            with torch.no_grad():
                feats, _ = vision(pixel_values[miss], None)  # (M, P, D)
            fresh = {keys[i]: feats[j] for j, i in enumerate(miss)}
            self._put(fresh)
            found.update(fresh)
        self.hits += len(keys) - len(miss)
        self.misses += len(miss)
        out = torch.stack([found[k].to(pixel_values.device) for k in keys])  # (N, P, D)
        return out, torch.ones(out.shape[:2], dtype=torch.bool, device=out.device)

    def stats(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "evicted": self.evicted, "path": str(self.path)}
