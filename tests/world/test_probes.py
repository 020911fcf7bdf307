"""The probes' view cache: a zoo build scores every checkpoint on the same probe scenes, so their views are made once
per process, and a cached view is the same tensor as a fresh one."""
import torch

from vlmlab.world import probes
from vlmlab.world.config import WorldConfig


def _tiny():
    from vlmlab.config import compose
    from vlmlab.model.navit import load_vision_encoder

    return load_vision_encoder(compose(["scale=base", "vision=tiny"]).vision.name_or_path).eval()


def test_probe_views_are_made_once_and_are_the_fresh_views(monkeypatch):
    enc, world = _tiny(), WorldConfig(long_side_min=160, long_side_max=200)
    some = probes.scenes("probe/words", 3, (1, 1), True, world)
    probes._VIEW_CACHE.clear()
    rendered = []
    real = probes.render
    monkeypatch.setattr(probes, "render", lambda s: rendered.append(s) or real(s))
    first = probes.scene_views(enc, some, split=2, grain=8.0)
    again = probes.scene_views(enc, some, split=2, grain=8.0)
    assert len(rendered) == 3 and again is first  # the second call draws nothing
    assert [v.shape[0] for v in first] == [5, 5, 5]  # 2 x 2 crops and the whole picture
    probes._VIEW_CACHE.clear()
    fresh = probes.scene_views(enc, some, split=2, grain=8.0)
    assert all(torch.equal(a, b) for a, b in zip(first, fresh))
    other = probes.scene_views(enc, some, split=2, grain=0.0)  # another grain is another view
    assert len(rendered) == 9 and not torch.equal(other[0], fresh[0])
    boxes = [probes.word_box(s) for s in some]
    cached = probes.local_features(enc, some, boxes, split=2, grain=8.0)
    probes._VIEW_CACHE.clear()
    assert torch.equal(cached, probes.local_features(enc, some, boxes, split=2, grain=8.0))


def test_the_cache_keeps_a_bounded_number_of_scene_lists():
    enc, world = _tiny(), WorldConfig(long_side_min=64, long_side_max=64)
    probes._VIEW_CACHE.clear()
    for k in range(probes.VIEW_CACHE_SETS + 2):
        probes.scene_views(enc, probes.scenes(f"probe/test{k}", 1, (1, 1), False, world))
    assert len(probes._VIEW_CACHE) == probes.VIEW_CACHE_SETS
