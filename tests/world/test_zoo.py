"""The backbone zoo: the mini zoo builds in seconds and its directories load like hub models."""

import json
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

from vlmlab.world import zoo, zoo_specs
from vlmlab.world.tokenizer import SPECIAL_TOKENS

CONF = Path(__file__).parents[2] / "conf"


@pytest.fixture(scope="module")
def mini_zoo(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("VLMLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
    t0 = time.time()
    summary = zoo.build(mini=True, jobs=2)  # the LM and the vision run side by side, as `make backbones` does
    yield summary, time.time() - t0
    mp.undo()


def test_mini_zoo_builds_in_seconds(mini_zoo):
    summary, seconds = mini_zoo
    # ~25-40 s beside the other pytest worker; 41 and 55 s when other jobs loaded the 2 cores (sessions 10, 11).
    # The bound catches a mini zoo grown several-fold (every test that builds one would slow with it), not load.
    assert seconds < 90
    assert set(summary["models"]) == set(zoo.NAMES)
    assert summary["strong_minus_weak"]["lm"]["same_parameter_count"]
    assert summary["strong_minus_weak"]["vision"]["same_parameter_count"]
    for kind in zoo.KINDS:  # what built it: a rebuild elsewhere matches bit for bit only with the same packages and CPU
        assert summary["software"][kind]["torch"] == torch.__version__ and "cpu_capability" in summary["software"][kind]


def test_lm_dirs_load_with_automodel(mini_zoo):
    path = zoo.ensure("lm_strong", build_if_missing=False, mini=True)
    model, tok = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert tok.convert_tokens_to_ids(SPECIAL_TOKENS) == list(range(len(SPECIAL_TOKENS)))
    assert (tok.bos_token, tok.eos_token, tok.pad_token, tok.unk_token) == ("<s>", "</s>", "<pad>", "<unk>")
    ids = tok("<image>Question: What colour is the star? Answer:", return_tensors="pt")["input_ids"]
    assert ids[0, 0] == tok.bos_token_id and ids[0, 1] == tok.convert_tokens_to_ids("<image>")
    assert model(input_ids=ids).logits.shape == (1, ids.shape[1], len(tok))
    quality = json.loads((path / "manifest.json").read_text())["quality"]
    assert {"heldout_perplexity", "fact_recall", "unimodal", "reading", "reading_word", "reading_colour"} <= set(quality)
    assert 0 <= quality["reading"] <= 1


def test_vision_dirs_load_with_automodel(mini_zoo):
    path = zoo.ensure("vision_weak", build_if_missing=False, mini=True)
    model = AutoModel.from_pretrained(path)
    assert type(model).__name__ == "SiglipModel"
    feats = model.vision_model(pixel_values=torch.zeros(2, 3, 64, 64)).last_hidden_state
    assert feats.shape == (2, 64, model.config.vision_config.hidden_size)  # mini zoo: 64 px / patch 8 -> 64 patches (the full zoo: 96 px, 144)
    quality = json.loads((path / "manifest.json").read_text())["quality"]
    assert {"retrieval_r1_at_50", "probe_colour", "probe_shape", "probe_count", "probe_glyph_split", "unimodal"} <= set(quality)


def test_weak_and_strong_share_architecture(mini_zoo):
    weak, strong = (AutoModelForCausalLM.from_pretrained(zoo.ensure(n, False, mini=True)) for n in ("lm_weak", "lm_strong"))
    assert sum(p.numel() for p in weak.parameters()) == sum(p.numel() for p in strong.parameters())
    assert not torch.equal(next(weak.parameters()), next(strong.parameters()))


def test_checkpoints_along_pretraining_carry_unimodal_scores(mini_zoo):
    summary, _ = mini_zoo
    assert set(summary["checkpoints"]["lm"]) == {"lm@2", "lm@4", "lm@8"}
    assert set(summary["checkpoints"]["vision"]) == {"vision@2", "vision@4", "vision@8"}
    for kind in ("lm", "vision"):
        for quality in summary["checkpoints"][kind].values():
            assert -1 <= quality["unimodal"] <= 1
    assert summary["aliases"]["lm_strong"] == "lm@8" and summary["aliases"]["vision_strong"] == "vision@8"
    ckpt = zoo.ensure("lm@4", build_if_missing=False, mini=True)
    model = AutoModelForCausalLM.from_pretrained(ckpt)
    strong = AutoModelForCausalLM.from_pretrained(zoo.ensure("lm_strong", build_if_missing=False, mini=True))
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in strong.parameters())
    pair = json.loads((zoo.ensure("vision_weak", False, mini=True) / "manifest.json").read_text())["pair"]
    assert pair["paper_gap"] == pytest.approx(0.052) and pair["strong"] == "vision@8"
    with pytest.raises(ValueError, match="no such checkpoint"):
        zoo.ensure("lm@5", mini=True)


def test_weak_is_the_checkpoint_closest_to_the_papers_gap():
    ckpts = [{"name": f"lm@{s}", "step": s, "quality": {"unimodal": u}}
             for s, u in ((100, 0.1), (200, 0.5), (300, 0.62), (400, 0.9))]
    pair = zoo.choose_pair("lm", ckpts)  # gaps to strong: 0.8, 0.4, 0.28; the paper's is 1/3
    assert (pair["weak"], pair["strong"]) == ("lm@300", "lm@400")
    assert pair["gap"] == pytest.approx(0.28)
    assert zoo.choose_pair("vision", ckpts)["weak"] == "lm@300"  # smallest gap available (0.28 vs 0.052)


def test_rebuild_is_skipped(mini_zoo):
    t0 = time.time()
    zoo.build(mini=True)
    assert time.time() - t0 < 2


def test_side_by_side_build_matches_the_serial_one(mini_zoo, tmp_path, monkeypatch):
    """The fixture's zoo was built with jobs=2 (the LM and the vision tower in two spawned processes); the LM built
    in this process comes out the same, checkpoint for checkpoint and byte for byte."""
    side_by_side = zoo.zoo_dir(mini=True)
    monkeypatch.setenv("VLMLAB_CACHE", str(tmp_path))
    zoo.build(("lm",), mini=True)
    for name in ("lm_weak", "lm_strong"):
        a = json.loads((side_by_side / name / "manifest.json").read_text())
        b = json.loads((zoo.zoo_dir(mini=True) / name / "manifest.json").read_text())
        assert (a["checkpoint"], a["quality"]) == (b["checkpoint"], b["quality"])
        wa = (side_by_side / name / "model.safetensors").read_bytes()
        assert wa == (zoo.zoo_dir(mini=True) / name / "model.safetensors").read_bytes()
    assert (side_by_side / "vision_strong" / "manifest.json").exists()


def test_missing_backbone_names_the_make_target(tmp_path, monkeypatch):
    monkeypatch.setenv("VLMLAB_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="make backbones"):
        zoo.ensure("lm_weak", build_if_missing=False, mini=False)
    with pytest.raises(ValueError, match="unknown zoo backbone"):
        zoo.ensure("lm_huge")


def test_a_zoo_of_another_world_is_named_and_not_rebuilt_when_refused(tmp_path, monkeypatch):
    """A cache built by another GENERATOR_VERSION is stale: ensure() says which world built it, and with
    $VLMLAB_ZOO_NO_BUILD=1 (a diagnostic pointed at an older cache) it raises instead of rebuilding it."""
    monkeypatch.setenv("VLMLAB_CACHE", str(tmp_path))
    monkeypatch.setenv("VLMLAB_ZOO_NO_BUILD", "1")
    stale = zoo.zoo_dir(mini=True) / "lm_strong"
    stale.mkdir(parents=True)
    (stale / "manifest.json").write_text(json.dumps({"generator_version": "world-v0"}))
    with pytest.raises(FileNotFoundError, match="built by 'world-v0', not this code's"):
        zoo.ensure("lm_strong", mini=True)
    assert sorted(p.name for p in stale.iterdir()) == ["manifest.json"]


def test_conf_files_point_at_the_zoo():
    for group, kind in (("llm", "lm"), ("vision", "vision")):
        for q in ("weak", "strong"):
            path = CONF / group / f"toy_{q}.yaml"
            assert path.read_text().startswith("#")
            assert OmegaConf.load(path).name_or_path == f"zoo:{kind}_{q}"


def test_the_large_scale_is_its_own_zoo_named_by_a_prefix(tmp_path, monkeypatch):
    """`zoo:large/...` builds and loads the large zoo (here the mini one: one more layer, 80 px, larger canvases);
    a scale prefix works for checkpoints too, and an unknown scale is refused."""
    monkeypatch.setenv("VLMLAB_CACHE", str(tmp_path))
    path = zoo.ensure("large/lm@4", mini=True)  # builds the large mini LM alone
    assert path.parent.parent == zoo.zoo_dir(mini=True, scale="large") != zoo.zoo_dir(mini=True)
    large = AutoModelForCausalLM.from_pretrained(path)
    assert large.config.num_hidden_layers == zoo_specs.MINI_LARGE.lm.layers > zoo_specs.MINI.lm.layers
    assert zoo.ensure("large/lm_strong", mini=True).parent == zoo.zoo_dir(mini=True, scale="large")
    assert not zoo.zoo_dir(mini=True).exists()  # the base zoo was not touched
    for spec in (zoo_specs.LARGE, zoo_specs.MINI_LARGE):  # world v2's canvases x 4/3 (the large scale stays in v2)
        assert spec.vision.world().long_side_max > zoo_specs.VisionSpec().world().long_side_max
        assert (spec.vision.script, spec.vision.grain, spec.vision.pages) == ("grey2x2", 0.0, None)
    assert zoo_specs.LARGE.vision.image_size > zoo_specs.FULL.vision.image_size and zoo_specs.LARGE.lm.hidden > zoo_specs.FULL.lm.hidden
    with pytest.raises(ValueError, match="optionally after a scale"):
        zoo.ensure("huge/lm_strong", mini=True)
    with pytest.raises(FileNotFoundError, match="--scale large"):
        zoo.ensure("large/vision_weak", build_if_missing=False, mini=True)


def test_a_build_worker_ends_with_its_parent(tmp_path):
    """exit_with_parent: a worker whose parent is killed ends itself (orphaned `build --jobs 2` workers kept
    training and wrote into a rebuild's folders)."""
    import os
    import signal
    import subprocess
    import sys

    script = ("import multiprocessing as mp, time, sys\n"
              "def work(path):\n"
              "    from vlmlab.world.zoo import exit_with_parent\n"
              "    exit_with_parent(poll_s=0.1)\n"
              "    open(path, 'w').write(str(__import__('os').getpid()))\n"
              "    time.sleep(60)\n"
              "if __name__ == '__main__':\n"
              "    p = mp.get_context('spawn').Process(target=work, args=(sys.argv[1],))\n"
              "    p.start()\n"
              "    time.sleep(60)\n")
    pid_file, main = tmp_path / "worker.pid", tmp_path / "parent.py"
    main.write_text(script)  # a file, not -c: spawned children import their target from the parent's __main__
    parent = subprocess.Popen([sys.executable, str(main), str(pid_file)])
    t0 = time.time()
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.time() - t0 < 60, "the worker did not start"
        time.sleep(0.05)
    worker = int(pid_file.read_text())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    t0 = time.time()
    while time.time() - t0 < 10:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        with open(f"/proc/{worker}/stat") as f:  # reaped by init or a zombie: either way no longer running
            if f.read().split(") ")[1].startswith("Z"):
                return
        time.sleep(0.1)
    os.kill(worker, signal.SIGKILL)
    raise AssertionError("the worker outlived its parent by 10 s")


def test_a_stopped_build_resumes_from_its_saved_state_and_ends_byte_identical(mini_zoo, tmp_path, monkeypatch,
                                                                             stopped_at):
    """The vision run stopped after step 6 (its state saved at 3 and 6) and built again: it resumes at 6, keeps the
    checkpoint at 4 and ends with the weights of the fixture's build, which never stopped."""
    reference = zoo.zoo_dir(mini=True)
    monkeypatch.setenv("VLMLAB_CACHE", str(tmp_path))
    monkeypatch.setitem(zoo.SAVE_EVERY, "vision", 3)
    with stopped_at(6):
        zoo.build(("vision",), mini=True)
    tmp = zoo.zoo_dir(mini=True) / "vision.tmp"
    assert torch.load(tmp / "train_state.pt", weights_only=True)["step"] == 6
    assert sorted(p.name for p in tmp.glob("step-*")) == ["step-000002", "step-000004"]
    zoo.build(("vision",), mini=True)
    assert not (zoo.zoo_dir(mini=True) / "vision.tmp").exists()
    for step in ("step-000004", "step-000008"):
        got = zoo.zoo_dir(mini=True) / "vision" / step
        assert (got / "model.safetensors").read_bytes() == (reference / "vision" / step / "model.safetensors").read_bytes()
        a, b = (json.loads((d / "vision" / step / "manifest.json").read_text())["quality"] for d in (reference, zoo.zoo_dir(mini=True)))
        assert a == b
    steps = json.loads((zoo.zoo_dir(mini=True) / "vision" / "manifest.json").read_text())["checkpoints"]
    assert [c["step"] for c in steps] == [2, 4, 8]


def test_an_lm_run_resumes_bit_identical(tmp_path, stopped_at):
    """train_lm stopped after a saved state and run again continues its data order and ends with the same weights."""
    from vlmlab.world.lm import train_lm
    from vlmlab.world.tokenizer import train_tokenizer

    lines = [f"the {c} {s} is at the {p}." for c in ("red", "blue", "green") for s in ("cube", "ball") for p in
             ("left", "right", "top", "bottom")] * 4
    tok = train_tokenizer(lines)
    spec = zoo_specs.LMSpec(steps=6, batch=4, checkpoints=(6,), hidden=32, layers=1, heads=2, intermediate=64, seq=16)
    straight = train_lm(tok, lines, spec, desc="straight")
    state = tmp_path / "train_state.pt"
    with stopped_at(3):
        train_lm(tok, lines, spec, desc="stopped", state_path=state, save_every=3)
    resumed = train_lm(tok, lines, spec, desc="resumed", state_path=state, save_every=3)
    assert not state.exists()
    for (k, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k


def test_a_pack_unpacks_into_a_new_cache_byte_for_byte(mini_zoo, tmp_path, monkeypatch):
    """zoo_pack: a built zoo's named backbones and manifest, packed with their SHA-256s, unpack on a machine that
    never built them into the layout ensure() finds (no build), byte for byte; other checkpoints still need a build."""
    from vlmlab.world import zoo_pack

    built = zoo.zoo_dir(mini=True)
    pack = zoo_pack.pack("base", tmp_path / "pack", mini=True)
    assert sorted(p.name for p in pack.iterdir()) == sorted([*zoo.NAMES, "manifest.json", "SHA256SUMS"])
    assert len(zoo_pack.verify(pack)) == len([p for p in pack.rglob("*") if p.is_file()]) - 1
    monkeypatch.setenv("VLMLAB_CACHE", str(tmp_path / "fresh"))
    monkeypatch.setenv("VLMLAB_ZOO_NO_BUILD", "1")
    with pytest.raises(FileNotFoundError):
        zoo.ensure("vision_strong", mini=True)
    zoo_pack.unpack("base", pack, mini=True)
    for name in zoo.NAMES:
        path = zoo.ensure(name, mini=True)
        assert path.parent == zoo.zoo_dir(mini=True) != built
        for f in (built / name).iterdir():
            assert (path / f.name).read_bytes() == f.read_bytes()
    assert (zoo.zoo_dir(mini=True) / "manifest.json").read_bytes() == (built / "manifest.json").read_bytes()
    assert type(AutoModelForCausalLM.from_pretrained(zoo.ensure("lm_weak", mini=True))).__name__ == "LlamaForCausalLM"
    with pytest.raises(FileNotFoundError):
        zoo.ensure("lm@4", mini=True)  # not in the pack
    (zoo.zoo_dir(mini=True) / "lm_weak" / "marker").write_text("kept")
    zoo_pack.unpack("base", pack, mini=True)  # a backbone already there is left alone
    assert (zoo.zoo_dir(mini=True) / "lm_weak" / "marker").exists()


def test_a_changed_missing_extra_or_stale_pack_file_is_refused(mini_zoo, tmp_path):
    from vlmlab.world import zoo_pack

    pack = zoo_pack.pack("base", tmp_path / "pack", mini=True)
    zoo_pack.verify(pack)
    weights = pack / "lm_strong" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="lm_strong/model.safetensors.*SHA-256"):
        zoo_pack.verify(pack)
    with pytest.raises(ValueError, match="SHA-256"):
        zoo_pack.unpack("base", pack, mini=True)
    weights.unlink()
    with pytest.raises(ValueError, match="differ from SHA256SUMS"):
        zoo_pack.verify(pack)
    pack = zoo_pack.pack("base", tmp_path / "pack", mini=True)  # packing again replaces the whole pack
    (pack / "lm_strong" / "extra.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="extra.bin"):
        zoo_pack.verify(pack)
    pack = zoo_pack.pack("base", tmp_path / "pack", mini=True)
    manifest = json.loads((pack / "manifest.json").read_text())
    (pack / "manifest.json").write_text(json.dumps({**manifest, "generator_version": "world-v0"}))
    (pack / "SHA256SUMS").write_text("".join(  # hashes made to match: the world version is checked on its own
        f"{zoo_pack._sha256(pack / f)}  {f.as_posix()}\n" for f in zoo_pack._files(pack)))
    with pytest.raises(ValueError, match="world 'world-v0', not this code's"):
        zoo_pack.verify(pack)
    # each scale's pack is checked against its own world (config.SCALE_VERSIONS: the large scale stays in v2)
    (pack / "manifest.json").write_text(json.dumps({**manifest, "generator_version": zoo.generator_version("large")}))
    (pack / "SHA256SUMS").write_text("".join(
        f"{zoo_pack._sha256(pack / f)}  {f.as_posix()}\n" for f in zoo_pack._files(pack)))
    zoo_pack.verify(pack, "large")
    with pytest.raises(ValueError, match="at scale base"):
        zoo_pack.verify(pack, "base")
    with pytest.raises(FileNotFoundError, match="is no zoo pack"):
        zoo_pack.verify(tmp_path)


@pytest.mark.parametrize("scale", zoo.SCALES)
def test_the_committed_packs_hold_their_scales_world(scale):
    """results/zoo_<scale> is checked against its files' SHA-256s and against the world of its scale
    (config.generator_version): a world bump without a rebuilt and repacked zoo fails here, not in a user's run."""
    from vlmlab.world import zoo_pack

    pack = zoo_pack.default_pack_dir(scale)
    assert pack.is_dir(), f"{pack} is missing"
    zoo_pack.verify(pack, scale)
    assert json.loads((pack / "manifest.json").read_text())["generator_version"] == zoo.generator_version(scale)
