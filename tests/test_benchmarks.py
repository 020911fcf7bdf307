"""Real benchmarks on tiny local stand-ins (tests/assets/benchmarks, the hub datasets' raw columns): the mapping into
the sample schema, deterministic few-shot sampling that never shows the query's picture, and few-shot prompts that
the FA VLM encodes and generates from."""
import pytest
import torch
from PIL import Image

from vlmlab import benchmarks as bm
from vlmlab.config import compose
from vlmlab.contract.tasks import get_task, task_names
from vlmlab.data import Processor, collate
from vlmlab.images import build_image_processor
from vlmlab.model.build import build_vlm
from vlmlab.world.tasks import FEATURES

FOLDERS = {"vqa": "vqav2", "textvqa": "textvqa", "okvqa": "okvqa", "caption": "coco"}


@pytest.fixture
def load(assets, tmp_path):
    def _load(task, split=None, **kw):
        return bm.load_benchmark(task, split, path=str(assets / "benchmarks" / FOLDERS[task]),
                                 cache_dir=str(tmp_path / "datasets"), **kw)
    return _load


@pytest.mark.parametrize("task", [t for t in task_names() if get_task(t).benchmark is not None])
def test_each_benchmark_maps_into_the_sample_schema(task, load):
    ds = load(task)
    assert ds.column_names == list(FEATURES) and len(ds) >= 3
    assert len(set(ds["id"])) == len(ds) and all(i.startswith(f"{task}:") for i in ds["id"])
    s = ds[0]
    assert s["task"] == task and isinstance(s["image"], Image.Image) and s["image"].size == (32, 24)
    assert all(isinstance(a, str) for a in s["answers"]) and s["answers"]
    assert (s["question"] == "") == (task == "caption")


def test_answer_shapes_of_hub_datasets_become_strings(load):
    vqa = load("vqa")[0]  # lmms-lab/VQAv2: a list of {answer, answer_confidence, answer_id}
    assert vqa["id"] == "vqa:0:0" and len(vqa["answers"]) == 10 and vqa["answers"][0] == "red"
    assert load("caption")[0]["answers"][1] == "a green square"  # COCO: the "answer" column, 5 references
    assert bm.normalize_answers({"answer": ["a", "b"], "answer_id": [1, 2]}) == ["a", "b"]
    assert bm.normalize_answers("yes") == ["yes"] and bm.normalize_answers(None) == []
    assert load("vqa", limit=3).num_rows == 3


def test_a_missing_column_or_an_uncached_hub_dataset_says_what_to_do(load):
    with pytest.raises(KeyError, match="no column .*'answer'.*set them in its BenchmarkSpec"):
        load("vqa", answers="answer")
    with pytest.raises(FileNotFoundError, match="cannot load vlmlab-test/no-such-benchmark .*HF_HUB_OFFLINE"):
        bm.load_benchmark("vqa", path="vlmlab-test/no-such-benchmark")


def test_few_shot_draws_are_deterministic_per_query_and_never_show_the_query_picture(load):
    vqa = load("vqa")  # 4 pictures x 2 questions, shots from the same split
    plan = bm.few_shot_plan(vqa["id"], vqa["id"], k=4, seed=0)
    for qid, picks in zip(vqa["id"], plan):
        assert len(set(picks)) == 4
        assert all(bm.picture_key(vqa["id"][j]) != bm.picture_key(qid) for j in picks)
    assert plan == bm.few_shot_plan(vqa["id"], vqa["id"], k=4, seed=0)
    assert plan != bm.few_shot_plan(vqa["id"], vqa["id"], k=4, seed=1)
    # a query's shots do not depend on which other queries are evaluated, nor their order
    assert bm.few_shot_plan(vqa["id"][5:3:-1], vqa["id"], k=4, seed=0) == [plan[5], plan[4]]
    with pytest.raises(ValueError, match="only 6 usable support examples for k=7"):
        bm.few_shot_plan(vqa["id"][:1], vqa["id"], k=7, seed=0)
    assert bm.few_shot_plan(vqa["id"], vqa["id"], k=0, seed=0) == [[]] * len(vqa)


def test_few_shot_prompts_render_shots_then_the_query(load):
    queries, support = load("textvqa"), load("textvqa", "train")
    prompts = bm.few_shot(queries, support, k=2, seed=0)
    assert len(prompts) == 3 and prompts.queries is queries
    p = prompts[1]
    assert len(p) == 3 and p[-1]["id"] == queries[1]["id"] and all(s["id"] in support["id"] for s in p[:2])
    text = bm.render_text(p)
    shot = f"<image>Question: What does the sign say? Answer: {p[0]['answers'][0]}\n"
    assert text.startswith(shot) and text.endswith("\n<image>Question: What does the sign say? Answer:")
    assert text.count("<image>") == 3
    assert bm.shot_answer({"task": "vqa", "answers": ["b", "a", "a", "b", "a"]}) == "a"
    assert bm.shot_answer(load("caption")[0]) == "a green square on a gray background"
    assert bm.clean_prediction(" red\nQuestion: what") == "red"


def test_load_few_shot_draws_support_from_the_spec_split(assets, tmp_path):
    prompts = bm.load_few_shot("okvqa", k=2, seed=0, limit=3, path=str(assets / "benchmarks" / "okvqa"),
                               cache_dir=str(tmp_path))
    assert len(prompts) == 3 and len(prompts.support) == 6  # limit cuts the queries, not the support pool
    assert all(p[-1]["id"] not in {s["id"] for s in p[:-1]} for p in prompts)


def test_the_fa_vlm_encodes_and_generates_from_few_shot_prompts(load):
    cfg = compose(["vision=tiny", "llm=tiny", "debug=smoke", "connector=perceiver", "image=split"])
    vlm, tok = build_vlm(cfg, seed=0)
    proc = Processor(tok, vlm.ids, build_image_processor(cfg.image, vlm.vision, cfg.vision.mean, cfg.vision.std), vlm.visual_tokens_per_view,
                     cfg.fusion.kind, 1024)
    vqa = load("vqa")
    zero = bm.encode_few_shot(proc, bm.few_shot(vqa, vqa, k=0)[2])  # k=0: exactly the 0-shot generation input
    ref = proc.encode(vqa[2], train=False, with_answer=False)
    assert zero.input_ids == ref.input_ids and all(torch.equal(a, b) for a, b in zip(zero.views, ref.views))

    prompts = bm.few_shot(vqa, vqa, k=2, seed=0)
    items = [bm.encode_few_shot(proc, prompts[i]) for i in range(2)]
    views_per_image = cfg.image.split ** 2 + 1
    for item in items:
        assert len(item.views) == 3 * views_per_image  # 2 shots + the query, each split into 4 crops + whole
        assert (torch.tensor(item.input_ids) == vlm.ids.image).sum() == len(item.views) * cfg.connector.n_latents
        assert all(label == -100 for label in item.labels)
    batch = collate(items, vlm.ids.pad, vlm.vision.patch_size, left_pad=True)
    assert batch["view_to_sample"].tolist() == [0] * len(items[0].views) + [1] * len(items[1].views)
    vlm.eval()
    out = vlm.generate(batch["input_ids"], batch["attention_mask"], batch["pixel_values"], batch["patch_mask"],
                       batch["view_to_sample"], max_new_tokens=3)
    assert len(out) == 2 and all(len(o) <= 3 for o in out)
