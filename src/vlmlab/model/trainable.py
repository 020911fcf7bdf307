"""What trains, per component, applied in one function and reported as a table.

Components: vision, connector, llm, cross_attention (and new_tokens, the VLM's own token rows, which
always train). Each is `frozen | lora | full`. LoRA goes through peft (`inject_adapter_in_model`, in
place, so the VLM keeps its shape); only the adapters of a LoRA component train. Newly initialised
modules (connector, cross-attention blocks) train fully by default, as in the paper.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch.nn as nn

from vlmlab.contract.errors import ConfigError
from vlmlab.contract.schema import knob

POLICIES = ("frozen", "lora", "full")


@dataclass
class LoraConfig:
    r: int = knob(16, ge=1)              # rank
    alpha: int = knob(32, gt=0)          # scaling numerator (scale = alpha / r)
    dropout: float = knob(0.0, ge=0, lt=1)  # dropout on the LoRA input
    target_modules: str = "all-linear"   # all-linear | comma-separated module names (q_proj,v_proj) | a regex


@dataclass
class TrainableConfig:
    vision: str = "frozen"               # frozen | lora | full
    connector: str = "full"              # frozen | lora | full (new module: full, as in the paper)
    llm: str = "frozen"                  # frozen | lora | full
    cross_attention: str = "full"        # frozen | lora | full (new module; only with fusion=cross_attention)
    lora: LoraConfig = field(default_factory=LoraConfig)  # shared by every LoRA component

    def __post_init__(self):
        for name in ("vision", "connector", "llm", "cross_attention"):
            if getattr(self, name) not in POLICIES:
                raise ConfigError(f"trainable.{name}={getattr(self, name)!r} is not allowed; allowed: {', '.join(POLICIES)}")


def components(vlm: nn.Module) -> dict[str, nn.Module | None]:
    return {"vision": vlm.vision, "connector": vlm.connector, "llm": vlm.llm, "cross_attention": vlm.xattn,
            "new_tokens": vlm.vlm_embed, "tile_positions": getattr(vlm, "tile_embed", None)}


def _set(module: nn.Module, policy: str, lora: LoraConfig) -> None:
    for p in module.parameters():
        p.requires_grad_(policy == "full")
    if policy == "lora":
        target = lora.target_modules
        if target != "all-linear" and ("," in target or target.isidentifier()):
            target = [t.strip() for t in target.split(",") if t.strip()]  # names; anything else is a regex
        from peft import LoraConfig as PeftLoraConfig, inject_adapter_in_model  # peft costs seconds: only for LoRA

        cfg = PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                             target_modules=target)
        inject_adapter_in_model(cfg, module)  # marks only the adapters trainable within `module`


def apply_trainable(vlm: nn.Module, cfg: TrainableConfig) -> None:
    """Freeze / LoRA / unfreeze each component in place. Cross-attention blocks are a module of their own
    (hooked into the LM's layers, not inside them), so the LM's LoRA never touches them."""
    _set(vlm.vision, cfg.vision, cfg.lora)
    _set(vlm.llm, cfg.llm, cfg.lora)
    _set(vlm.connector, cfg.connector, cfg.lora)
    if vlm.xattn is not None:
        _set(vlm.xattn, cfg.cross_attention, cfg.lora)
    elif cfg.cross_attention != "full":
        raise ValueError("trainable.cross_attention is set but fusion is not cross_attention")
    vlm.vlm_embed.weight.requires_grad_(True)
    if getattr(vlm, "tile_embed", None) is not None:
        vlm.tile_embed.weight.requires_grad_(True)  # a new module: it always trains


def parameter_table(vlm: nn.Module) -> dict[str, dict[str, int]]:
    """{component: {total, trainable}}, each parameter counted once."""
    seen: set[int] = set()
    table = {}
    for name, mod in components(vlm).items():
        total = trainable = 0
        for p in (mod.parameters() if mod is not None else []):
            if id(p) in seen:
                continue
            seen.add(id(p))
            total += p.numel()
            trainable += p.numel() if p.requires_grad else 0
        table[name] = {"total": total, "trainable": trainable}
    table["all"] = {k: sum(v[k] for v in table.values()) for k in ("total", "trainable")}
    return table


def format_table(table: dict[str, dict[str, int]]) -> str:
    lines = [f"{'component':<16}{'trainable':>14}{'total':>14}{'share':>8}"]
    for name, row in table.items():
        share = row["trainable"] / row["total"] if row["total"] else 0.0
        lines.append(f"{name:<16}{row['trainable']:>14,}{row['total']:>14,}{share:>8.1%}")
    return "\n".join(lines)


def merge_lora(module: nn.Module) -> None:
    """Fold every LoRA adapter into its base weight (outputs unchanged; used for export and tests)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for m in module.modules():
        if isinstance(m, BaseTunerLayer):
            m.merge()
