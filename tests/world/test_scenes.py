"""The scene generator: deterministic, varied canvases, and answers true of the pixels drawn."""

import dataclasses

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vlmlab.contract.tasks import task_names
from vlmlab.world import kb
from vlmlab.world.config import WORLD_V2, WorldConfig
from vlmlab.world.language import plural
from vlmlab.world.questions import make_sample
from vlmlab.world.scenes import GLYPHS, SHADE, TEXTURES, Obj, Scene, pattern, render
from vlmlab.world.script import word_cells
from vlmlab.world.vision_targets import word_box

CFG = WorldConfig()
V2 = WorldConfig(**WORLD_V2)  # world v2's knobs


def blobs(img: Image.Image, background: tuple[int, int, int]) -> int:
    """Connected components of pixels that differ clearly from the background."""
    diff = np.abs(np.asarray(img, dtype=np.int16) - np.array(background)).max(-1)
    mask = Image.fromarray(((diff > 60) * 255).astype(np.uint8)).copy()  # copy: fromarray may share a read-only buffer
    n = 0
    while True:
        ys, xs = np.nonzero(np.asarray(mask))
        if len(xs) == 0:
            return n
        ImageDraw.floodfill(mask, (int(xs[0]), int(ys[0])), 0)
        n += 1


def test_deterministic():
    for task in task_names():
        a, b = make_sample(CFG, task, "train", 7), make_sample(CFG, task, "train", 7)
        assert (a.question, a.answers, a.id) == (b.question, b.answers, b.id)
        assert render(a.scene).tobytes() == render(b.scene).tobytes()
    assert make_sample(CFG, "vqa", "train", 7).scene != make_sample(WorldConfig(seed=1), "vqa", "train", 7).scene


def test_canvases_vary_in_size_and_aspect():
    sizes = [make_sample(CFG, "caption", "train", i).scene for i in range(200)]
    aspects = [s.width / s.height for s in sizes]
    assert min(aspects) < 1 / 2.5 and max(aspects) > 2.5
    assert all(1 / 3.05 <= a <= 3.05 for a in aspects)
    assert len({max(s.width, s.height) for s in sizes}) > 50


def test_objects_drawn_match_the_scene_and_counts():
    for i in range(40):
        s = make_sample(CFG, "vqa", "validation", i)
        s.scene.word = None  # count shapes only
        assert blobs(render(s.scene), s.scene.background) == len(s.scene.objects)
        if s.qtype == "count":
            objs, q = s.scene.objects, s.question
            if q == "How many objects are there?":
                want = len(objs)
            elif any(f"many {c} objects" in q for c in kb.COLOURS):
                want = sum(f"many {o.colour} objects" in q for o in objs)
            else:
                want = sum(f"many {plural(o.shape)} are" in q for o in objs)
            assert s.answers[0] == str(want)


def test_vqa_answers_are_true_of_the_scene():
    for i in range(300):
        s = make_sample(CFG, "vqa", "test", i)
        objs = s.scene.objects
        if s.qtype == "exist":
            colour, shape = s.question.removeprefix("Is there a ").rstrip("?").split()
            assert s.answers == (["yes"] if (colour, shape) in {o.kind for o in objs} else ["no"])
        elif s.qtype == "colour":
            assert s.answers[0] in {o.colour for o in objs}
        elif s.qtype == "shape":
            assert s.answers[0] in {o.shape for o in objs}
        assert s.answers[0] in {"yes", "no"} or s.qtype != "position"


def test_word_asked_about_is_the_word_rendered():
    """Template matching: of all words, the answer's glyphs fit the rendered ink best."""
    for i in range(8):
        s = make_sample(CFG, "textvqa", "test", i)
        assert s.scene.word == s.answers[0]
        img = np.asarray(render(s.scene), dtype=np.float32)
        errs = {}
        for w in kb.WORDS:
            probe = dataclasses.replace(s.scene, objects=[], word=w)
            l, t, r, b = (round(v) for v in word_box(probe))
            errs[w] = np.abs(np.asarray(render(probe), dtype=np.float32)[t:b, l:r] - img[t:b, l:r]).mean()
        assert min(errs, key=errs.get) == s.answers[0]


def test_script_glyphs_differ_and_share_one_mean():
    """World v2's script (grey2x2): every letter has its own glyph, and all glyphs have the same mean grey: only
    resolved cells tell them apart."""
    letters = set("".join(kb.WORDS))
    assert letters <= set(GLYPHS) and len(set(GLYPHS.values())) == len(GLYPHS)
    assert len({sum(g) for g in GLYPHS.values()}) == 1
    s = make_sample(V2, "textvqa", "test", 0).scene
    cells = word_cells(s.word, *s.word_xy, s.cell)
    assert len(cells) == 4 * len(s.word)
    l, t, r, b = word_box(s)
    assert min(c[0][0] for c in cells) == l and max(c[0][2] for c in cells) == pytest.approx(r)
    assert b - t == pytest.approx(2 * s.cell) and s.cell == pytest.approx(V2.word_height * max(s.width, s.height) / 2)


def test_binary_script_draws_ink_on_the_scene_and_its_letters_where_the_glyphs_are():
    """data.script=binary4x4 (the v3 pre-studies' script): a word's glyphs are 4 x 4 cells, half ink, half the
    canvas's own background; the cell is word_height / 4 of the long side; the letter targets sit on each glyph."""
    from vlmlab.contract.errors import ConfigError
    from vlmlab.world.script import INK, SCRIPTS, letter_boxes
    from vlmlab.world.vision_targets import LETTERS, letter_map

    cfg = dataclasses.replace(CFG, script="binary4x4", long_side_min=480, long_side_max=480)
    s = make_sample(cfg, "textvqa", "test", 0).scene
    assert s.script == "binary4x4" and s.cell == pytest.approx(cfg.word_height * 480 / 4)
    cells = word_cells(s.word, *s.word_xy, s.cell, s.script)
    assert len(cells) == 8 * len(s.word) and {g for _, g in cells} == {INK}  # two inked cells per glyph row
    l, t, r, b = word_box(s)
    assert b - t == pytest.approx(4 * s.cell) and r - l == pytest.approx((5 * len(s.word) - 1) * s.cell)
    img = np.asarray(render(s), np.int16)
    box = img[int(t) + 1:int(b) - 1, int(l) + 1:int(r) - 1]
    ink, paper = (box.max(-1) < 60).mean(), (np.abs(box - np.array(s.background)).max(-1) < 8).mean()
    assert ink > 0.15 and paper > 0.15  # 2.9-px cells: both show through the anti-aliasing
    boxes = letter_boxes(s.word, *s.word_xy, s.cell, s.script)
    xs = np.array([(x0 + x1) / 2 for x0, _, x1, _ in boxes])
    assert [LETTERS[k - 1] for k in letter_map(s, xs, np.array([(t + b) / 2]))[0]] == list(s.word)
    glyphs = SCRIPTS["binary4x4"].glyphs
    assert len(set(glyphs.values())) == len(LETTERS) and all(sum(g > 0 for g in v) == 8 for v in glyphs.values())
    with pytest.raises(ConfigError, match="script"):
        WorldConfig(script="cursive")


def test_each_shape_has_its_own_texture():
    """The fill patterns are pairwise different, and each is visible in the rendered object."""
    grid = np.mgrid[-20:20, -20:20].astype(float)
    maps = {shape: pattern(shape, grid[1], grid[0], 8.0) for shape in kb.SHAPES}
    assert len(set(TEXTURES.values())) == len(kb.SHAPES)
    for a in kb.SHAPES:
        for b in kb.SHAPES:
            if a < b:
                assert (maps[a] != maps[b]).mean() > 0.2, (a, b)
    assert not maps["circle"].any() and all(0.15 < maps[s].mean() < 0.6 for s in kb.SHAPES if s != "circle")
    scene = Scene(120, 120, (240, 240, 240), [Obj("square", "blue", "large", 60, 60, 30)])
    px = np.asarray(render(scene), dtype=float)[45:75, 45:75].reshape(-1, 3)
    blue = np.array(kb.COLOURS["blue"], float)
    near = [np.abs(px - tone).sum(1) < 20 for tone in (blue, blue * SHADE)]
    assert near[0].mean() > 0.25 and near[1].mean() > 0.25  # both tones of the stripes are drawn


def test_okvqa_asks_a_partial_reference_and_gives_the_fact():
    for split in ("train", "validation", "test"):
        for i in range(60):
            s = make_sample(CFG, "okvqa", split, i)
            assert s.kind in kb.okvqa_kinds(split)
            assert s.answers == [kb.FACTS[s.kind][s.qtype]]
            colour, shape = s.kind
            assert not (colour in s.question and shape in s.question)  # the image must supply one attribute
            assert s.scene.objects[0].kind == s.kind


def test_grain_is_a_world_knob_that_leaves_the_samples_and_is_refused_in_a_grid():
    """data.grain (the views' grain, images.py) changes no sample: the data cache's key is the same; a grid may
    not vary it (every view of the test split changes, and the zoo is pretrained under it)."""
    from vlmlab.contract.errors import ConfigError
    from vlmlab.contract.run import refusal

    assert dataclasses.replace(CFG, grain=8.0).scene_hash() == CFG.scene_hash()
    assert refusal("data.grain") and refusal("data.grain", swept=False) is None
    from vlmlab.config import compose
    with pytest.raises(ConfigError, match="grain"):
        compose(["data.grain=-1"])
