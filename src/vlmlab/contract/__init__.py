"""The experiment contract: what every part of vlmlab agrees on, owned in one place.

  errors.py    UserError / ConfigError: mistakes a user makes, reported in one line
  schema.py    `knob(default, ge=..)`: each numeric config field carries its allowed range
  tasks.py     the task registry: sample maker, prompt, normalisation, metric, shot format, real benchmark
  metrics.py   metric metadata: direction (higher/lower is better) and kind (quality, timing,
               deterministic, event)
  run.py       run identity: cell names, the keys that identify a run, run-folder layout, what an
               ablation may not vary
  ablation.py  the ablation-file schema and its one loader
  inherit.py   what a scale file takes from its base and a follow-up from the look it follows
  summary.py   the typed summary.json that training writes and the report reads
"""
from vlmlab.contract.ablation import Ablation, Check, load_ablation
from vlmlab.contract.errors import ConfigError, UserError
from vlmlab.contract.metrics import Metric, metric
from vlmlab.contract.summary import Perf, Summary
from vlmlab.contract.tasks import Task, get_task, register_task, task_names

__all__ = ["Ablation", "Check", "load_ablation", "ConfigError", "UserError", "Metric", "metric", "Perf", "Summary",
           "Task", "get_task", "register_task", "task_names"]
