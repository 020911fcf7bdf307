"""From toy-world samples to model batches: prompts, image views, labels, padding.

A sample {id, task, image, question, answers} becomes
  FA:               <s> [<fake> [tag] <image>*T]*views <fake> Question: ... Answer: | answer </s>
  cross-attention:  <s> <image> Question: ... Answer: | answer </s>
where T is the connector's visual tokens for that view and `tag` a split view's text tile tag (image.tile_tags=text,
images.tile_tag). Labels are -100 everywhere but the answer and
</s>, so image positions and the prompt carry no loss. Training batches pad on the right, generation
batches on the left (the prompt alone, for greedy decoding with the KV cache).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch.utils.data import Dataset, Sampler

from vlmlab.contract.errors import ConfigError, UserError
from vlmlab.contract.tasks import get_task
from vlmlab.images import ImageProcessor, collate_views, tile_tag
from vlmlab.model.llm import TokenIds


def prompt_text(task: str, question: str) -> str:
    """The text after a sample's image, by its task's layout (VQA: "Question: q Answer:"; caption: "Caption:")."""
    return get_task(task).prompt(question)


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    views: list[torch.Tensor]  # [(3, H, W)]
    view_image: list[int] | None = None  # image index (within the sample) of each view; None = all image 0


class Processor:
    """Turns one sample into token ids, labels and image views (see the module docstring)."""

    def __init__(self, tokenizer, ids: TokenIds, images: ImageProcessor, tokens_per_view: Callable[[int, tuple[int, int]], int],
                 fusion: str, max_length: int):
        self.tok, self.ids, self.images = tokenizer, ids, images
        self.tokens_per_view, self.fusion, self.max_length = tokens_per_view, fusion, max_length
        self._cache: dict[str, list[int]] = {}

    def _ids(self, text: str) -> list[int]:
        if text not in self._cache:  # prompts repeat across samples: tokenise each once
            self._cache[text] = self.tok(text, add_special_tokens=False).input_ids
        return self._cache[text]

    def image_ids(self, views: list[torch.Tensor]) -> list[int]:
        """The prompt's image part; with image.tile_tags=text each split view's tokens follow its text tag."""
        if self.fusion == "cross_attention":
            return [self.ids.image]
        p = self.images.patch_size
        text_tags = self.images.cfg.tile_tags == "text" and len(views) > 1
        out = []
        for k, v in enumerate(views):
            rows, cols = v.shape[1] // p, v.shape[2] // p
            out += [self.ids.fake] + (self._ids(tile_tag(k, len(views))) if text_tags else [])
            out += [self.ids.image] * self.tokens_per_view(rows * cols, (rows, cols))
        return out + [self.ids.fake]

    def encode(self, sample: dict, train: bool, with_answer: bool) -> Encoded:
        views = self.images(sample["image"], sample_id=sample["id"], train=train)  # PIL, or undecoded for the view store
        bos = [self.ids.bos] if self.ids.bos is not None else []
        prompt = bos + self.image_ids(views) + self._ids(prompt_text(sample["task"], sample["question"]))
        answer = get_task(sample["task"]).target(list(sample["answers"])) if with_answer else ""
        target = self.tok(" " + answer, add_special_tokens=False).input_ids + [self.ids.eos] if with_answer else []
        ids = prompt + target
        if len(ids) > self.max_length:
            raise ValueError(f"sample {sample['id']} ({sample['task']}): {len(ids)} tokens exceed the LM context "
                             f"of {self.max_length}")
        return Encoded(ids, [-100] * len(prompt) + target, views)


class BadSample(UserError, ValueError):
    """A sample that cannot be used (unreadable image, empty answer, too long); the message names it."""


class TaskDataset(Dataset):
    """A `datasets.Dataset` of samples, encoded on access. A bad sample raises BadSample naming the sample
    and its file, or with bad_samples="skip" is counted in `skipped` and left out of the batch."""

    def __init__(self, samples, processor: Processor, train: bool, with_answer: bool, bad_samples: str = "error"):
        self.samples, self.processor, self.train, self.with_answer = samples, processor, train, with_answer
        self.bad_samples, self.skipped = bad_samples, []
        self.files = ", ".join(f["filename"] for f in getattr(samples, "cache_files", [])) or "<in memory>"

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Encoded | None:
        try:
            sample = self.samples[i]
            if self.with_answer and not (sample["answers"] and sample["answers"][0].strip()):
                raise ValueError("empty answer / caption")
            return self.processor.encode(sample, self.train, self.with_answer)
        except Exception as e:  # noqa: BLE001 -- any failure of one sample is reported with its identity
            sid = self.samples.select_columns(["id"])[i]["id"] if hasattr(self.samples, "select_columns") else "?"
            msg = f"bad sample #{i} (id {sid}) in {self.files}: {type(e).__name__}: {e}"
            if self.bad_samples != "skip":
                raise BadSample(msg) from e
            self.skipped.append(msg)
            return None


class EpochBatches(Sampler):
    """Endless batches of indices: epoch e is randperm(n) seeded by (seed, e), cut into full batches.
    `start` is a cursor in batches, so a resumed run continues with exactly the batches it would have seen."""

    def __init__(self, n: int, batch_size: int, seed: int, start: int = 0):
        if n < batch_size:
            raise ConfigError(f"{n} training samples cannot fill a batch of {batch_size}: raise data.train_size or "
                              "lower optim.batch_size")
        self.n, self.bs, self.seed, self.start = n, batch_size, seed, start
        self.per_epoch = n // batch_size

    def __iter__(self):
        epoch, b = divmod(self.start, self.per_epoch)
        while True:
            perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))
            for j in range(b, self.per_epoch):
                yield perm[j * self.bs:(j + 1) * self.bs].tolist()
            epoch, b = epoch + 1, 0


def collate(items: list[Encoded], pad_id: int, patch_size: int, left_pad: bool = False) -> dict:
    """Pads token rows (right for training, left for generation) and the image views of the whole batch."""
    items = [x for x in items if x is not None]  # skipped bad samples
    if not items:
        raise BadSample("every sample of a batch was skipped as bad")
    L = max(len(x.input_ids) for x in items)
    B = len(items)
    input_ids = torch.full((B, L), pad_id, dtype=torch.long)
    labels = torch.full((B, L), -100, dtype=torch.long)
    attention_mask = torch.zeros((B, L), dtype=torch.long)
    for b, x in enumerate(items):
        n = len(x.input_ids)
        sl = slice(L - n, L) if left_pad else slice(0, n)
        input_ids[b, sl] = torch.tensor(x.input_ids)
        labels[b, sl] = torch.tensor(x.labels)
        attention_mask[b, sl] = 1
    views = [v for x in items for v in x.views]
    pixel_values, patch_mask, _ = collate_views(views, patch_size)
    if all(v.shape == views[0].shape for v in views):
        patch_mask = None  # equal views: the encoder's plain path, no padding to mask
    view_to_sample = torch.tensor([b for b, x in enumerate(items) for _ in x.views], dtype=torch.long)
    view_to_image = torch.tensor([i for x in items for i in (x.view_image or [0] * len(x.views))], dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
            "pixel_values": pixel_values, "patch_mask": patch_mask, "view_to_sample": view_to_sample,
            "view_to_image": view_to_image}
