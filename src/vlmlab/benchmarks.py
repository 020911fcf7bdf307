"""The paper's real benchmarks (VQAv2, TextVQA, OK-VQA, COCO captions) through `datasets`, with few-shot prompts.

`load_benchmark(task)` loads a split by hub id and maps its columns into the sample schema (docs/INTERFACES.md:
id, task, image, question, answers) with column operations only, so no image is decoded or re-encoded. The id
is "<task>:<picture id>:<row id>"; the picture id lets few-shot sampling skip shots that show the query's picture.

Few-shot prompting (the paper scores 4-shot; Flamingo / Idefics protocol): each query is preceded by k support
examples, each rendered as its image, its prompt and its answer, then the query's image and prompt:
    <image>Question: q1 Answer: a1\\n ... <image>Question: qk Answer: ak\\n<image>Question: q Answer:
The k shots of a query are drawn from the support split by an RNG seeded with (seed, query id): deterministic,
and the same whatever subset or order of queries is evaluated. A shot's answer is its most frequent gold answer
(a caption: the first reference). Generation is cut at the first "\\n" (`clean_prediction`): a model that has
read the shots tends to go on with the next one.

Default sources are parquet mirrors (`datasets` >= 4 runs no loading scripts, so HuggingFaceM4/VQAv2 and
HuggingFaceM4/OK-VQA no longer load); each task's spec is its task-registry entry's `benchmark` (vlmlab/tasks.py),
and every field of a `BenchmarkSpec` can be overridden per call.
"""
from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vlmlab.contract.errors import ConfigError, UserError
from vlmlab.contract.tasks import get_task, task_names
from vlmlab.data import Encoded, prompt_text
from vlmlab.model.llm import IMAGE_TOKEN

if TYPE_CHECKING:  # datasets costs a second to import: the functions that need it import it
    import datasets

log = logging.getLogger(__name__)
SEP = "\n"  # ends each shot


class BenchmarkNotFound(UserError, FileNotFoundError):
    """A real benchmark that cannot be loaded here; the message says how to get it."""


@dataclass(frozen=True)
class BenchmarkSpec:
    task: str                          # vqa | textvqa | okvqa | caption
    path: str                          # hub id, or a local folder laid out like one (data/<split>-*.parquet)
    split: str                         # the evaluated split
    support_split: str                 # few-shot examples are drawn from here (the query's picture excluded)
    name: str | None = None            # dataset config name
    revision: str | None = None        # hub revision: pin a commit sha for reproducibility
    question: str | None = "question"  # column of the question (None: captioning)
    answers: str = "answers"           # column: list[str], list[{"answer": str}] or {"answer": [str]}
    image: str = "image"               # column of the picture (a datasets Image feature)
    qid: str = "question_id"           # column of the row id
    image_id: str | None = "image_id"  # column naming the picture (None: the row id)


# The built-in tasks use lmms-lab's parquet mirrors: VQAv2 and OK-VQA publish no train split there, so shots come
# from the evaluated split itself, never with the query's picture (pass support_split= to use another source).
def spec_of(task: str) -> BenchmarkSpec:
    """The registered task's real benchmark (ConfigError if it has none)."""
    spec = get_task(task).benchmark
    if spec is None:
        raise ConfigError(f"task {task!r} has no real benchmark (eval.benchmark=real needs one in its Task entry)")
    return spec


def normalize_answers(value) -> list[str]:
    """Gold answers as a list of strings, from any of the shapes hub datasets use."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):  # a Sequence of structs decodes to a dict of lists
        return normalize_answers(value.get("answer", next(iter(value.values()), [])))
    return [str(v["answer"] if isinstance(v, dict) else v) for v in value]


def to_samples(raw: datasets.Dataset, spec: BenchmarkSpec) -> datasets.Dataset:
    """A raw split -> the sample schema (id, task, image, question, answers); images are passed through untouched."""
    import datasets

    cols = raw.column_names
    missing = [c for c in (spec.question, spec.answers, spec.image, spec.qid) if c and c not in cols]
    if missing:
        raise KeyError(f"{spec.path}: no column {missing} (columns: {cols}); set them in its BenchmarkSpec")
    qids = [str(q) for q in raw[spec.qid]]
    pictures = qids
    if spec.image_id and spec.image_id in cols:
        pictures = [str(p) for p in raw[spec.image_id]]
    elif spec.image_id:
        log.warning("%s: no column %r; each row counts as its own picture for shot exclusion", spec.path,
                    spec.image_id)
    n = len(raw)
    columns = {"id": [f"{spec.task}:{p}:{q}" for p, q in zip(pictures, qids)], "task": [spec.task] * n,
               "question": [str(q) for q in raw[spec.question]] if spec.question else [""] * n,
               "answers": [normalize_answers(a) for a in raw[spec.answers]]}
    ds = raw.select_columns([spec.image])
    if spec.image != "image":
        ds = ds.rename_column(spec.image, "image")
    if not isinstance(ds.features["image"], datasets.Image):
        ds = ds.cast_column("image", datasets.Image())
    for key, values in columns.items():
        ds = ds.add_column(key, values)
    return ds.select_columns(["id", "task", "image", "question", "answers"])


def load_benchmark(task: str, split: str | None = None, limit: int = 0, cache_dir: str | None = None,
                   **spec_overrides) -> datasets.Dataset:
    """One split of a benchmark in the sample schema (the spec's evaluated split by default; the first `limit` rows
    if limit > 0). `spec_overrides` replace fields of its BenchmarkSpec, e.g. path="/data/vqav2"."""
    import datasets

    spec = dataclasses.replace(spec_of(task), **spec_overrides)
    split = split or spec.split
    try:
        raw = datasets.load_dataset(spec.path, spec.name, split=split, revision=spec.revision, cache_dir=cache_dir)
    except (OSError, ValueError) as e:  # not found, offline cache miss, unknown split
        raise BenchmarkNotFound(f"benchmark {task}: cannot load {spec.path} split {split!r} ({type(e).__name__}: "
                                f"{str(e).splitlines()[0] if str(e) else ''}). It needs the hub (HF_HUB_OFFLINE unset) "
                                "or a warm datasets cache; or pass path= a local copy.") from e
    if limit:
        raw = raw.select(range(min(limit, len(raw))))
    return to_samples(raw, spec)


# ---- few-shot prompts ----------------------------------------------------------------------------------
def picture_key(sample_id: str) -> str:
    """The picture part of a benchmark id "<task>:<picture>:<row>" (other ids count as their own picture)."""
    parts = sample_id.split(":", 2)
    return parts[1] if len(parts) == 3 and parts[0] in task_names() else sample_id


def few_shot_plan(query_ids: Sequence[str], support_ids: Sequence[str], k: int, seed: int) -> list[list[int]]:
    """For each query, k distinct support row indices, none showing the query's picture (see the module doc)."""
    support_pics = [picture_key(s) for s in support_ids]
    n = len(support_ids)
    plans = []
    for qid in query_ids:
        rng = random.Random(f"{seed}:{qid}")  # str seeds hash with sha512: stable across runs and machines
        pic = picture_key(qid)
        order = rng.sample(range(n), n) if n <= 4 * k + 64 else (rng.randrange(n) for _ in range(100 * k))
        picks: list[int] = []
        for j in order:
            if len(picks) == k:
                break
            if support_pics[j] != pic and j not in picks:
                picks.append(j)
        if len(picks) < k:
            raise ConfigError(f"query {qid}: only {len(picks)} usable support examples for k={k} (support size {n})")
        plans.append(picks)
    return plans


class FewShotPrompts(Sequence):
    """prompts[i] = [shot_1, ..., shot_k, query_i] (samples in the schema), decoded on access.

    `queries` is the query dataset (its "answers" and "id" columns score the predictions, as in evaluate.py)."""

    def __init__(self, queries: datasets.Dataset, support: datasets.Dataset, plan: list[list[int]]):
        self.queries, self.support, self.plan = queries, support, plan

    def __len__(self) -> int:
        return len(self.queries)

    def undecoded(self) -> "FewShotPrompts":
        """The same prompts with their pictures left undecoded (for the view store: view_store.undecoded)."""
        from vlmlab.view_store import undecoded

        return FewShotPrompts(undecoded(self.queries), undecoded(self.support), self.plan)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return [self.support[j] for j in self.plan[i]] + [self.queries[i]]


def few_shot(query_ds: datasets.Dataset, support_ds: datasets.Dataset, k: int = 4, seed: int = 0) -> FewShotPrompts:
    """k-shot prompts for every query: a Sequence of [shot_1..shot_k, query] (list(...) gives list[list[sample]])."""
    return FewShotPrompts(query_ds, support_ds, few_shot_plan(query_ds["id"], support_ds["id"], k, seed))


def load_few_shot(task: str, k: int = 4, seed: int = 0, limit: int = 0, cache_dir: str | None = None,
                  **spec_overrides) -> FewShotPrompts:
    """The evaluated split (first `limit` queries) with k shots each from the support split."""
    spec = dataclasses.replace(spec_of(task), **spec_overrides)
    queries = load_benchmark(task, spec.split, limit, cache_dir, **spec_overrides)
    support = queries if (spec.support_split == spec.split and not limit) else \
        load_benchmark(task, spec.support_split, 0, cache_dir, **spec_overrides)
    return few_shot(queries, support, k, seed)


def shot_answer(sample: dict) -> str:
    """The answer a shot shows, by its task's rule (VQA tasks: the most frequent gold answer, ties: the first;
    caption: the first reference)."""
    return get_task(sample["task"]).shot_answer(list(sample["answers"]))


def render_text(prompt: list[dict]) -> str:
    """A prompt's text with one <image> per picture (before the processor expands each into its visual tokens)."""
    shots = "".join(f"{IMAGE_TOKEN}{prompt_text(s['task'], s['question'])} {shot_answer(s)}{SEP}" for s in prompt[:-1])
    return shots + IMAGE_TOKEN + prompt_text(prompt[-1]["task"], prompt[-1]["question"])


def encode_few_shot(processor, prompt: list[dict]) -> Encoded:
    """Token ids and image views of a few-shot prompt, laid out as `data.Processor.encode` lays out one sample
    (k=0 gives exactly its generation input). Views are in prompt order: the FA VLM fills <image> slots in order."""
    tok_ids = lambda text: processor.tok(text, add_special_tokens=False).input_ids  # noqa: E731
    ids = [processor.ids.bos] if processor.ids.bos is not None else []
    views, view_image = [], []
    for j, s in enumerate(prompt):
        v = processor.images(s["image"], sample_id=s["id"], train=False)
        ids += processor.image_ids(v) + tok_ids(prompt_text(s["task"], s["question"]))
        if j < len(prompt) - 1:
            ids += tok_ids(" " + shot_answer(s)) + tok_ids(SEP)
        views += v
        view_image += [j] * len(v)
    if len(ids) > processor.max_length:
        raise ConfigError(f"{prompt[-1]['id']}: a {len(prompt) - 1}-shot prompt of {len(ids)} tokens exceeds the LM "
                         f"context of {processor.max_length}; use fewer shots or fewer visual tokens")
    return Encoded(ids, [-100] * len(ids), views, view_image)


def clean_prediction(text: str) -> str:
    """The generated answer up to the end of its shot."""
    return text.split(SEP, 1)[0].strip()
