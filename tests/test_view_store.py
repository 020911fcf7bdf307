"""The view store (view_store.py, images.py): views read back from it are the pipeline's own bits, its keys hold
every setting that makes pixels, a run with it equals a run without it, and a changed pipeline is caught."""
import hashlib
import io
import json

import datasets
import numpy as np
import PIL
import pytest
import torch
from PIL import Image

from vlmlab.config import compose
from vlmlab.images import VIEWS_VERSION, ImageConfig, ImageProcessor
from vlmlab.runner import run
from vlmlab.view_store import ViewStore, picture_size, undecoded


def png(width=70, height=40, seed=0, exif_orientation=None) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buf = io.BytesIO()
    if exif_orientation is None:
        Image.fromarray(pixels).save(buf, format="PNG")
    else:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        Image.fromarray(pixels).save(buf, format="JPEG", exif=exif)
    return buf.getvalue()


SETTINGS = {
    "square": dict(cfg=ImageConfig(size=16)),
    "preserve": dict(cfg=ImageConfig(mode="preserve", min_size=8, max_size=32)),
    "split": dict(cfg=ImageConfig(size=16, split=2)),
    "blind": dict(cfg=ImageConfig(size=16, split=2, blind=True)),
    "grain": dict(cfg=ImageConfig(size=16, split=2), grain=8.0),
}


@pytest.mark.parametrize("name", SETTINGS)
def test_stored_views_are_the_pipelines_own_bits(tmp_path, name):
    s = SETTINGS[name]
    cfg = ImageConfig(**{**s["cfg"].__dict__, "mean": [0.5] * 3, "std": [0.5] * 3})
    plain = ImageProcessor(cfg, 8, s.get("grain", 0.0))
    store = ViewStore(tmp_path / "views.sqlite", 64)
    stored = ImageProcessor(cfg, 8, s.get("grain", 0.0), store)
    for seed in range(3):
        data = png(seed=seed)
        want = plain(Image.open(io.BytesIO(data)), "vqa-train-000001-count", train=False)
        for _ in range(2):  # a miss, then a hit
            got = stored({"bytes": data, "path": None}, "vqa-train-000001-count", train=False)
            assert len(got) == len(want) and all(torch.equal(a, b) for a, b in zip(got, want))
    assert (store.misses, store.hits) == (3, 3)


def test_the_key_holds_every_setting_that_makes_pixels(tmp_path):
    store, data = ViewStore(tmp_path / "views.sqlite", 64), png()
    base = ImageConfig(size=16, split=2, mean=[0.5] * 3, std=[0.5] * 3)

    def first_key(cfg, grain=0.0, split=True):
        return ViewStore.keys(ImageProcessor(cfg, 8, grain, store).pipeline, split, data, 1)[0]

    ref = first_key(base)
    others = [first_key(base, grain=8.0), first_key(base, split=False), first_key(ImageConfig(**{**base.__dict__, "size": 24})),
              first_key(ImageConfig(**{**base.__dict__, "split": 3})), first_key(ImageConfig(**{**base.__dict__, "blind": True})),
              first_key(ImageConfig(**{**base.__dict__, "mean": [0.4, 0.5, 0.5]})),
              first_key(ImageConfig(**{**base.__dict__, "mode": "preserve", "min_size": 8, "max_size": 16})),
              ViewStore.keys(ImageProcessor(base, 8, 0.0, store).pipeline, True, png(seed=1), 1)[0]]
    assert ref not in others and len(set(others)) == len(others)
    assert json.loads(ImageProcessor(base, 8, 0.0, store).pipeline)["views"] == VIEWS_VERSION
    # the normalisation runs after the store: a processor with another std shares the views and still gets its own bits
    other_std = ImageConfig(**{**base.__dict__, "std": [0.25] * 3})
    assert first_key(other_std) == ref
    ImageProcessor(base, 8, 0.0, store)({"bytes": data, "path": None}, train=False)
    got = ImageProcessor(other_std, 8, 0.0, store)({"bytes": data, "path": None}, train=False)
    want = ImageProcessor(other_std, 8)(Image.open(io.BytesIO(data)), train=False)
    assert store.hits == 1 and all(torch.equal(a, b) for a, b in zip(got, want))


PINNED_UNDER = ("13.0.0", "2.4.6")


def test_the_pipelines_pixels_are_pinned():
    """If this fails, the code changed the pixels a setting makes: bump images.VIEWS_VERSION (stored views made by
    the old code would be served otherwise), then update the hash. Pinned under one Pillow and NumPy (their versions
    are in the store's keys, so an upgrade cannot serve stale views; it only skips this check)."""
    if (PIL.__version__, np.__version__) != PINNED_UNDER:
        pytest.skip(f"the pin was taken under Pillow, NumPy {PINNED_UNDER}")
    proc = ImageProcessor(ImageConfig(size=16, split=2, mean=[0.5] * 3, std=[0.5] * 3), 8, 8.0)
    views = proc.make_views(Image.open(io.BytesIO(png())), split=True)
    digest = hashlib.blake2b(b"".join(v.tobytes() for v in views), digest_size=8).hexdigest()
    assert (VIEWS_VERSION, digest) == ("1", "991ef52745db8ca3")


def test_undecoded_pictures_keep_their_size_and_other_columns_stay():
    feats = datasets.Features({"id": datasets.Value("string"), "image": datasets.Image()})
    pictures = [png(70, 40), png(30, 50, exif_orientation=6)]  # 6: turned 90 degrees, the sides swap
    ds = datasets.Dataset.from_dict({"id": ["a", "b"], "image": [{"bytes": b, "path": None} for b in pictures]},
                                    features=feats)
    raw = undecoded(ds)
    assert raw.features["image"].decode is False and raw["id"] == ["a", "b"]
    assert [picture_size(p) for p in raw["image"]] == [p.size for p in ds["image"]] == [(70, 40), (50, 30)]
    assert undecoded(raw) is raw and undecoded([1, 2]) == [1, 2]


TINY = ["vision=tiny", "llm=tiny", "debug=smoke", "optim.max_steps=12", "data.train_size=8", "reuse_finished=false",
        "vision.feature_store_mb=0", "data.grain=8", "image=split"]


def test_a_run_with_the_view_store_equals_a_run_without_it(tmp_path, monkeypatch):
    monkeypatch.setenv("VLMLAB_CACHE", str(tmp_path / "cache"))

    def at(name, extra=()):
        cfg = compose(TINY + list(extra))
        cfg.run_dir = str(tmp_path / name)
        return cfg

    plain = run(at("plain", ["vision.view_store_mb=0"]))
    first, again = run(at("first")), run(at("again"))
    assert plain["view_store"] is None
    assert first["view_store"]["misses"] > 0 and again["view_store"]["misses"] == 0 and again["view_store"]["hits"] > 0
    for other in (first, again):
        assert other["loss_history"] == plain["loss_history"]  # bit for bit
        scores = [{k: v for k, v in m["metrics"].items() if "latency" not in k} for m in (other, plain)]
        assert scores[0] == scores[1] and len(scores[0]) >= 5  # four tasks and avg
        assert other["visual_tokens_per_image"] == plain["visual_tokens_per_image"]
    for task in ("vqa", "textvqa"):
        preds = [json.loads((tmp_path / n / "predictions.json").read_text())[task] for n in ("plain", "again")]
        assert preds[0] == preds[1]
