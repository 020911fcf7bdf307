"""The world's text pages (world/pages.py): targets on the glyphs, the pool under the world's grain, and the pages'
objective in the zoo's tower pretraining (VisionSpec.pages): it trains, leaves the scenes' batches alone and
resumes bit-identical."""
import random

import numpy as np
import pytest
import torch

from vlmlab.world import kb
from vlmlab.world.pages import PagesObjective, PagesSpec, draw_page, training_pages
from vlmlab.world.script import LETTERS


@pytest.fixture(scope="module")
def tok():
    from vlmlab.world.corpus import CorpusSpec, build_corpus
    from vlmlab.world.tokenizer import train_tokenizer

    return train_tokenizer(build_corpus(CorpusSpec(fact_repeats=1, scene_lines=200, misc_lines=100, qa_lines=100)))


def test_a_one_word_page_marks_its_word_and_letters_where_the_ink_is():
    img, targets, words = draw_page(random.Random(0), "binary4x4", 3.0, view=96, grid=12, canvas=480, one_word=True)
    assert img.size == (480, 480) and targets.shape == (2, 144) and len(words) == 1
    word, mask = words[0]
    assert set(targets[1][torch.from_numpy(mask)].tolist()) == {word + 1}
    assert set(targets[1].tolist()) == {0, word + 1}
    letters = [LETTERS[v - 1] for v in targets[0].tolist() if v > 0]
    assert set(letters) <= set(kb.WORDS[word])
    ink = np.asarray(img, np.int16).max(-1) < 60
    assert ink.any()  # 3-px view cells on a 480-px page: 15 canvas px, solid ink


def test_training_pages_carry_the_world_grain_and_keep_their_targets():
    spec = PagesSpec(pool=6, max_words=10)
    clean_px, clean_tg = training_pages(spec, 32, 4, 0.0, "test/pages")
    px, tg = training_pages(spec, 32, 4, 8.0, "test/pages")
    assert px.shape == (6, 3, 32, 32) and px.dtype == torch.uint8 and torch.equal(tg, clean_tg)
    assert 6.5 < float((px.float() - clean_px.float()).std()) < 8.5
    again, _ = training_pages(spec, 32, 4, 8.0, "test/pages")
    assert torch.equal(px, again)  # fixed per page


def _spec(steps, pages):
    from vlmlab.world.vision import VisionSpec

    return VisionSpec(hidden=32, layers=1, heads=2, intermediate=64, image_size=32, text_len=16, steps=steps, batch=4,
                      pool=8, pages=pages)


def test_the_pages_objective_trains_and_leaves_the_scene_batches_alone(tok, monkeypatch):
    import vlmlab.world.vision as V

    pages = PagesSpec(batch=2, pool=4, max_words=8)
    seen = []
    real = torch.randperm
    monkeypatch.setattr(V.torch, "randperm",
                        lambda n, generator=None: seen.append(real(n, generator=generator)) or seen[-1])
    plain = V.train_siglip(tok, _spec(3, None))
    plain_draws, seen[:] = list(seen), []
    calls = []
    loss = PagesObjective.loss
    monkeypatch.setattr(PagesObjective, "loss", lambda self, vm: calls.append(1) or loss(self, vm))
    with_pages = V.train_siglip(tok, _spec(3, pages))
    assert len(calls) == 3
    assert len(plain_draws) == len(seen) and all(torch.equal(a, b) for a, b in zip(plain_draws, seen))
    differ = [not torch.equal(a, b) for a, b in zip(plain.vision_model.parameters(), with_pages.vision_model.parameters())]
    assert any(differ)  # the pages' gradient reaches the tower
    w3 = PagesObjective(PagesSpec(pool=2, max_words=4, weight=3.0), 32, 32, 8, 0.0, 0)
    w1 = PagesObjective(PagesSpec(pool=2, max_words=4), 32, 32, 8, 0.0, 0)
    with torch.no_grad():
        three, one = float(w3.loss(plain.vision_model)), float(w1.loss(plain.vision_model))
    assert three == pytest.approx(3 * one, rel=1e-5)  # the same pages, heads and batch


def test_a_run_with_pages_resumes_bit_identical(tok, tmp_path, stopped_at):
    import vlmlab.world.vision as V

    spec = _spec(6, PagesSpec(batch=2, pool=4, max_words=8))
    straight = V.train_siglip(tok, spec)
    state = tmp_path / "state.pt"
    with stopped_at(3):
        V.train_siglip(tok, spec, state_path=state, save_every=3)
    resumed = V.train_siglip(tok, spec, state_path=state, save_every=3)
    for (k, x), (_, y) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(x, y), k
