"""Pretrain a tiny Llama (transformers LlamaForCausalLM) on the world corpus, and measure it.

Next-token prediction on the corpus packed into fixed-length blocks (each line is <s> line </s>).
Quality: held-out perplexity; fact recall, i.e. for every (kind, relation) whether the true value is the
likeliest of the relation's 8 values after a prompt like "the red star lives in the"; and reading, the
share of held-out scenes told in words whose question it answers (greedy): the mechanism a frozen LM
needs before any visual token can help it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from tqdm import tqdm
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from vlmlab.world.resume import TrainState
from vlmlab.world import kb
from vlmlab.world.corpus import RECALL_PROMPTS


@dataclass
class LMSpec:
    hidden: int = 128  # model width
    layers: int = 4  # decoder layers
    heads: int = 4  # attention heads (no GQA)
    intermediate: int = 384  # SwiGLU width
    max_positions: int = 1024  # RoPE: room for 5 x 64 visual tokens plus text
    steps: int = 4500  # optimiser steps (the quality knob: weak and strong differ here)
    batch: int = 32  # blocks per step
    seq: int = 64  # tokens per block
    lr: float = 1e-3  # peak AdamW learning rate (cosine to 10%, warmup 5% of steps)
    seed: int = 0  # init and data order
    checkpoints: tuple[int, ...] = field(default_factory=tuple)  # steps at which to snapshot the model


def cosine_lr(step: int, steps: int, peak: float) -> float:
    warmup = max(1, steps // 20)
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def pack(tok: PreTrainedTokenizerFast, lines: list[str], seq: int) -> torch.Tensor:
    """(N, seq) blocks of the concatenated token stream <s> line </s> <s> line </s> ..."""
    stream = [i for ids in tok(lines)["input_ids"] for i in ids + [tok.eos_token_id]]
    n = len(stream) // seq
    return torch.tensor(stream[: n * seq]).view(n, seq)


def build_lm(tok: PreTrainedTokenizerFast, spec: LMSpec) -> LlamaForCausalLM:
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=spec.hidden, intermediate_size=spec.intermediate,
        num_hidden_layers=spec.layers, num_attention_heads=spec.heads, num_key_value_heads=spec.heads,
        max_position_embeddings=spec.max_positions, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(spec.seed)
    return LlamaForCausalLM(cfg)


def train_lm(tok: PreTrainedTokenizerFast, lines: list[str], spec: LMSpec, desc: str = "lm",
             on_checkpoint=None, state_path=None, save_every: int = 100) -> LlamaForCausalLM:
    """One pretraining run; `on_checkpoint(step, model)` is called at each of spec.checkpoints (model in eval mode).
    `state_path`: the training state is saved there every `save_every` steps and a run finds it to resume
    (resume.py); the file is removed when the run ends."""
    model = build_lm(tok, spec)
    blocks = pack(tok, lines, spec.seq)  # (N, seq)
    gen = torch.Generator().manual_seed(spec.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=0.01, betas=(0.9, 0.95))
    order, pos = torch.randperm(len(blocks), generator=gen), 0
    state = TrainState(state_path, save_every, model=model, opt=opt, gen=gen)
    start, extra = state.load()
    if start:
        order, pos = extra["order"], int(extra["pos"])
    model.train()
    bar = tqdm(range(start, spec.steps), desc=desc, initial=start, total=spec.steps)
    for step in bar:
        if pos + spec.batch > len(order):  # next epoch
            order, pos = torch.randperm(len(blocks), generator=gen), 0
        x = blocks[order[pos: pos + spec.batch]]  # (B, seq)
        pos += spec.batch
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, spec.steps, spec.lr)
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if on_checkpoint is not None and step + 1 in spec.checkpoints and step + 1 < spec.steps:
            model.eval()
            on_checkpoint(step + 1, model)
            model.train()
        state.save(step + 1, spec.steps, extra={"order": order, "pos": pos})
    model.eval()
    if on_checkpoint is not None and spec.steps in spec.checkpoints:
        on_checkpoint(spec.steps, model)
    state.clear()
    return model


@torch.no_grad()
def perplexity(model: LlamaForCausalLM, tok: PreTrainedTokenizerFast, lines: list[str], seq: int = 64) -> float:
    blocks = pack(tok, lines, seq)
    nll = [model(input_ids=b, labels=b).loss for b in blocks.split(64)]
    weights = [len(b) for b in blocks.split(64)]
    return math.exp(sum(l.item() * w for l, w in zip(nll, weights)) / sum(weights))


@torch.no_grad()
def candidate_logprobs(model: LlamaForCausalLM, tok: PreTrainedTokenizerFast, prompt: str, cands: list[str]) -> list[float]:
    """Sum of log p(" cand" tokens | prompt) for each candidate."""
    p_ids = tok(prompt)["input_ids"]
    c_ids = [tok(" " + c, add_special_tokens=False)["input_ids"] for c in cands]
    width = len(p_ids) + max(len(c) for c in c_ids)
    x = torch.full((len(cands), width), tok.pad_token_id)
    for i, c in enumerate(c_ids):
        x[i, : len(p_ids) + len(c)] = torch.tensor(p_ids + c)
    logp = model(input_ids=x).logits.log_softmax(-1)  # (C, W, V)
    out = []
    for i, c in enumerate(c_ids):
        pos = torch.arange(len(p_ids) - 1, len(p_ids) - 1 + len(c))
        out.append(logp[i, pos, torch.tensor(c)].sum().item())
    return out


def fact_recall(model: LlamaForCausalLM, tok: PreTrainedTokenizerFast, kinds: list[kb.Kind] | None = None) -> float:
    """Fraction of (kind, relation) facts whose true value is the likeliest of the relation's values."""
    kinds = kb.KINDS if kinds is None else kinds
    hits = total = 0
    for kind in kinds:
        for rel, values in kb.RELATIONS.items():
            scores = candidate_logprobs(model, tok, RECALL_PROMPTS[rel].format(k=kb.kind_name(kind)), values)
            hits += values[max(range(len(values)), key=scores.__getitem__)] == kb.FACTS[kind][rel]
            total += 1
    return hits / total


@torch.no_grad()
def reading_accuracy(model: LlamaForCausalLM, tok: PreTrainedTokenizerFast, items: list[tuple[str, list[str], str]],
                     batch: int = 50) -> dict[str, float]:
    """Greedy answers to reading items (corpus.reading_set): accuracy per question type and overall ("all")."""
    side, tok.padding_side = tok.padding_side, "left"
    hits: dict[str, list[bool]] = {}
    try:
        for i in range(0, len(items), batch):
            chunk = items[i: i + batch]
            enc = tok([p for p, _, _ in chunk], return_tensors="pt", padding=True)
            out = model.generate(**enc, max_new_tokens=6, do_sample=False, eos_token_id=tok.eos_token_id,
                                 pad_token_id=tok.pad_token_id)[:, enc["input_ids"].shape[1]:]
            for (_, answers, qtype), row in zip(chunk, out):
                said = tok.decode(row, skip_special_tokens=True).strip().split(".")[0].strip().lower()
                hits.setdefault(qtype, []).append(said in [a.lower() for a in answers])
    finally:
        tok.padding_side = side
    scores = {k: sum(v) / len(v) for k, v in hits.items()}
    scores["all"] = sum(map(sum, hits.values())) / max(1, sum(map(len, hits.values())))
    return scores
