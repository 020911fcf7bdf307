"""The persistent frozen-feature store: exact (a run with it has the loss history of a run without it, bit for
bit), shared across runs, keyed so that another encoder or world misses, off for a tower that trains, bounded
in size, and safe under two concurrent writers."""
import multiprocessing as mp
import sqlite3

import pytest
import torch
import torch.nn as nn

from vlmlab.config import compose
from vlmlab.model.build import build_vlm
from vlmlab import store as tensor_store
from vlmlab.model.feature_store import FeatureStore, fingerprint
from vlmlab.runner import run

TINY = ["vision=tiny", "llm=tiny", "debug=smoke", "optim.max_steps=12", "data.train_size=8", "reuse_finished=false"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VLMLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def cfg_at(tmp_path, name, extra=()):
    cfg = compose(TINY + list(extra))
    cfg.run_dir = str(tmp_path / name)
    return cfg


def test_a_run_with_the_store_equals_a_run_without_it(tmp_path, cache):
    # 32 training pictures, batch 4, 12 steps: the first run already re-reads pictures within its second epoch
    plain = run(cfg_at(tmp_path, "plain", ["vision.feature_store_mb=0"]))
    first = run(cfg_at(tmp_path, "first"))
    again = run(cfg_at(tmp_path, "again", ["seed=0"]))  # another run of a cell: every picture is in the store
    assert plain["feature_store"] is None
    assert first["feature_store"]["misses"] == 32 + 4 * 4 and first["feature_store"]["hits"] == 12 * 4 - 32
    assert again["feature_store"]["misses"] == 0 and again["feature_store"]["hits"] == 12 * 4 + 4 * 4
    for other in (first, again):
        assert other["loss_history"] == plain["loss_history"]  # bit for bit
        assert other["metrics"]["avg"] == plain["metrics"]["avg"]
    other_seed = run(cfg_at(tmp_path, "seed1", ["seed=1"]))  # seeds share the frozen tower's features too
    assert other_seed["feature_store"]["misses"] == 0


def test_another_world_or_encoder_misses_and_a_training_tower_has_no_store(tmp_path, cache):
    run(cfg_at(tmp_path, "a"))
    world = run(cfg_at(tmp_path, "world", ["data.seed=1"]))  # other pictures
    assert world["feature_store"]["hits"] < world["feature_store"]["misses"]
    lora = run(cfg_at(tmp_path, "lora", ["trainable.vision=lora"]))
    assert lora["feature_store"] is None
    vlm, _ = build_vlm(compose(TINY))
    before = fingerprint(vlm.vision)
    with torch.no_grad():
        next(vlm.vision.parameters())[0, 0] += 1e-3
    assert fingerprint(vlm.vision) != before


class Patches(nn.Module):
    """A stand-in tower: (N, 3, 8, 8) -> (N, 4, 6) features."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Linear(48, 6)

    def forward(self, x, mask=None):
        p = x.unfold(2, 4, 4).unfold(3, 4, 4).permute(0, 2, 3, 1, 4, 5).reshape(x.shape[0], 4, 48)
        return self.proj(p), None


def test_the_size_bound_evicts_least_recently_used(tmp_path, monkeypatch):
    monkeypatch.setattr(tensor_store, "USE_RESOLUTION_S", 0.0)  # recency to the access, not the minute
    tower = Patches().requires_grad_(False)
    store = FeatureStore(tmp_path / "f.sqlite", limit_mb=40 * 4 * 6 * 4 / 2**20, encoder_fingerprint=b"x")  # 40 views
    views = torch.randn(100, 3, 8, 8)
    keep = views[:4]
    for i in range(0, 100, 4):
        store.encode(tower, keep)  # used again and again: never the least recently used
        out, _ = store.encode(tower, views[i:i + 4])
        assert torch.equal(out, tower(views[i:i + 4])[0])
    total = sqlite3.connect(tmp_path / "f.sqlite").execute("SELECT SUM(nbytes), COUNT(*) FROM features").fetchone()
    assert total[0] <= store.limit and store.evicted > 0
    hits = store.hits
    store.encode(tower, keep)
    assert store.hits == hits + 4  # the recently used views survived eviction


def _writer(path, seed, out):
    torch.manual_seed(seed)
    tower, store = Patches().requires_grad_(False), FeatureStore(path, 64, b"shared")
    views = torch.randn(64, 3, 8, 8, generator=torch.Generator().manual_seed(1))  # both write the same keys
    ok = True
    for _ in range(5):
        for i in range(0, 64, 8):
            got, _ = store.encode(tower, views[i:i + 8])
            ok &= torch.equal(got, tower(views[i:i + 8])[0])
    out.put(ok)


def test_two_concurrent_jobs_share_the_store_safely(tmp_path):
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(tmp_path / "f.sqlite", s, out)) for s in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0] and [out.get(), out.get()] == [True, True]
    assert sqlite3.connect(tmp_path / "f.sqlite").execute("SELECT COUNT(*) FROM features").fetchone()[0] == 64


def test_the_world_grain_reaches_the_views_and_the_store_still_repeats(tmp_path, cache):
    """data.grain is fixed per view, so a grainy world's (world v3's default grain) second run reads every view from
    the store and equals a run without the store bit for bit; its views are not the grain-free world's (the store
    misses them)."""
    grain = ["data.grain=8"]
    plain = run(cfg_at(tmp_path, "plain", grain + ["vision.feature_store_mb=0"]))
    first = run(cfg_at(tmp_path, "first", grain))
    again = run(cfg_at(tmp_path, "again", grain))
    assert first["feature_store"]["misses"] == 32 + 4 * 4 and again["feature_store"]["misses"] == 0
    assert again["loss_history"] == first["loss_history"] == plain["loss_history"]
    clean = run(cfg_at(tmp_path, "clean", ["data.grain=0"]))
    assert clean["feature_store"]["misses"] == 32 + 4 * 4  # not one view in common (its hits are its own re-reads)
    assert clean["loss_history"] != plain["loss_history"]
