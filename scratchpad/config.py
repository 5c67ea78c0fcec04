"""What a run's ml_collections config means, and the checks that guard a workdir."""

from __future__ import annotations

import ast
import importlib.util
import json
import os

import ml_collections

from scratchpad.model.transformer import ModelConfig
from scratchpad.tasks import VOCABULARY

CONFIG_FILE = "config.json"
# The config fields that fix the shapes of the parameters in a checkpoint.
SHAPE_KEYS = ("num_layers", "d_model", "num_heads", "mlp_dim", "max_length", "position_encoding")


# Pause tokens (Goyal et al. 2023): `pretrain_fraction` of each training sequence
# inserted at random; `finetune` (M_ft) appended to each input in training,
# `inference` (M_inf; -1: the same as M_ft) in evaluation; `prepend` puts them before it.
PAUSE_DEFAULTS = dict(pretrain_fraction=0.0, finetune=0, inference=-1, prepend=False)


# Model sizes shared by every experiment: name -> (layers, d_model, heads, mlp_dim).
SIZES = {
    "tiny": (4, 128, 4, 512),     # 0.8M parameters
    "small": (6, 256, 8, 1024),   # 4.8M
    "base": (12, 512, 8, 2048),   # 38M
}


def parse_variant(arg: str | None, choices: dict[str, tuple[str, ...]], defaults: dict[str, str],
                  config_file: str) -> dict[str, str]:
  """`"direct,small"` -> {"format": "direct", "size": "small", ...}: each token picks one kind."""
  chosen = dict(defaults)
  for token in filter(None, (arg or "").split(",")):
    kinds = [kind for kind, names in choices.items() if token in names]
    if not kinds:
      raise ValueError(f"unknown variant {token!r} in {config_file}; choose from "
                       + " | ".join(", ".join(names) for names in choices.values()))
    chosen[kinds[0]] = token
  return chosen


def base_config(task: str, size: str, variant: dict[str, str]) -> ml_collections.ConfigDict:
  """Every section a run needs, at the defaults an experiment's config file then adjusts."""
  cfg = ml_collections.ConfigDict()
  cfg.task = task
  cfg.variant = ",".join(variant.values())
  cfg.seed = 0
  layers, d_model, heads, mlp = SIZES[size]
  cfg.model = ml_collections.ConfigDict(dict(
      num_layers=layers, d_model=d_model, num_heads=heads, mlp_dim=mlp, max_length=1024,
      position_encoding="rope", rope_max_wavelength=10_000.0, dtype="float32"))
  # Lengths left at 0 become the task's longest training example.
  cfg.data = ml_collections.ConfigDict(dict(pack=True, inputs_length=0, targets_length=0))
  cfg.train = ml_collections.ConfigDict(dict(
      steps=5000, batch_size=32, learning_rate=3e-3, warmup_steps=100, final_lr_fraction=0.1, weight_decay=0.01,
      grad_clip=1.0, b1=0.9, b2=0.98, log_every=25, checkpoint_every=500, keep_checkpoints=2,
      init_from=""))  # a pretraining run's workdir: start from its parameters, with a fresh optimizer
  cfg.pauses = ml_collections.ConfigDict(PAUSE_DEFAULTS)
  cfg.eval = ml_collections.ConfigDict(dict(splits=("test",), batch_size=500, max_examples=0))
  cfg.mesh = ml_collections.ConfigDict(dict(
      shape=(-1, 1, 1),  # (data, fsdp, tensor); -1 takes the remaining devices
      rules=(("batch", ("data", "fsdp")), ("embed", "fsdp"), ("vocab", "tensor"), ("heads", "tensor"),
             ("mlp", "tensor"), ("kv", None), ("norm", None), ("position", None))))
  return cfg


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """Loads `path/to/config.py:ARGS` by calling the file's `get_config(ARGS)`."""
  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    raise ValueError(f"config file {path!r} does not exist")
  module_spec = importlib.util.spec_from_file_location("scratchpad_user_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ValueError(f"config file {path!r} has no get_config()")
  return module.get_config(arg or None)


def _parse_value(text: str, old):
  if isinstance(old, bool):
    if text.lower() not in ("true", "false", "1", "0"):
      raise ValueError(f"expected true or false, got {text!r}")
    return text.lower() in ("true", "1")
  if isinstance(old, (int, float)) and not isinstance(old, bool):
    value = ast.literal_eval(text)
    if not isinstance(value, (int, float)) or (isinstance(old, int) and not isinstance(value, int)):
      raise ValueError(f"expected {type(old).__name__}, got {text!r}")
    return type(old)(value)
  if isinstance(old, (tuple, list)):
    value = ast.literal_eval(text)
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)
  return text


def override(cfg: ml_collections.ConfigDict, key: str, text: str) -> None:
  """Sets `cfg.<key>` from command-line text, typed like the value it replaces."""
  *parents, leaf = key.split(".")
  node, path = cfg, "config"
  for name in parents:
    if name not in node or not isinstance(node[name], ml_collections.ConfigDict):
      raise ValueError(f"unknown config key {key!r}: {path} has no section {name!r}")
    node, path = node[name], f"{path}.{name}"
  if leaf not in node:
    raise ValueError(f"unknown config key {key!r}; {path} has: {', '.join(sorted(node.keys()))}")
  try:
    node[leaf] = _parse_value(text, node[leaf])
  except (ValueError, SyntaxError) as e:
    raise ValueError(f"bad value for config key {key!r}: {e}") from None


def apply_overrides(cfg: ml_collections.ConfigDict, overrides) -> ml_collections.ConfigDict:
  """Applies `(key, text)` command-line overrides in order; returns `cfg`."""
  for key, text in overrides:
    override(cfg, key, text)
  return cfg


def task_vocabulary_of(cfg: ml_collections.ConfigDict):
  from scratchpad.tasks.registry import task_vocabulary
  return task_vocabulary(cfg.task)


def padded_vocab_size(vocabulary=VOCABULARY, multiple: int = 8) -> int:
  return -(-vocabulary.vocab_size // multiple) * multiple


def model_config(cfg: ml_collections.ConfigDict) -> ModelConfig:
  return ModelConfig(vocab_size=padded_vocab_size(task_vocabulary_of(cfg)), **cfg.model.to_dict())


def _pauses(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The config's pause settings (workdirs written before pauses existed have none)."""
  return cfg.get("pauses") or ml_collections.ConfigDict(PAUSE_DEFAULTS)


def train_task(cfg: ml_collections.ConfigDict) -> str:
  """The seqio task a run trains on: `cfg.task` with the config's pauses."""
  from scratchpad.tasks.registry import with_pauses
  p = _pauses(cfg)
  if p.pretrain_fraction and p.finetune:
    raise ValueError("pauses.pretrain_fraction and pauses.finetune are exclusive: a run pretrains or fine-tunes")
  return with_pauses(cfg.task, p.pretrain_fraction, p.finetune, p.prepend)


def eval_task(cfg: ml_collections.ConfigDict, num_pauses: int | None = None) -> str:
  """The seqio task a run is evaluated on: `cfg.task` with M_inf pauses (default: the config's)."""
  from scratchpad.tasks.registry import with_pauses
  p = _pauses(cfg)
  if num_pauses is None:
    num_pauses = p.finetune if p.inference < 0 else p.inference
  return with_pauses(cfg.task, appended=num_pauses, prepend=p.prepend)


def save_config(cfg: ml_collections.ConfigDict, workdir: str) -> None:
  """Writes WORKDIR/config.json once; a workdir keeps the config it was made with."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    os.makedirs(workdir, exist_ok=True)
    with open(path + ".tmp", "w") as f:
      f.write(cfg.to_json(indent=2))
    os.replace(path + ".tmp", path)


def load_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise ValueError(f"{workdir} has no {CONFIG_FILE}: it is not the workdir of a training run")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def check_same_model(cfg: ml_collections.ConfigDict, workdir: str, same_task: bool = True) -> None:
  """Raises if WORKDIR holds a run of a differently shaped model (or, `same_task`, another task)."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return
  saved = load_config(workdir)
  diffs = [f"model.{k}={cfg.model[k]!r} but the checkpoint has {saved.model[k]!r}"
           for k in SHAPE_KEYS if saved.model.get(k) != cfg.model[k]]
  if padded_vocab_size(task_vocabulary_of(saved)) != padded_vocab_size(task_vocabulary_of(cfg)):
    diffs.append(f"the vocabulary of task {cfg.task!r} differs from that of {saved.task!r}")
  if same_task and saved.task != cfg.task:
    diffs.append(f"task={cfg.task!r} but the checkpoint was trained on {saved.task!r}")
  if diffs:
    raise ValueError(f"{workdir} holds a checkpoint from another config: {'; '.join(diffs)}")


def check_init_from(cfg: ml_collections.ConfigDict) -> None:
  """A fine-tuning config (`cfg.pretrained` names the pretraining it needs) must start
  from a run of that pretraining: StdPT (no pauses) or PausePT."""
  wanted = cfg.get("pretrained")
  if not wanted:
    return
  init_from = cfg.train.init_from
  if not init_from:
    raise ValueError(f"variant {cfg.variant} fine-tunes a {wanted} model: set train.init_from to the "
                     f"workdir of a {wanted} run")
  saved = load_config(init_from)
  got = "PausePT" if _pauses(saved).pretrain_fraction else "StdPT"
  if got != wanted:
    raise ValueError(f"train.init_from={init_from!r} is a {got} run but variant {cfg.variant} needs {wanted}")
