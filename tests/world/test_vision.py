"""Vision pretraining's dense targets line up with the pixels, and the probes read the right patches."""
import numpy as np
import torch

from vlmlab.world import kb, zoo_specs
from vlmlab.world.config import WORLD_V2, WorldConfig
from vlmlab.world.probes import _patches_on
from vlmlab.world.scenes import SHADE, WORD_LABEL, label_map
from vlmlab.world.vision import VisionSpec, make_views, pretraining_scenes
from vlmlab.world.vision_targets import dense_targets


def test_label_map_marks_each_object_and_the_word():
    scenes = pretraining_scenes("test/labels", 20, word_prob=1.0)
    for s in scenes:
        labels = label_map(s)
        assert labels.shape == (s.height, s.width)
        for i, o in enumerate(s.objects):
            assert labels[int(o.y), int(o.x)] == i + 1  # every shape covers its centre
        x, y = s.word_xy
        w_box = labels[int(y) + 1: int(y) + 3, int(x) + 1: int(x) + 3]
        assert (w_box == WORD_LABEL).all()


def test_dense_targets_match_the_rendered_pixels():
    spec = VisionSpec(image_size=96, patch=8)
    scenes = pretraining_scenes("test/views", 12, word_prob=0.5)
    views = make_views(scenes, spec, "test/views")
    pixels, targets = views["pixels"], views["targets"]
    assert pixels.shape == (12, 2, 3, 96, 96) and targets.shape == (12, 2, 6, 144)
    colours = list(kb.COLOURS)
    errors = []
    for n in range(12):
        for v in range(2):
            centres = pixels[n, v].permute(1, 2, 0)[4::8, 4::8].reshape(-1, 3).numpy().astype(int)  # (144,3)
            for p in (targets[n, v, 0] > 0).nonzero().squeeze(1).tolist():
                rgb = np.array(kb.COLOURS[colours[targets[n, v, 0, p] - 1]], dtype=float)
                a = np.clip(centres[p] @ rgb / (rgb @ rgb), SHADE, 1.0)  # between the colour and its shade
                errors.append(np.abs(centres[p] - a * rgb).sum())
    # the pixel at a patch centre is its object's colour, its pattern's shade of it or a blend of the two
    # (anti-aliased edges aside)
    assert np.median(errors) <= 6
    assert all(int(targets[n, 0, 3, 0]) == len(s.objects) for n, s in enumerate(scenes))  # whole view: every object
    assert all(int(targets[n, 1, 3, 0]) <= len(s.objects) for n, s in enumerate(scenes))  # a crop: those it holds
    # the centre heatmap: the patch under each object's centre (two objects may share one), none elsewhere
    for n, s in enumerate(scenes):
        centres = targets[n, 0, 5].nonzero().squeeze(1).tolist()
        assert 1 <= len(centres) <= len(s.objects) and int(targets[n, 1, 5].sum()) <= int(targets[n, 1, 3, 0])
        for o in s.objects:
            p = int(o.y / s.height * 12) * 12 + int(o.x / s.width * 12)
            assert p in centres
    with_word = [n for n, s in enumerate(scenes) if s.word]
    assert with_word and all((targets[n, 0, 2] == kb.WORDS.index(scenes[n].word) + 1).any() for n in with_word)
    labels = views["labels"]  # (N, 2, REGIONS, 5): every object of the whole view is a region, the word too
    for n, s in enumerate(scenes):
        assert sorted(labels[n, 0, :, 1][labels[n, 0, :, 1] >= 0].tolist()) == sorted(kb.SHAPES.index(o.shape) for o in s.objects)
        assert (labels[n, 0, :, 2] >= 0).sum() == int(s.word is not None)
        assert all(views["masks"][n, 0, k].any() for k in range(len(s.objects)))
    one = dense_targets(scenes[0], label_map(scenes[0]), (0, 0, scenes[0].width, scenes[0].height), 12)
    assert torch.equal(torch.from_numpy(one), targets[0, 0])


def test_probe_reads_the_patches_on_a_box():
    view = (0, 0, 96, 96)  # a 96-px canvas on a 12 x 12 grid: patch centres at 4, 12, ..., 92
    assert _patches_on((10, 10, 14, 14), view, 12) == [1 * 12 + 1]
    assert _patches_on((0, 0, 20, 5), view, 12) == [0, 1, 2]
    assert _patches_on((7, 7, 9, 9), view, 12) == [0, 1, 12, 13]  # a box on a patch corner touches four
    assert _patches_on((50, 50, 50, 50), view, 12) == [6 * 12 + 6]  # a point: the patch under it
    crop = (48, 48, 96, 96)  # the bottom-right split crop: its patch 0 covers canvas (48..52, 48..52)
    assert _patches_on((49, 49, 50, 50), crop, 12) == [0]


def test_letter_targets_sit_on_the_glyphs():
    """The letter head's target at each glyph's centre is that glyph's letter, and nothing off the word."""
    from vlmlab.world.script import word_cells
    from vlmlab.world.vision_targets import LETTERS, letter_map

    v2 = WorldConfig(**WORLD_V2)  # 2 x 2 cells a glyph
    for s in pretraining_scenes("test/letters", 10, word_prob=1.0, world=v2):
        cells = word_cells(s.word, *s.word_xy, s.cell)
        xs = np.array([(cells[4 * i][0][0] + cells[4 * i + 3][0][2]) / 2 for i in range(len(s.word))])
        ys = np.array([(cells[0][0][1] + cells[3][0][3]) / 2])
        assert [LETTERS[k - 1] for k in letter_map(s, xs, ys)[0]] == list(s.word)
        assert (letter_map(s, np.array([s.word_xy[0] - 2.0]), ys) == 0).all()


def test_the_centre_head_can_be_left_out():
    """VisionSpec(centre_head=False) trains rc2's heads (an ablation of rc3's tower): the centre targets no longer
    move the loss."""
    from vlmlab.world.vision import DenseHeads

    spec = VisionSpec(image_size=96, patch=8)
    views = make_views(pretraining_scenes("test/centre", 4, word_prob=0.5), spec, "test/centre")
    batch = {k: v[:, 0] for k, v in views.items() if k != "pixels"}
    moved = {**batch, "targets": batch["targets"].clone()}
    moved["targets"][:, 5] = 1 - moved["targets"][:, 5]
    feats = torch.randn(4, 144, 16)
    for centre in (True, False):
        torch.manual_seed(0)
        heads = DenseHeads(16, centre)
        assert (heads.loss(feats, batch) != heads.loss(feats, moved)) == centre


def test_the_word_head_reads_every_patch_over_the_word():
    """VisionSpec(word_head=True) adds a per-patch word head (row 2 of dense_targets: the word on every patch over its
    ink box, text spotting): its targets move the loss only with the head, and the other heads keep their init."""
    from vlmlab.world.vision import DenseHeads

    spec = VisionSpec(image_size=96, patch=8)
    scenes = pretraining_scenes("test/word", 4, word_prob=1.0)
    views = make_views(scenes, spec, "test/word")
    batch = {k: v[:, 0] for k, v in views.items() if k != "pixels"}
    for n, s in enumerate(scenes):  # the whole view: the word's index + 1 on the patches over its box, 0 elsewhere
        on = batch["targets"][n, 2]
        assert set(on.unique().tolist()) == {0, kb.WORDS.index(s.word) + 1}
    moved = {**batch, "targets": batch["targets"].clone()}
    moved["targets"][:, 2] = torch.where(moved["targets"][:, 2] > 0, moved["targets"][:, 2] % len(kb.WORDS) + 1, 0)
    feats = torch.randn(4, 144, 16)
    losses, first = {}, {}
    for word in (False, True):
        torch.manual_seed(0)
        heads = DenseHeads(16, centre=False, word=word)
        first[word] = heads.patch_letter.weight.clone()
        losses[word] = heads.loss(feats, batch) != heads.loss(feats, moved)
    assert losses == {False: False, True: True}
    assert torch.equal(first[False], first[True])


def test_text_crops_hold_the_word_and_leave_the_default_views_as_they_were():
    """VisionSpec(word_crops=1) places every crop of a word-bearing scene over the word; the default (0) draws the
    same views as before the option existed (no extra random draws)."""
    scenes = pretraining_scenes("test/textcrops", 12, word_prob=1.0)
    spec = VisionSpec(image_size=96, patch=8, word_crops=1.0)
    views = make_views(scenes, spec, "test/textcrops")
    on_word = (views["targets"][:, 1, 2] > 0).any(-1)  # the crop's patches overlap the word's ink box
    assert bool(on_word.all())
    plain = make_views(scenes, VisionSpec(image_size=96, patch=8), "test/textcrops")
    again = make_views(scenes, VisionSpec(image_size=96, patch=8, word_crops=0.0), "test/textcrops")
    assert torch.equal(plain["pixels"], again["pixels"])
    assert (plain["targets"][:, 1, 2] > 0).any(-1).float().mean() < 1.0  # random crops miss the word sometimes


def test_region_order_targets_rank_the_views_objects_left_to_right_and_top_to_bottom():
    """region_targets' columns 3 and 4: each object's rank by its centre's x and y among the objects centred in the
    view (a crop ranks only those it holds); -100 for the word's row, empty rows and views with fewer than two."""
    from vlmlab.world.vision_targets import region_targets

    scenes = pretraining_scenes("test/order", 40, word_prob=0.5)
    seen_crop = False
    for s in scenes:
        for box in ((0.0, 0.0, s.width, s.height), (0.0, 0.0, s.width / 2, s.height)):
            inside = [o for o in s.objects if box[0] <= o.x < box[2] and box[1] <= o.y < box[3]]
            _, labels = region_targets(s, box, 12)
            if len(inside) < 2:
                assert (labels[:, 3:] == -100).all()
                continue
            seen_crop |= box[2] < s.width and len(inside) < len(s.objects)
            xs, ys = [o.x for o in inside], [o.y for o in inside]
            assert labels[: len(inside), 3].tolist() == [sorted(xs).index(x) for x in xs]
            assert labels[: len(inside), 4].tolist() == [sorted(ys).index(y) for y in ys]
            assert (labels[len(inside):, 3:] == -100).all()  # the word and the empty rows
    assert seen_crop


def test_the_order_heads_train_only_with_their_weight_and_leave_the_other_heads_alone():
    """VisionSpec(order_weight=w) adds region heads for each object's rank left to right and top to bottom: the
    ranks move the loss only with w > 0, the loss they add scales with w, and the other heads keep their init."""
    from vlmlab.world.vision import DenseHeads

    spec = VisionSpec(image_size=96, patch=8)
    views = make_views(pretraining_scenes("test/orderw", 6, word_prob=0.5), spec, "test/orderw")
    batch = {k: v[:, 0] for k, v in views.items() if k != "pixels"}
    assert (batch["labels"][..., 3] >= 0).any()
    moved = {**batch, "labels": batch["labels"].clone()}
    ranked = moved["labels"][..., 3:] >= 0
    moved["labels"][..., 3:][ranked] = (moved["labels"][..., 3:][ranked] + 1) % 2
    feats = torch.randn(6, 144, 16)
    delta, first, order = {}, {}, {}
    for w in (0.0, 1.0, 2.0):
        torch.manual_seed(0)
        heads = DenseHeads(16, order_weight=w)
        first[w] = [p.clone() for n, p in heads.named_parameters() if not n.startswith("order_")]
        order[w] = heads.order_x.weight.clone() if w else None
        delta[w] = (heads.loss(feats, moved) - heads.loss(feats, batch)).item()
    assert delta[0.0] == 0.0 and abs(delta[1.0]) > 1e-6
    assert all(torch.equal(a, b) for a, b in zip(first[0.0], first[1.0]))
    assert torch.equal(order[1.0], order[2.0])
    # the same heads at weights 1, 2, 3: the loss is linear in the weight (the order terms scale, nothing else moves)
    torch.manual_seed(0)
    with_order = DenseHeads(16, order_weight=1.0)
    losses = []
    for w in (1.0, 2.0, 3.0):
        with_order.order_weight = w
        losses.append(with_order.loss(feats, batch).item())
    assert losses[1] - losses[0] > 1e-6 and abs((losses[2] - losses[1]) - (losses[1] - losses[0])) < 1e-5


def test_the_letter_weight_scales_the_letter_loss_alone():
    from vlmlab.world.vision import DenseHeads

    spec = VisionSpec(image_size=96, patch=8)
    views = make_views(pretraining_scenes("test/letterw", 4, word_prob=1.0), spec, "test/letterw")
    batch = {k: v[:, 0] for k, v in views.items() if k != "pixels"}
    no_letters = {**batch, "targets": batch["targets"].clone()}
    no_letters["targets"][:, 4] = 0
    feats = torch.randn(4, 144, 16)
    losses = {}
    for w in (1.0, 3.0):
        torch.manual_seed(0)
        heads = DenseHeads(16, centre=False, letter_weight=w)
        losses[w] = (heads.loss(feats, batch) - heads.loss(feats, no_letters)).item()
    assert abs(losses[3.0] - 3 * losses[1.0]) < 1e-4 and abs(losses[1.0]) > 1e-6


def test_an_extra_objective_trains_with_the_tower_and_leaves_the_scene_batches_alone(monkeypatch):
    """train_siglip's `extra` (an experiment's added loss, e.g. text pages): its parameters train, it is called once
    per step, and the scenes' batches are drawn as in the run without it (its randomness is its own)."""
    import vlmlab.world.vision as V
    from vlmlab.world.corpus import CorpusSpec, build_corpus
    from vlmlab.world.tokenizer import train_tokenizer

    tok = train_tokenizer(build_corpus(CorpusSpec(fact_repeats=1, scene_lines=200, misc_lines=100, qa_lines=100)))
    spec = VisionSpec(hidden=32, layers=1, heads=2, intermediate=64, image_size=32, text_len=16, steps=3, batch=4,
                      pool=8)

    class Extra(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w, self.calls = torch.nn.Linear(spec.hidden, 1), 0

        def loss(self, vision_model):
            self.calls += 1
            px = torch.zeros(2, 3, spec.image_size, spec.image_size)
            return self.w(vision_model(pixel_values=px).last_hidden_state).pow(2).mean()

    seen = []
    real = torch.randperm
    monkeypatch.setattr(V.torch, "randperm",
                        lambda n, generator=None: seen.append(real(n, generator=generator)) or seen[-1])
    V.train_siglip(tok, spec)
    plain, seen[:] = list(seen), []
    extra = Extra()
    before = extra.w.weight.detach().clone()
    V.train_siglip(tok, spec, extra=extra)
    assert extra.calls == spec.steps and not torch.equal(before, extra.w.weight)
    assert len(plain) == len(seen) and all(torch.equal(a, b) for a, b in zip(plain, seen))


def test_a_run_with_an_extra_objective_resumes_bit_identical(tmp_path, stopped_at):
    """train_siglip stopped after a saved state and run again with `extra`: the extra's parameters and its own
    generator are restored with the tower's, so the tower and the extra end as in the run that never stopped."""
    import vlmlab.world.vision as V
    from vlmlab.world.corpus import CorpusSpec, build_corpus
    from vlmlab.world.tokenizer import train_tokenizer

    tok = train_tokenizer(build_corpus(CorpusSpec(fact_repeats=1, scene_lines=200, misc_lines=100, qa_lines=100)))
    spec = VisionSpec(hidden=32, layers=1, heads=2, intermediate=64, image_size=32, text_len=16, steps=6, batch=4,
                      pool=8)

    class Extra(torch.nn.Module):  # draws its inputs from its own generator, as text_pages.TextPages does
        def __init__(self):
            super().__init__()
            torch.manual_seed(5)  # every instance starts alike, whatever ran before it
            self.w, self.gen = torch.nn.Linear(spec.hidden, 1), torch.Generator().manual_seed(5)

        def loss(self, vision_model):
            px = torch.rand(2, 3, spec.image_size, spec.image_size, generator=self.gen) * 2 - 1
            return self.w(vision_model(pixel_values=px).last_hidden_state).pow(2).mean()

    straight_extra = Extra()
    straight = V.train_siglip(tok, spec, extra=straight_extra)
    state = tmp_path / "state.pt"
    with stopped_at(3):
        V.train_siglip(tok, spec, state_path=state, save_every=3, extra=Extra())
    resumed_extra = Extra()
    resumed = V.train_siglip(tok, spec, state_path=state, save_every=3, extra=resumed_extra)
    assert not state.exists()
    for a, b in ((straight, resumed), (straight_extra, resumed_extra)):
        for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.equal(x, y), k


def test_pretraining_views_carry_the_world_grain_and_none_by_default():
    """VisionSpec.grain puts the world's view grain on both pretraining views after their resize; 0 draws the views
    as before (the crops' random draws are the same either way)."""
    scenes = pretraining_scenes("test/grain", 6, word_prob=0.5)
    plain = make_views(scenes, VisionSpec(image_size=96, patch=8), "test/grain")
    grainy = make_views(scenes, VisionSpec(image_size=96, patch=8, grain=8.0), "test/grain")
    assert torch.equal(plain["targets"], grainy["targets"])
    diff = grainy["pixels"].float() - plain["pixels"].float()
    assert 6.5 < float(diff.std()) < 8.5  # ~8 (clipping at 0 and 255 takes a little)
    assert VisionSpec(grain=8.0).world().grain == 8.0
    v3 = VisionSpec(script="binary4x4", word_height=0.018).world()  # the scenes' words in the world's script
    assert (v3.script, v3.word_height) == ("binary4x4", 0.018)
    v2 = VisionSpec().world()  # VisionSpec's defaults are world v2's (the large zoo's): the v3 zoo sets the world's
    assert {k: getattr(v2, k) for k in WORLD_V2} == WORLD_V2 == {"long_side_min": 160, "long_side_max": 320,
                                                                  "script": "grey2x2", "word_height": 0.024, "grain": 0.0}
    full, world = zoo_specs.FULL.vision.world(), WorldConfig()
    knobs = ("script", "word_height", "grain", "long_side_min", "long_side_max")
    assert [getattr(full, k) for k in knobs] == [getattr(world, k) for k in knobs]  # pretrained on the world's scenes
    assert zoo_specs.FULL.vision.pages.script == world.script
