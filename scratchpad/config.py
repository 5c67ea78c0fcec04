"""A run's config: its sections and defaults, what each key allows, and command-line overrides.

The bottom of the project: every layer reads a config, and this module imports
nothing of ours but the model's constants. What a config means for a task, the
devices and a workdir is checked beside the trainer (`scratchpad.train.run_config`).
"""

from __future__ import annotations

import ast
import importlib.util
import os

import ml_collections
from ml_collections import config_dict

from scratchpad import errors
from scratchpad.model import attention, positions, transformer

# Pause tokens (Goyal et al. 2023): `pretrain_fraction` of each training sequence inserted at
# random; `finetune` (M_ft) appended to each input in training, `inference` (M_inf; unset:
# M_ft, as in the paper) in evaluation; `prepend` puts them before it. `pretraining`: the
# pretraining a fine-tuning run must start from (StdPT | PausePT; train.init_from is its workdir).
PAUSE_DEFAULTS = dict(pretrain_fraction=0.0, finetune=0, inference=None, prepend=False, pretraining="")
POD_SIZES = ("130m", "1b")  # sizes for accelerators: their recipes compute in bfloat16 (parameters float32)
# Spellings a config can no longer use -> what replaced them (refused, naming the new one).
RETIRED_KEYS = {"pretrained": "pauses.pretraining"}


def parse_variant(arg: str | None, choices: dict[str, tuple[str, ...]], defaults: dict[str, str],
                  config_file: str) -> dict[str, str]:
  """`"direct,small"` -> {"format": "direct", "size": "small", ...}: each token picks one kind."""
  chosen = dict(defaults)
  for token in filter(None, (arg or "").split(",")):
    kinds = [kind for kind, names in choices.items() if token in names]
    if not kinds:
      raise errors.InputError(f"unknown variant {token!r} in {config_file}; choose from "
                              + " | ".join(", ".join(names) for names in choices.values()))
    chosen[kinds[0]] = token
  return chosen


def base_config(task: str, size: str, variant: dict[str, str]) -> ml_collections.ConfigDict:
  """Every section a run needs, at the defaults an experiment's config file then adjusts."""
  cfg = ml_collections.ConfigDict()
  cfg.task = task
  cfg.variant = ",".join(variant.values())
  cfg.seed = 0
  layers, d_model, heads, mlp = transformer.SIZES[size]
  cfg.model = ml_collections.ConfigDict(dict(
      num_layers=layers, d_model=d_model, num_heads=heads, mlp_dim=mlp, max_length=1024,
      position_encoding="rope", rope_max_wavelength=10_000.0, line_stride=64, max_line_gap=3,
      max_place_gap=1, dtype="bfloat16" if size in POD_SIZES else "float32", attention="auto",
      attention_block=0, remat="none", scan_layers=False))
  # Lengths left at 0 become the task's longest training example.
  cfg.data = ml_collections.ConfigDict(dict(pack=True, inputs_length=0, targets_length=0))
  cfg.train = ml_collections.ConfigDict(dict(
      steps=5000, batch_size=32, learning_rate=3e-3, warmup_steps=100, final_lr_fraction=0.1, weight_decay=0.01,
      grad_clip=1.0, ema_decay=0.0, b1=0.9, b2=0.98, log_every=25, checkpoint_every=500, keep_checkpoints=2,
      init_from="",  # a training run's workdir: start from its parameters, with a fresh optimizer
      microbatches=1))  # gradient accumulation: each step's batch in this many slices, one at a time
  cfg.pauses = ml_collections.ConfigDict(
      {**PAUSE_DEFAULTS, "inference": config_dict.placeholder(int)})  # an int, or None: unset
  # every: evaluate during training every N steps (0: never) on `every_split`: the loss on
  # `every_examples` examples, and with `every_accuracy` their answers decoded too.
  cfg.eval = ml_collections.ConfigDict(dict(splits=("test",), batch_size=500, max_examples=0, every=0,
                                            every_split="test", every_examples=256, every_accuracy=False))
  cfg.mesh = ml_collections.ConfigDict(dict(
      shape=(-1, 1, 1),  # (data, fsdp, tensor); -1 takes the remaining devices
      dcn_shape=(1, 1, 1),  # of the shape, the slices each axis spans (multi-slice TPU: e.g. (2, 1, 1))
      rules=(("batch", ("data", "fsdp")), ("embed", "fsdp"), ("vocab", "tensor"), ("heads", "tensor"),
             ("mlp", "tensor"), ("kv", None), ("norm", None), ("position", None))))
  return cfg


# The allowed values of every key with a range: key -> (test, what is allowed).
_POSITIVE = (lambda v: v > 0, "> 0")
_NON_NEGATIVE = (lambda v: v >= 0, ">= 0")
_FRACTION = (lambda v: 0 <= v < 1, "in [0, 1)")
_one_of = lambda *names: (lambda v: v in names, "one of " + ", ".join(repr(n) for n in names))
RANGES = {
    "seed": _NON_NEGATIVE,
    "model.num_layers": _POSITIVE, "model.d_model": _POSITIVE, "model.num_heads": _POSITIVE,
    "model.mlp_dim": _POSITIVE, "model.max_length": _POSITIVE, "model.rope_max_wavelength": _POSITIVE,
    "model.line_stride": _POSITIVE, "model.max_line_gap": _POSITIVE, "model.max_place_gap": _POSITIVE,
    "model.position_encoding": _one_of(*transformer.POSITION_ENCODINGS), "model.dtype": _one_of(*transformer.DTYPES),
    "model.attention": _one_of(*attention.IMPLEMENTATIONS),
    "model.attention_block": (lambda v: v >= 0, ">= 0 (0: by row length)"),
    "model.remat": _one_of(*transformer.REMAT_POLICIES),
    "data.inputs_length": (lambda v: v >= 0, ">= 0 (0: the task's longest input)"),
    "data.targets_length": (lambda v: v >= 0, ">= 0 (0: the task's longest target)"),
    "train.steps": _POSITIVE, "train.batch_size": _POSITIVE, "train.learning_rate": _NON_NEGATIVE,
    "train.warmup_steps": _NON_NEGATIVE, "train.final_lr_fraction": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "train.weight_decay": _NON_NEGATIVE, "train.grad_clip": _POSITIVE,
    "train.ema_decay": (lambda v: 0 <= v < 1, "in [0, 1)"), "train.b1": _FRACTION,
    "train.b2": _FRACTION, "train.log_every": _POSITIVE, "train.checkpoint_every": _POSITIVE,
    "train.keep_checkpoints": _POSITIVE, "train.microbatches": _POSITIVE,
    "pauses.pretrain_fraction": _FRACTION, "pauses.finetune": _NON_NEGATIVE,
    "pauses.inference": (lambda v: v is None or v >= 0,
                         ">= 0, or None (unset) for pauses.finetune's count; -1 no longer means that"),
    "pauses.pretraining": _one_of("", "StdPT", "PausePT"),
    "eval.batch_size": _POSITIVE, "eval.max_examples": (lambda v: v >= 0, ">= 0 (0: all)"),
    "eval.every": (lambda v: v >= 0, ">= 0 (0: never)"), "eval.every_examples": _POSITIVE,
}


def _fields(cfg, prefix=""):
  """(dotted key, section, name) of every value below the sections of `cfg`."""
  for name, value in cfg.items():
    if isinstance(value, ml_collections.ConfigDict):
      yield from _fields(value, f"{prefix}{name}.")
    else:
      yield f"{prefix}{name}", cfg, name


def _leaves(cfg):
  return ((key, section[name]) for key, section, name in _fields(cfg))


# Every key a config may have, and the type of its value (a placeholder's, for keys that may be None).
SCHEMA = {key: section.get_ref(name).get_type() for key, section, name in _fields(base_config("", "tiny", {}))}
_SECTIONS = sorted({k.split(".")[0] for k in SCHEMA})
_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _check_type(key: str, value) -> None:
  expected = SCHEMA[key]
  if value is None:
    ok = RANGES.get(key, (lambda v: False,))[0](None)
  elif expected is bool or expected is str:
    ok = type(value) is expected
  elif expected is int:
    ok = isinstance(value, int) and not isinstance(value, bool)
  elif expected is float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
  else:
    ok = isinstance(value, (tuple, list))
  if not ok:
    raise errors.InputError(f"config key {key}={value!r} must be {_TYPE_NAMES.get(expected, 'a list')}")


def _unknown_key(key: str) -> errors.InputError:
  if key in RETIRED_KEYS:
    return errors.InputError(f"config key {key!r} is now {RETIRED_KEYS[key]!r}")
  section = key.rsplit(".", 1)[0] if "." in key else ""
  known = sorted(k.rsplit(".", 1)[-1] for k in SCHEMA if k.startswith(section + ".")) if section else _SECTIONS
  return errors.InputError(f"unknown config key {key!r}; {section or 'config'} has: {', '.join(known)}")


def validate(cfg: ml_collections.ConfigDict) -> None:
  """Rejects, in one line naming the key and what is allowed, any key the config cannot have
  (a retired one named with its replacement) and any value of the wrong type or out of range."""
  for key, value in _leaves(cfg):
    if key not in SCHEMA:
      raise _unknown_key(key)
    _check_type(key, value)
    test, allowed = RANGES.get(key, (None, None))
    if test and not test(value):
      raise errors.InputError(f"config key {key}={value!r} is out of range: it must be {allowed}")
  if cfg.model.d_model % cfg.model.num_heads:
    raise errors.InputError(f"config key model.d_model={cfg.model.d_model} must be divisible by "
                            f"model.num_heads={cfg.model.num_heads}")
  if cfg.model.position_encoding in positions.ROTARY and cfg.model.d_model // cfg.model.num_heads % 2:
    raise errors.InputError(f"config key model.d_model={cfg.model.d_model} must give an even head width "
                            f"(d_model / num_heads = {cfg.model.d_model // cfg.model.num_heads}) for "
                            f"{cfg.model.position_encoding}, which rotates pairs of features")
  if cfg.pauses.pretrain_fraction and cfg.pauses.finetune:
    raise errors.InputError("config keys pauses.pretrain_fraction and pauses.finetune are exclusive: "
                            "a run pretrains or fine-tunes")


def call_file(spec: str, function: str, what: str = "config file"):
  """Calls `function(ARGS)` of the Python file of `path/to/file.py:ARGS`."""
  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    raise errors.InputError(f"{what} {path!r} does not exist")
  module_spec = importlib.util.spec_from_file_location("scratchpad_user_file", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, function):
    raise errors.InputError(f"{what} {path!r} has no {function}()")
  return getattr(module, function)(arg or None)


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """Loads `path/to/config.py:ARGS` by calling the file's `get_config(ARGS)`."""
  try:
    return call_file(spec, "get_config")
  except TypeError as e:  # ml_collections refuses a value of another type than the default's
    raise errors.InputError(f"config file {spec.partition(':')[0]!r} sets a value of the wrong type: {e}") from None


def _parse_value(text: str, expected: type):
  if expected is bool:
    if text.lower() not in ("true", "false", "1", "0"):
      raise errors.InputError(f"expected true or false, got {text!r}")
    return text.lower() in ("true", "1")
  if expected in (int, float):
    if expected is int and text.lower() == "none":
      return None  # a placeholder's "unset"; validate says which keys may be
    value = ast.literal_eval(text)
    if not isinstance(value, (int, float)) or (expected is int and not isinstance(value, int)):
      raise errors.InputError(f"expected {expected.__name__}, got {text!r}")
    return expected(value)
  if expected in (tuple, list):
    value = ast.literal_eval(text)
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)
  return text


def override(cfg: ml_collections.ConfigDict, key: str, text: str) -> None:
  """Sets `cfg.<key>` from command-line text, typed like the schema's value."""
  if key in RETIRED_KEYS:
    raise _unknown_key(key)
  *parents, leaf = key.split(".")
  node, path = cfg, "config"
  for name in parents:
    if name not in node or not isinstance(node[name], ml_collections.ConfigDict):
      raise errors.InputError(f"unknown config key {key!r}: {path} has no section {name!r}")
    node, path = node[name], f"{path}.{name}"
  if leaf not in node:
    raise errors.InputError(f"unknown config key {key!r}; {path} has: {', '.join(sorted(node.keys()))}")
  try:
    node[leaf] = _parse_value(text, SCHEMA.get(key, type(node[leaf])))
  except (ValueError, SyntaxError, TypeError) as e:
    raise errors.InputError(f"bad value for config key {key!r}: {e}") from None


def apply_overrides(cfg: ml_collections.ConfigDict, overrides) -> ml_collections.ConfigDict:
  """Applies `(key, text)` command-line overrides in order; returns `cfg`."""
  for key, text in overrides:
    override(cfg, key, text)
  return cfg
