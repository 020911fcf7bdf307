"""Deterministic compute of a run's model: FLOPs per training sample and per generated token, activation memory.

Measured on the model, not the machine, so two cells compare without noise:
  flops_per_train_sample     forward + backward of one training step on a fixed batch (the first `batch_size`
                             samples of the training mixture, in its order), divided by the batch size
  flops_per_generated_token  greedy decoding of the first training picture's prompt: FLOPs of k + 1 new tokens
                             minus those of 1, over k (the prompt's prefill cancels out)
  activation_mb_per_sample   bytes autograd keeps for backward in that training step (each storage once,
                             parameters excluded), per sample
FLOPs are torch.utils.flop_counter's count (matmuls, attention, convolutions): the terms that dominate a
transformer. Its registry lacks the CPU kernel of scaled_dot_product_attention, so that one is added with
torch's own attention formulas (bench/measure.py's `flop_counter`; without it, attention over visual tokens
would count as free). The frozen tower's forward counts even where the feature store serves it: it is the model's cost.
"""
from __future__ import annotations

import contextlib

import torch
from vlmlab.bench.measure import flop_counter
from vlmlab.data import collate

def _flops(fn) -> int:
    with flop_counter() as counter:  # bench/measure.py: torch's counter plus the CPU attention kernels
        fn()
    return int(counter.get_total_flops())


@contextlib.contextmanager
def _without_store(vlm):
    store, vlm.feature_store = vlm.feature_store, None
    try:
        yield
    finally:
        vlm.feature_store = store


@contextlib.contextmanager
def _no_grad_params(vlm):
    """Parameters marked as not requiring grad: the FLOP counter's module tracker cannot hook a parameter that
    requires grad when it is passed to a submodule under no_grad (generation)."""
    flags = [(p, p.requires_grad) for p in vlm.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def activation_bytes(step) -> int:
    """Bytes of the tensors autograd saves for backward while `step()` runs its forward (parameters excluded)."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        if not isinstance(t, torch.nn.Parameter):
            s = t.untyped_storage()
            seen[s.data_ptr()] = max(seen.get(s.data_ptr(), 0), s.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return sum(seen.values())


def profile(vlm, train_set, batch_size: int, device: torch.device, new_tokens: int = 4) -> dict:
    """The compute figures above for a built VLM and its training set (see the module docstring)."""
    items = [train_set[i] for i in range(min(batch_size, len(train_set)))]
    pad, patch = vlm.ids.pad, train_set.processor.images.patch_size
    batch = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in collate(items, pad, patch).items()}
    n = batch["input_ids"].shape[0]
    was_training = vlm.training
    vlm.train()

    def step():
        loss, _ = vlm(**batch, return_logits=False)
        loss.backward()

    with _without_store(vlm):
        flops_train = _flops(step)
        act = activation_bytes(step)
        vlm.zero_grad(set_to_none=True)
        vlm.eval()
        query = train_set.processor.encode(train_set.samples[0], train=False, with_answer=False)
        g = {k: (v.to(device) if isinstance(v, torch.Tensor) else v)
             for k, v in collate([query], pad, patch, left_pad=True).items()}

        def generate(k: int):
            return lambda: vlm.generate(g["input_ids"], g["attention_mask"], g["pixel_values"], g["patch_mask"],
                                        g["view_to_sample"], g["view_to_image"], max_new_tokens=k, min_new_tokens=k)

        with _no_grad_params(vlm):
            flops_gen = (_flops(generate(new_tokens + 1)) - _flops(generate(1))) / new_tokens
    vlm.train(was_training)
    return {"flops_per_train_sample": flops_train / n, "flops_per_generated_token": flops_gen,
            "activation_mb_per_sample": act / n / 2**20}
