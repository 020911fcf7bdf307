"""Where a training step's time goes: `python -m vlmlab.bench --profile [--size toy]`.

For ours and the reference of each fusion: the step's phases (forward, backward, clip, AdamW, zero_grad)
in CPU ms; each part's forward CPU ms, FLOPs and FLOP/s (ours: "lm" includes the cross-attention blocks,
which run inside its layers' hooks);
the fixed per-step overhead (the same op graph at near-zero width, so nearly all Python and dispatch);
the busiest ops (torch.profiler); and the toy data pipeline (encode + collate per batch, main process).
CPU time, not wall time: with one thread it is far less sensitive to other processes on a shared machine
(not immune: they still share caches and memory bandwidth; parts' times vary ~10% between runs).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import replace

import torch
from torch.profiler import ProfilerActivity, profile

from vlmlab.bench import measure
from vlmlab.bench.models import GROUPS, Dims

PHASES = ("forward", "loss.item", "backward", "clip", "optimizer", "zero_grad")


def phase_times(tr: measure.Trainer, steps: int) -> dict[str, float]:
    """Median CPU ms per phase of a training step (the same phases as Trainer.step)."""
    per = {p: [] for p in PHASES}
    for _ in range(steps):
        c = [time.process_time()]
        loss = tr.subject.loss()
        c.append(time.process_time())
        loss.item()
        c.append(time.process_time())
        loss.backward()
        c.append(time.process_time())
        torch.nn.utils.clip_grad_norm_(tr.params, 1.0)
        c.append(time.process_time())
        tr.opt.step()
        c.append(time.process_time())
        tr.opt.zero_grad(set_to_none=True)
        c.append(time.process_time())
        for p, a, b in zip(PHASES, c, c[1:]):
            per[p].append(1000 * (b - a))
    return {p: statistics.median(v) for p, v in per.items()}


def part_forward_times(tr: measure.Trainer, steps: int) -> dict[str, float]:
    """Median CPU ms per step spent in each part's forward (forward hooks; nested parts count in both)."""
    acc, starts, handles = {}, {}, []
    for name, mods in tr.subject.parts.items():
        for m in mods:
            handles.append(m.register_forward_pre_hook(lambda mod, a, n=name: starts.__setitem__((n, id(mod)),
                                                                                                  time.process_time())))
            handles.append(m.register_forward_hook(lambda mod, a, o, n=name: acc.__setitem__(
                n, acc.get(n, 0.0) + time.process_time() - starts.pop((n, id(mod))))))
    per = {n: [] for n in tr.subject.parts}
    try:
        for _ in range(steps):
            acc.clear()
            tr.step()
            for n in per:
                per[n].append(1000 * acc.get(n, 0.0))
    finally:
        for h in handles:
            h.remove()
    return {n: statistics.median(v) for n, v in per.items()}


def part_flops(tr: measure.Trainer) -> dict[str, int]:
    """Forward FLOPs per part, from FlopCounterMode's module tree (forward only: the tree attributes the
    backward of modules run from hooks, such as our cross-attention blocks, to the wrong parents)."""
    model = tr.subject.model
    names = {id(m): f"{type(model).__name__}.{n}" for n, m in model.named_modules() if n}
    with measure.flop_counter() as counter:
        tr.subject.loss()
    counts = counter.get_flop_counts()
    return {part: sum(sum(counts.get(names[id(m)], {}).values()) for m in mods)
            for part, mods in tr.subject.parts.items()}


MOVES = ("aten::fill_", "aten::copy_", "aten::zero_")  # memory traffic without FLOPs


def top_ops(tr: measure.Trainer, steps: int = 2, k: int = 12) -> tuple[str, float, list[str]]:
    """torch.profiler's busiest ops by self CPU time, the number of aten ops dispatched per step, and the
    biggest fills / copies with the op chain that issued them (the overhead a code change can remove)."""
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(steps):
            tr.step()
    ka = prof.key_averages()
    n_ops = sum(e.count for e in ka if e.key.startswith("aten::")) / steps
    moves: dict[tuple, list[float]] = {}
    for e in prof.events():
        if e.name in MOVES:
            chain, parent = [], e.cpu_parent
            while parent is not None and len(chain) < 3:
                chain.append(parent.name.replace("aten::", ""))
                parent = parent.cpu_parent
            key = (e.name.replace("aten::", ""), str(list(e.input_shapes[0]) if e.input_shapes else []),
                   " < ".join(chain))
            moves.setdefault(key, []).append(e.self_cpu_time_total / 1000 / steps)
    top = sorted(moves.items(), key=lambda kv: -sum(kv[1]))[:5]
    lines = [f"   {sum(v):6.1f} ms {len(v) // steps:3d}x {op} {shape} < {chain}" for (op, shape, chain), v in top]
    return ka.table(sort_by="self_cpu_time_total", row_limit=k, max_name_column_width=44), n_ops, lines


def overhead_floor(build, d: Dims, steps: int) -> float:
    """CPU ms of a step with the same layers, ops and sequence layout at width ~8 and batch 1: its time is
    almost entirely per-op Python and dispatch, the fixed cost the real step pays on top of its FLOPs."""
    slim = replace(d, batch=1, v_hidden=8, v_inter=8, v_heads=1, hidden=8, inter=8, heads=1, p_heads=1,
                   p_head_dim=8, vocab=min(d.vocab, 64))
    tr = measure.Trainer(build(slim))
    for _ in range(2):
        tr.step()
    return statistics.median(1000 * measure.timed(tr.step, torch.device("cpu"))[1] for _ in range(steps))


def data_pipeline(d: Dims, batches: int = 8) -> dict[str, float]:
    """CPU ms per batch of the toy world's encode (image resize, tokenise) + collate, in the main process, as
    runner.py's DataLoader(num_workers=0) does it. Generates a small toy-world split if missing."""
    from vlmlab.config import compose
    from vlmlab.data import Processor, TaskDataset, collate
    from vlmlab.images import ImageProcessor
    from vlmlab.model.llm import TokenIds
    from vlmlab.world.corpus import TOKENIZER_CORPUS, build_corpus
    from vlmlab.world.tasks import load_mixture
    from vlmlab.world.tokenizer import train_tokenizer

    cfg = compose([f"data.train_size={max(16, batches * d.batch // 4)}", f"image.size={d.image}"])
    tok = train_tokenizer(build_corpus(TOKENIZER_CORPUS))
    image, fake = tok.convert_tokens_to_ids(["<image>", "<fake_token_around_image>"])
    ids = TokenIds(image=image, fake=fake, bos=tok.bos_token_id, eos=tok.eos_token_id, pad=tok.pad_token_id)
    images = ImageProcessor(cfg.image, d.patch)
    samples = load_mixture(cfg.data, "train")
    out = {}
    for fusion in GROUPS:
        ds = TaskDataset(samples, Processor(tok, ids, images, lambda p: d.n_latents, fusion, 4096), True, True)
        times = []
        for b in range(batches):
            c0 = time.process_time()
            collate([ds[i] for i in range(b * d.batch, (b + 1) * d.batch)], ids.pad, d.patch)
            times.append(1000 * (time.process_time() - c0))
        out[fusion] = statistics.median(times)
    return out


def profile_step(d: Dims, trainable: str = "frozen", device: torch.device = torch.device("cpu"),
                 steps: int = 4, data: bool = True, fusions=tuple(GROUPS)) -> str:
    measure.allocator_for_speed()
    lines = [f"profile: batch {d.batch}, trainable={trainable}, {torch.get_num_threads()} thread(s); CPU ms per step "
             "(medians)"]
    for fusion in fusions:
        for build in GROUPS[fusion]:
            tr = measure.Trainer(build(d, trainable, device=device))
            for _ in range(2):
                tr.step()
            phases = phase_times(tr, steps)
            parts, flops = part_forward_times(tr, steps), part_flops(tr)
            table, n_ops, moves = top_ops(tr)
            floor = overhead_floor(build, d, steps)
            total = sum(phases.values())
            lines += ["", f"== {tr.subject.name}: step {total:.1f} ms, {n_ops:.0f} aten ops/step, fixed overhead "
                          f"(same graph at width 8, batch 1) {floor:.1f} ms = {100 * floor / total:.0f}%",
                      "   phases: " + ", ".join(f"{p} {v:.1f}" for p, v in phases.items()),
                      "   part          fwd ms  fwd GFLOP  fwd GFLOP/s"]
            lines += [f"   {n:<12}{parts[n]:>9.1f}{flops[n] / 1e9:>10.2f}{flops[n] / 1e6 / max(parts[n], 1e-9):>12.1f}"
                      for n in parts]
            lines += ["   biggest fills / copies per step (wall time inside the profiler):", *moves,
                      "   busiest ops (wall time inside the profiler):", table]
            del tr
            measure.release_memory()
    if data:
        pipe = data_pipeline(d)
        lines += ["", "data pipeline (toy world, main process): " +
                  ", ".join(f"{f} {ms:.1f} ms/batch" for f, ms in pipe.items())]
    return "\n".join(lines)
