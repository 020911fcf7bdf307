"""A persistent, size-bounded key -> tensor store in one SQLite file, shared by every process on the machine.

Two caches are built on it: the feature store (model/feature_store.py: a frozen tower's features per view) and the
view store (images.py: the image pipeline's views per picture). Both are exact: a key hashes everything its value
is a function of, so a hit serves the same bits a recomputation would make.

One SQLite database per store (WAL journal). Every insert is a transaction, so a crash never leaves a half-written
entry, and concurrent jobs (the sweep's two cells, torchrun ranks, DataLoader workers) read and write it safely
(writers queue on SQLite's lock, 120 s timeout); a forked or unpickled copy opens its own connection. Size bound:
`limit_mb`; when the stored values pass it, the least recently used entries (last use known to the minute) are
deleted down to 90% of it.
"""
from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import numpy as np
import torch

USE_RESOLUTION_S = 60.0  # last-use times (for eviction) are refreshed at most once a minute per entry
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "uint8": torch.uint8}


class TensorStore:
    def __init__(self, path: str | Path, limit_mb: float, table: str):
        if not table.isidentifier():
            raise ValueError(f"table name {table!r} is not an identifier")
        self.path, self.limit, self.table = Path(path), int(limit_mb * 2**20), table
        self.hits = self.misses = self.evicted = 0
        self._db, self._pid, self._since_check = None, None, 0

    def __getstate__(self) -> dict:  # a pickled copy (a spawned DataLoader worker) opens its own connection
        return {**self.__dict__, "_db": None, "_pid": None}

    def _conn(self) -> sqlite3.Connection:
        if self._db is None or self._pid != os.getpid():  # a forked process opens its own connection
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=120, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (key BLOB PRIMARY KEY, dtype TEXT, shape TEXT, "
                       "data BLOB, nbytes INTEGER, used REAL)")
            db.execute(f"CREATE INDEX IF NOT EXISTS {self.table}_used ON {self.table}(used)")
            self._db, self._pid = db, os.getpid()
        return self._db

    def get(self, keys: list[bytes]) -> dict[bytes, torch.Tensor]:
        """The stored values of those keys that are stored (the others are absent from the dict)."""
        db, found, stale, now = self._conn(), {}, [], time.time()
        for i in range(0, len(keys), 500):  # SQLite's limit on bound parameters
            part = keys[i:i + 500]
            rows = db.execute(f"SELECT key, dtype, shape, data, used FROM {self.table} WHERE key IN "
                              f"({','.join('?' * len(part))})", part).fetchall()
            for key, dtype, shape, data, used in rows:
                dims = tuple(int(s) for s in shape.split(","))
                flat = torch.from_numpy(np.frombuffer(data, dtype=np.uint8).copy())
                found[key] = flat.view(DTYPES[dtype]).view(dims)
                if now - used > USE_RESOLUTION_S:
                    stale.append(key)
        for i in range(0, len(stale), 500):  # recency is kept to the minute: no write on most reads
            part = stale[i:i + 500]
            db.execute(f"UPDATE {self.table} SET used = ? WHERE key IN ({','.join('?' * len(part))})", [now, *part])
        return found

    def put(self, items: dict[bytes, torch.Tensor]) -> None:
        db, now = self._conn(), time.time()
        rows = []
        for key, t in items.items():
            t = t.detach().to("cpu").contiguous()
            dtype = str(t.dtype).removeprefix("torch.")
            rows.append((key, dtype, ",".join(map(str, t.shape)), t.view(torch.uint8).numpy().tobytes(), t.nbytes, now))
        db.execute("BEGIN IMMEDIATE")
        db.executemany(f"INSERT OR IGNORE INTO {self.table} VALUES (?, ?, ?, ?, ?, ?)", rows)
        db.execute("COMMIT")
        self._since_check += sum(r[4] for r in rows)
        if self._since_check > 0.02 * self.limit:
            self._since_check = 0
            self.evict()

    def evict(self) -> None:
        """Least recently used entries go until the store holds at most 90% of its bound."""
        db = self._conn()
        total = db.execute(f"SELECT COALESCE(SUM(nbytes), 0) FROM {self.table}").fetchone()[0]
        if total <= self.limit:
            return
        db.execute("BEGIN IMMEDIATE")
        excess, freed, gone = total - int(0.9 * self.limit), 0, []
        for key, nbytes in db.execute(f"SELECT key, nbytes FROM {self.table} ORDER BY used"):
            if freed >= excess:
                break
            gone.append((key,))
            freed += nbytes
        db.executemany(f"DELETE FROM {self.table} WHERE key = ?", gone)
        db.execute("COMMIT")
        self.evicted += len(gone)

    def stats(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "evicted": self.evicted, "path": str(self.path)}
