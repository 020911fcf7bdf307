"""The data API: schema, caching, disjoint splits, and no held-out facts in the multimodal data."""

import hashlib
from dataclasses import fields
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from vlmlab.world import kb
from vlmlab.world.config import DEFAULT_TASKS as TASKS, WorldConfig, load_world_config
from vlmlab.world.questions import make_sample
from vlmlab.world.tasks import load_mixture, load_split

TOY_YAML = Path(__file__).parents[2] / "conf" / "data" / "toy.yaml"
# small splits on smaller canvases than v3's 720-960 px (the data API does not depend on them; renders ~10x cheaper)
SMALL = WorldConfig(train_size=120, validation_size=30, test_size=60, long_side_min=200, long_side_max=320)


@pytest.fixture(scope="module", autouse=True)
def tmp_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("VLMLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


def test_schema_and_cache():
    ds = load_split(SMALL, "vqa", "validation")
    assert set(ds.column_names) == {"id", "task", "image", "question", "answers"} and len(ds) == 30
    row = ds[0]
    assert row["image"].mode == "RGB" and row["task"] == "vqa" and row["answers"] and row["question"]
    again = load_split(SMALL, "vqa", "validation")
    assert again["id"] == ds["id"]
    cap = load_split(SMALL, "caption", "validation")[0]
    assert cap["question"] == "" and len(cap["answers"]) == 4


def test_splits_are_disjoint():
    for task in TASKS:
        seen_ids, seen_images = set(), set()
        for split in ("train", "validation", "test"):
            ds = load_split(SMALL, task, split)
            ids = set(ds["id"])
            images = {hashlib.sha1(im.tobytes()).hexdigest() for im in ds["image"]}
            assert len(ids) == len(ds) and len(images) == len(ds)
            assert not ids & seen_ids and not images & seen_images
            seen_ids |= ids
            seen_images |= images


def test_mixture_holds_every_task_and_no_heldout_fact():
    mix = load_mixture(SMALL)
    assert len(mix) == 4 * SMALL.train_size and set(mix["task"]) == set(TASKS)
    values = {v for vs in kb.RELATIONS.values() for v in vs}
    for row in mix:
        task, split, index, _ = row["id"].split("-")
        assert split == "train"
        text = f"{row['question']} {' '.join(row['answers'])}".lower()
        if task == "okvqa":  # facts are stated about seen kinds only
            assert make_sample(SMALL, task, split, int(index)).kind not in kb.HELD_OUT
        else:  # other tasks never mention a fact at all
            assert not values & set(text.replace("?", " ").split())


def test_okvqa_eval_kinds_are_heldout():
    for split in ("validation", "test"):
        kinds = {make_sample(SMALL, "okvqa", split, i).kind for i in range(SMALL.split_size(split))}
        assert kinds <= set(kb.okvqa_kinds(split))
    assert not set(kb.HELD_OUT_TEST) & set(kb.SEEN_KINDS)
    assert not set(kb.HELD_OUT_TEST) & set(kb.HELD_OUT_VALIDATION)


def test_conf_data_toy_matches_worldconfig():
    raw = OmegaConf.to_container(OmegaConf.load(TOY_YAML))
    assert list(raw) == [f.name for f in fields(WorldConfig)]
    assert load_world_config(TOY_YAML) == WorldConfig()
