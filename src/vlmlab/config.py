"""The typed configuration: the composed Hydra config is converted to these dataclasses before any work.

Each part's dataclass lives next to the code it configures (ConnectorConfig in model/connector.py,
ImageConfig in images.py, ...); this file gathers them into `Config` and turns every mistake (unknown
key, wrong type, value outside its choices or range) into one line that names the key and what is allowed.
Numeric knobs declare their ranges with `knob(...)` (contract/schema.py); plugins (`plugins=[...]`) are
imported before validation, so the tasks and connectors they register are allowed values.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from vlmlab.contract.errors import ConfigError
from vlmlab.contract.plugins import load_plugins
from vlmlab.contract.run import cell_name
from vlmlab.contract.schema import check_ranges, knob
from vlmlab.images import ImageConfig
from vlmlab.model.connector import ConnectorConfig
from vlmlab.model.cross_attention import CrossAttentionConfig
from vlmlab.model.llm import LLMConfig
from vlmlab.model.trainable import TrainableConfig
from vlmlab.paths import repo_root  # callers import it from here too
from vlmlab.world.config import WorldConfig

SCALES = ("base", "large")  # world scales: world/zoo.py SCALES (not imported here: the zoo imports transformers)


def _choice(key: str, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed; allowed: {', '.join(map(str, allowed))}")


@dataclass
class VisionConfig:
    name_or_path: str = "zoo:vision_strong"  # zoo:<name>, a save_pretrained directory, or a hub id
    trust_remote_code: bool = False          # only if you trust the hub repo's code
    mean: Optional[list[float]] = knob(None, length=3)  # the encoder's pixel normalisation (None: image.mean, else 0.5)
    std: Optional[list[float]] = knob(None, gt=0, length=3)  # (CLIP: [0.4815,0.4578,0.4082] / [0.2686,0.2613,0.2758])
    feature_store_mb: float = knob(4096.0, ge=0)  # a frozen encoder's features are stored per view on disk, shared
                                             # by every run on the machine, up to this many MB (0 = off;
                                             # model/feature_store.py)
    view_store_mb: float = knob(8192.0, ge=0)  # the image pipeline's views (uint8) are stored per picture on disk,
                                             # shared by every run on the machine, up to this many MB (0 = off;
                                             # view_store.py, images.py)


@dataclass
class FusionConfig:
    kind: str = "autoregressive"  # autoregressive (Idefics2) | cross_attention (Idefics1 / Flamingo)
    cross_attention: CrossAttentionConfig = field(default_factory=CrossAttentionConfig)  # used by cross_attention

    def __post_init__(self):
        _choice("fusion.kind", self.kind, ("autoregressive", "cross_attention"))


@dataclass
class OptimConfig:
    max_steps: int = knob(600, ge=1)   # optimizer steps
    batch_size: int = knob(16, ge=1)   # samples per micro-batch
    grad_accum: int = knob(1, ge=1)    # micro-batches per optimizer step
    lr: float = knob(1e-3, gt=0)       # peak learning rate (AdamW)
    min_lr_ratio: float = knob(0.1, ge=0, le=1)  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = knob(20, ge=0)  # linear warmup
    weight_decay: float = knob(0.0, ge=0)  # AdamW weight decay (matrices only)
    betas: list[float] = knob(default_factory=lambda: [0.9, 0.95], ge=0, lt=1, length=2)  # AdamW betas
    grad_clip: float = knob(1.0, ge=0)  # max global grad norm (0 = off)
    spike_factor: float = knob(10.0, ge=0)  # diverged when loss > spike_factor x mean of the last spike_window (0 = off)
    spike_window: int = knob(20, ge=1)  # losses averaged for the spike test; NaN / inf losses always diverge


@dataclass
class EvalConfig:
    split: str = "test"               # validation | test
    max_samples: int = knob(300, ge=0)  # per task (0 = the whole split)
    batch_size: int = knob(32, ge=1)   # prompts per generation batch
    max_new_tokens: int = knob(12, ge=1)  # greedy decoding budget
    benchmark: str = "toy"            # toy (the world's held-out split) | real (VQAv2, TextVQA, OKVQA, COCO)
    shots: int = knob(0, ge=0)         # in-context examples per prompt (the paper: 4)
    shot_seed: int = 0                # fixed, so paired training seeds are scored on identical prompts
    benchmark_paths: dict[str, str] = field(default_factory=dict)  # task -> local folder / hub id (real)

    def __post_init__(self):
        _choice("eval.split", self.split, ("validation", "test"))
        _choice("eval.benchmark", self.benchmark, ("toy", "real"))


@dataclass
class LoggerConfig:
    kind: str = "wandb"               # wandb | none (metrics.jsonl is always written)
    project: str = "vlmlab"           # wandb project
    mode: str = "offline"             # offline | online | disabled
    every: int = knob(10, ge=1)        # log train metrics every N steps

    def __post_init__(self):
        _choice("logger.kind", self.kind, ("wandb", "none"))
        _choice("logger.mode", self.mode, ("offline", "online", "disabled"))


@dataclass
class Config:
    name: str = "train"               # experiment name: runs/<name>/<cell>/seed<seed>
    seed: int = knob(0, ge=0)          # data order and initialisation of new modules
    device: str = "auto"              # auto | cpu | cuda
    threads: int = knob(0, ge=0)       # torch intra-op threads (0 = torch's default)
    debug: str = "none"               # active debug profile (set by conf/debug/*)
    checkpoint_every: int = knob(100, ge=0)  # save a resumable checkpoint every N steps (and always on SIGTERM; 0 = SIGTERM only)
    bad_samples: str = "error"        # error | skip: an unusable sample stops the run naming it, or is counted and skipped
    workers: int = knob(0, ge=0)       # DataLoader worker processes (0 = load in the training process)
    plugins: list[str] = field(default_factory=list)  # modules / .py files imported first: they register tasks,
                                      # connectors or metrics (contract/plugins.py)
    parallel: str = "ddp"             # ddp | fsdp: several torchrun processes replicate the model (DDP) or shard
                                      # parameters, gradients and optimizer state per transformer block (FSDP2)
    runs_root: str = "runs"           # run folders live in <runs_root>/<name>/<cell>/seed<seed>
    scale: str = "base"               # base | large: the world scale (conf/scale/): at large, a zoo backbone
                                      # `zoo:<name>` is the large zoo's `zoo:large/<name>`; other backbones are kept
    reuse_finished: bool = True       # a finished run of the identical config at the same clean commit elsewhere under
                                      # runs_root (the baseline recurs across findings) is copied, not trained again
    run_dir: str = "runs/train/baseline/seed0"  # set by hydra.run.dir / hydra.sweep
    vision: VisionConfig = field(default_factory=VisionConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    connector: ConnectorConfig = field(default_factory=ConnectorConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    trainable: TrainableConfig = field(default_factory=TrainableConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    data: WorldConfig = field(default_factory=WorldConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    def __post_init__(self):
        _choice("device", self.device, ("auto", "cpu", "cuda"))
        _choice("bad_samples", self.bad_samples, ("error", "skip"))
        _choice("parallel", self.parallel, ("ddp", "fsdp"))
        _choice("scale", self.scale, SCALES)
        for part in (self.vision, self.llm):  # F1's weak/strong swaps keep working at either scale
            ref = part.name_or_path
            if self.scale != "base" and ref.startswith("zoo:") and "/" not in ref:
                part.name_or_path = f"zoo:{self.scale}/{ref[len('zoo:'):]}"
        if self.fusion.kind != "cross_attention" and self.trainable.cross_attention != "full":
            raise ConfigError("trainable.cross_attention only applies with fusion=cross_attention")
        if "/" in self.name or self.name in ("", ".", ".."):
            raise ConfigError(f"name={self.name!r} is not allowed; allowed: a folder name without '/'")


def _allowed_keys(path: str) -> list[str]:
    cls = Config
    for part in [p for p in path.split(".") if p]:
        f = {x.name: x for x in dataclasses.fields(cls)}.get(part)
        if f is None or not dataclasses.is_dataclass(f.default_factory() if callable(f.default_factory) else None):
            return []
        cls = type(f.default_factory())
    return [x.name for x in dataclasses.fields(cls)]


def explain(err: Exception) -> str:
    """One line for a configuration error raised by omegaconf, hydra or a dataclass check."""
    if isinstance(err, ConfigError):
        return str(err)
    msg = str(err)
    full_key = getattr(err, "full_key", None) or (re.search(r"full_key: (\S+)", msg) or [None, None])[1]
    if isinstance(err, (ConfigKeyError, ConfigAttributeError)) or "not in struct" in msg:
        key = full_key or (re.search(r"Key '([^']+)'", msg) or [None, "?"])[1]
        parent = key.rsplit(".", 1)[0] if "." in key else ""
        allowed = _allowed_keys(parent)
        return f"unknown key '{key}'; allowed keys{' of ' + parent if parent else ''}: {', '.join(allowed)}"
    if isinstance(err, ValidationError):
        value = (re.search(r"Value '([^']*)'", msg) or [None, "?"])[1]
        typ = (re.search(r"converted to (\w+)", msg) or [None, "the declared type"])[1]
        return f"{full_key}={value!r} has the wrong type; allowed: a value of type {typ}"
    missing = re.search(r"Could not find '([^']+)/([^']+)'.*?Available options in '[^']+':(.*)", msg, re.S)
    if missing:
        group, opt, opts = missing.groups()
        opts = opts.split("Config search path")[0]
        return f"{group}={opt} is not an option; allowed: {', '.join(opts.split())}"
    inner = getattr(err, "__cause__", None)
    if isinstance(inner, (ValueError, OmegaConfBaseException)) and inner is not err:
        return explain(inner)
    return msg.strip().splitlines()[0] if msg.strip() else type(err).__name__


def to_config(cfg: DictConfig | dict) -> Config:
    """Validate a composed config against the schema and build the dataclasses (raises ConfigError)."""
    try:
        raw = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)
        raw = OmegaConf.create(OmegaConf.to_container(raw, resolve=True))
        load_plugins(raw.get("plugins") or [])  # they register the tasks / connectors the config may name
        merged = OmegaConf.merge(OmegaConf.structured(Config), raw)
        out = OmegaConf.to_object(merged)
    except ConfigError:
        raise
    except (OmegaConfBaseException, ValueError, TypeError) as e:
        raise ConfigError(explain(e)) from e
    check_ranges(out)
    return out


# ---- Hydra glue: resolvers, and composing + validating the command line before anything is written ----
def register_resolvers() -> None:
    if not OmegaConf.has_resolver("vlmlab_cell"):  # the run folder's cell, from the command line's overrides
        OmegaConf.register_new_resolver("vlmlab_cell", lambda overrides: cell_name(list(overrides or [])))
    if not OmegaConf.has_resolver("vlmlab_root"):
        OmegaConf.register_new_resolver("vlmlab_root", lambda: str(repo_root()))


register_resolvers()


def register_schema() -> None:
    """conf/config.yaml starts from this schema: every field exists (so any knob can be overridden, whichever
    option of its group is chosen) and types are checked as Hydra composes."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="vlmlab_schema", node=Config)


register_schema()


def compose(overrides: list[str] | None = None, config_name: str = "config") -> Config:
    """Compose conf/ with Hydra's compose API and validate it (tests and the CLI's pre-check use this)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(repo_root() / "conf"), version_base="1.3"):
            raw = hydra_compose(config_name=config_name, overrides=list(overrides or []))
    except Exception as e:  # hydra's composition errors: unknown option, key not in struct, bad syntax
        raise ConfigError(explain(e)) from e
    finally:
        GlobalHydra.instance().clear()
    return to_config(raw)


def check_command_line(args: list[str]) -> None:
    """Validate the overrides of a command line, every value of every swept key included (hydra.* and flags
    are Hydra's). Raises ConfigError before Hydra creates any run folder."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    plain = [a for a in args if not a.startswith("-") and not a.split("=")[0].lstrip("+~").startswith("hydra")]
    try:
        parsed = OverridesParser.create().parse_overrides(plain)
    except Exception as e:
        raise ConfigError(explain(e)) from e
    base = [o.input_line if not o.is_sweep_override() else f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}"
            for o in parsed]
    compose(base)
    for i, o in enumerate(parsed):
        if o.is_sweep_override():
            for value in o.sweep_string_iterator():
                compose(base[:i] + [f"{o.get_key_element()}={value}"] + base[i + 1:])
