"""Checkpoints that make a run resumable after any interruption (SIGTERM, SIGKILL, a node lost).

A checkpoint is a folder <run_dir>/checkpoint/ holding
  model.safetensors  the parameters that train (adapters, new modules, unfrozen backbones) -- everything
                     else is rebuilt from the config and the pretrained backbones, identically
  state.pt           optimizer and scheduler state, RNG states, the data cursor, the loss history
                     (plain tensors and Python values: loaded with torch.load(weights_only=True))
It is written into a temporary folder and swapped in with renames, so a kill at any instant leaves
either the previous checkpoint or the new one, never a half-written one.

Under FSDP (parallel=fsdp) every rank takes part: the full trainable tensors and the optimizer state
(keyed by parameter name) are gathered to rank 0, which writes them; on resume every rank reads the
files and re-shards them.
"""
from __future__ import annotations

import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from vlmlab.contract.errors import ConfigError

NAME = "checkpoint"


@dataclass
class TrainState:
    step: int = 0                      # optimizer steps done
    batches: int = 0                   # micro-batches consumed: the data cursor
    samples: int = 0                   # training samples seen
    train_time_s: float = 0.0          # training wall time so far
    peak_memory_mb: float = 0.0        # training peak so far
    losses: list[float] = field(default_factory=list)


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}


def _sharded(model) -> bool:
    from vlmlab.dist import is_fsdp

    return is_fsdp(model)


def _full_fsdp_state(model, optimizer) -> tuple[dict, dict]:
    """(trainable weights, optimizer state) as full tensors on rank 0 (empty elsewhere): a collective."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    names = {n for n, p in model.named_parameters() if p.requires_grad}
    msd, osd = get_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {n: v.contiguous() for n, v in msd.items() if n in names}, osd


def save(run_dir: Path, model, optimizer, scheduler, state: TrainState, main: bool = True) -> None:
    """Writes the checkpoint (main process); under FSDP every rank must call it, for the gathering."""
    if _sharded(model):
        weights, optim_state = _full_fsdp_state(model, optimizer)  # every rank joins; rank 0 receives
    elif main:
        weights, optim_state = trainable_state(model), optimizer.state_dict()
    if not main:
        return
    run_dir = Path(run_dir)
    final, tmp, old = run_dir / NAME, run_dir / f".{NAME}.tmp", run_dir / f".{NAME}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(weights, str(tmp / "model.safetensors"))
    torch.save({"optimizer": optim_state, "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(), "python_rng": list_state(random.getstate()),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "train": vars(state)}, tmp / "state.pt")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)                  # the commit point
    shutil.rmtree(old, ignore_errors=True)


def list_state(state):
    """random.getstate() as nested lists (weights_only loading accepts lists, ints and floats)."""
    return [list_state(s) if isinstance(s, tuple) else s for s in state]


def _tuple_state(state):
    return tuple(_tuple_state(s) if isinstance(s, list) else s for s in state)


def find(run_dir: Path) -> Path | None:
    """The complete checkpoint of a run, also one caught between the two renames of `save`."""
    for name in (NAME, f".{NAME}.old"):
        path = Path(run_dir) / name
        if (path / "state.pt").exists() and (path / "model.safetensors").exists():
            return path
    return None


def load(path: Path, model, optimizer, scheduler) -> TrainState:
    """Restores the trainable parameters, optimizer, scheduler and RNG states; returns the training state."""
    weights = load_file(str(path / "model.safetensors"))
    expected = {n for n, p in model.named_parameters() if p.requires_grad}
    if set(weights) != expected:
        raise ConfigError(f"{path}: checkpoint holds other trainable parameters than this config builds "
                         f"({len(set(weights) ^ expected)} differ): was the config changed?")
    blob = torch.load(path / "state.pt", weights_only=True)
    if _sharded(model):  # every rank read the full files; set_state_dict shards them
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        set_state_dict(model, optimizer, model_state_dict=weights, optim_state_dict=blob["optimizer"],
                       options=StateDictOptions(full_state_dict=True, strict=False))
    else:
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in weights.items():
                params[name].copy_(value)
        optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    torch.set_rng_state(blob["torch_rng"])
    random.setstate(_tuple_state(blob["python_rng"]))
    if blob["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(blob["cuda_rng"])
    return TrainState(**blob["train"])


def remove(run_dir: Path) -> None:
    for name in (NAME, f".{NAME}.tmp", f".{NAME}.old"):
        shutil.rmtree(Path(run_dir) / name, ignore_errors=True)
