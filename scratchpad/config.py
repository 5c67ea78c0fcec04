"""What a run's ml_collections config means, and the checks that guard a workdir."""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import os

import ml_collections
import seqio

from scratchpad import files
from scratchpad.model import attention, positions, transformer
from scratchpad.tasks import VOCABULARY, get_task_info, task_vocabulary, with_pauses
from scratchpad.train import sharding

CONFIG_FILE = "config.json"
# The config fields that fix the shapes of the parameters in a checkpoint.
# The model keys a checkpoint's parameters depend on (scan_layers: stacked or one per layer).
SHAPE_KEYS = ("num_layers", "d_model", "num_heads", "mlp_dim", "max_length", "position_encoding", "scan_layers")


# Pause tokens (Goyal et al. 2023): `pretrain_fraction` of each training sequence
# inserted at random; `finetune` (M_ft) appended to each input in training,
# `inference` (M_inf; -1: the same as M_ft) in evaluation; `prepend` puts them before it.
PAUSE_DEFAULTS = dict(pretrain_fraction=0.0, finetune=0, inference=-1, prepend=False)
# The paper's pretraining runs and its four fine-tuning variants (pretraining_finetuning).
PAUSE_PRETRAINING = ("StdPT", "PausePT")
PAUSE_VARIANTS = ("StdPT_StdFT", "StdPT_PauseFT", "PausePT_StdFT", "PausePT_PauseFT")


# Model sizes shared by every experiment (name -> layers, d_model, heads, mlp_dim): the model's.
SIZES = transformer.SIZES
POD_SIZES = ("130m", "1b")  # sizes for accelerators: their recipes compute in bfloat16 (parameters float32)


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
      position_encoding="rope", rope_max_wavelength=10_000.0, line_stride=64, max_line_gap=3,
      max_place_gap=1, dtype="bfloat16" if size in POD_SIZES else "float32", attention="auto", remat="none",
      scan_layers=False))
  # Lengths left at 0 become the task's longest training example.
  cfg.data = ml_collections.ConfigDict(dict(pack=True, inputs_length=0, targets_length=0))
  cfg.train = ml_collections.ConfigDict(dict(
      steps=5000, batch_size=32, learning_rate=3e-3, warmup_steps=100, final_lr_fraction=0.1, weight_decay=0.01,
      grad_clip=1.0, ema_decay=0.0, b1=0.9, b2=0.98, log_every=25, checkpoint_every=500, keep_checkpoints=2,
      init_from="",  # a pretraining run's workdir: start from its parameters, with a fresh optimizer
      microbatches=1))  # gradient accumulation: each step's batch in this many slices, one at a time
  cfg.pauses = ml_collections.ConfigDict(PAUSE_DEFAULTS)
  # every: evaluate during training every N steps (0: never) on `every_split`: the loss on
  # `every_examples` examples, and with `every_accuracy` their answers decoded too.
  cfg.eval = ml_collections.ConfigDict(dict(splits=("test",), batch_size=500, max_examples=0, every=0,
                                            every_split="test", every_examples=256, every_accuracy=False))
  cfg.pretrained = ""  # fine-tuning configs: the pretraining train.init_from must be (StdPT | PausePT)
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
    "model.attention": _one_of(*attention.IMPLEMENTATIONS), "model.remat": _one_of(*transformer.REMAT_POLICIES),
    "data.inputs_length": (lambda v: v >= 0, ">= 0 (0: the task's longest input)"),
    "data.targets_length": (lambda v: v >= 0, ">= 0 (0: the task's longest target)"),
    "train.steps": _POSITIVE, "train.batch_size": _POSITIVE, "train.learning_rate": _NON_NEGATIVE,
    "train.warmup_steps": _NON_NEGATIVE, "train.final_lr_fraction": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "train.weight_decay": _NON_NEGATIVE, "train.grad_clip": _POSITIVE,
    "train.ema_decay": (lambda v: 0 <= v < 1, "in [0, 1)"), "train.b1": _FRACTION,
    "train.b2": _FRACTION, "train.log_every": _POSITIVE, "train.checkpoint_every": _POSITIVE,
    "train.keep_checkpoints": _POSITIVE, "train.microbatches": _POSITIVE,
    "pauses.pretrain_fraction": _FRACTION, "pauses.finetune": _NON_NEGATIVE,
    "pauses.inference": (lambda v: v >= -1, ">= -1 (-1: pauses.finetune)"),
    "eval.batch_size": _POSITIVE, "eval.max_examples": (lambda v: v >= 0, ">= 0 (0: all)"),
    "eval.every": (lambda v: v >= 0, ">= 0 (0: never)"), "eval.every_examples": _POSITIVE,
    "pretrained": _one_of("", "StdPT", "PausePT"),
}


def _type_name(value) -> str:
  if isinstance(value, bool):
    return "true or false"
  return {int: "an integer", float: "a number", str: "a string"}.get(type(value), "a list")


def _check_type(key: str, value, expected) -> None:
  if isinstance(expected, bool):
    ok = isinstance(value, bool)
  elif isinstance(expected, float):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
  elif isinstance(expected, (int, str)):
    ok = type(value) is type(expected)
  else:
    ok = isinstance(value, (tuple, list))
  if not ok:
    raise ValueError(f"config key {key}={value!r} must be {_type_name(expected)}")


def _leaves(cfg, prefix=""):
  for name, value in cfg.items():
    if isinstance(value, ml_collections.ConfigDict):
      yield from _leaves(value, f"{prefix}{name}.")
    else:
      yield f"{prefix}{name}", value


def validate(cfg: ml_collections.ConfigDict, num_devices: int | None = None) -> None:
  """Rejects, in one line naming the key and what is allowed, any key the config
  cannot have, any value of the wrong type or out of range, an unknown task or
  split, and (given `num_devices`) a mesh or batch that does not fit the devices."""
  schema = dict(_leaves(base_config("", "tiny", {})))
  sections = sorted({k.split(".")[0] for k in schema})
  for key, value in _leaves(cfg):
    if key not in schema:
      section = key.rsplit(".", 1)[0] if "." in key else ""
      known = sorted(k.rsplit(".", 1)[-1] for k in schema if k.startswith(section + ".")) if section else sections
      raise ValueError(f"unknown config key {key!r}; {section or 'config'} has: {', '.join(known)}")
    _check_type(key, value, schema[key])
    test, allowed = RANGES.get(key, (None, None))
    if test and not test(value):
      raise ValueError(f"config key {key}={value!r} is out of range: it must be {allowed}")
  if cfg.model.d_model % cfg.model.num_heads:
    raise ValueError(f"config key model.d_model={cfg.model.d_model} must be divisible by "
                     f"model.num_heads={cfg.model.num_heads}")
  if cfg.model.position_encoding in positions.ROTARY and cfg.model.d_model // cfg.model.num_heads % 2:
    raise ValueError(f"config key model.d_model={cfg.model.d_model} must give an even head width "
                     f"(d_model / num_heads = {cfg.model.d_model // cfg.model.num_heads}) for "
                     f"{cfg.model.position_encoding}, which rotates pairs of features")
  get_task_info(cfg.task)
  splits = seqio.get_mixture_or_task(cfg.task).splits
  for split in cfg.eval.splits:
    if split not in splits:
      raise ValueError(f"config key eval.splits has {split!r}, which task {cfg.task} lacks; "
                       f"it has: {', '.join(splits)}")
  if cfg.eval.get("every") and cfg.eval.every_split not in splits:
    raise ValueError(f"config key eval.every_split={cfg.eval.every_split!r} is a split task {cfg.task} lacks; "
                     f"it has: {', '.join(splits)}")
  if num_devices is not None:
    _check_mesh(cfg, num_devices)


def _check_mesh(cfg: ml_collections.ConfigDict, num_devices: int) -> None:
  try:
    data, fsdp, _ = sharding.mesh_shape(cfg.mesh.shape, num_devices)
  except ValueError as e:
    raise ValueError(f"config key mesh.shape={tuple(cfg.mesh.shape)} {e}") from None
  microbatches = cfg.train.get("microbatches", 1)
  split = data * fsdp * microbatches
  if cfg.train.batch_size % split:
    raise ValueError(f"config key train.batch_size={cfg.train.batch_size} must be a multiple of {split}: "
                     f"the mesh's {data * fsdp} data x fsdp devices split each of the "
                     f"train.microbatches={microbatches} slices of a batch")


def call_file(spec: str, function: str, what: str = "config file"):
  """Calls `function(ARGS)` of the Python file of `path/to/file.py:ARGS`."""
  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    raise ValueError(f"{what} {path!r} does not exist")
  module_spec = importlib.util.spec_from_file_location("scratchpad_user_file", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, function):
    raise ValueError(f"{what} {path!r} has no {function}()")
  return getattr(module, function)(arg or None)


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """Loads `path/to/config.py:ARGS` by calling the file's `get_config(ARGS)`."""
  try:
    return call_file(spec, "get_config")
  except TypeError as e:  # ml_collections refuses a value of another type than the default's
    raise ValueError(f"config file {spec.partition(':')[0]!r} sets a value of the wrong type: {e}") from None


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
  return task_vocabulary(cfg.task)


def padded_vocab_size(vocabulary=VOCABULARY, multiple: int = 8) -> int:
  return -(-vocabulary.vocab_size // multiple) * multiple


def check_positions(cfg: ml_collections.ConfigDict) -> None:
  """Learned positions stop at model.max_length, and randomized ids are drawn below it: a
  packed row must not be longer."""
  row = cfg.data.inputs_length + cfg.data.targets_length
  scheme = cfg.model.position_encoding
  if scheme in ("learned", "randomized") and row > cfg.model.max_length:
    raise ValueError(f"config key model.max_length={cfg.model.max_length} is shorter than a row of "
                     f"data.inputs_length + data.targets_length = {row} tokens: {scheme} positions need "
                     f"at least {row}")


def model_config(cfg: ml_collections.ConfigDict) -> transformer.ModelConfig:
  """The model of `cfg`, with the vocabulary's size and, for `lines`, its line-ending tokens."""
  vocabulary = task_vocabulary_of(cfg)
  model = cfg.model.to_dict()
  if model.get("position_encoding") in positions.LINE_SCHEMES:
    model["line_break_ids"] = (vocabulary.eos_id, *vocabulary.encode("\n"))
  return transformer.ModelConfig(vocab_size=padded_vocab_size(vocabulary), **model)


def _pauses(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The config's pause settings (workdirs written before pauses existed have none)."""
  return cfg.get("pauses") or ml_collections.ConfigDict(PAUSE_DEFAULTS)


def train_task(cfg: ml_collections.ConfigDict) -> str:
  """The seqio task a run trains on: `cfg.task` with the config's pauses."""
  p = _pauses(cfg)
  if p.pretrain_fraction and p.finetune:
    raise ValueError("pauses.pretrain_fraction and pauses.finetune are exclusive: a run pretrains or fine-tunes")
  return with_pauses(cfg.task, p.pretrain_fraction, p.finetune, p.prepend)


def eval_task(cfg: ml_collections.ConfigDict, num_pauses: int | None = None) -> str:
  """The seqio task a run is evaluated on: `cfg.task` with M_inf pauses (default: the config's)."""
  p = _pauses(cfg)
  if num_pauses is None:
    num_pauses = p.finetune if p.inference < 0 else p.inference
  return with_pauses(cfg.task, appended=num_pauses, prepend=p.prepend)


def save_config(cfg: ml_collections.ConfigDict, workdir: str) -> None:
  """Writes WORKDIR/config.json once; a workdir keeps the config it was made with."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not files.exists(path):
    files.write_text(path, cfg.to_json(indent=2))


def record_attention(cfg: ml_collections.ConfigDict, workdir: str) -> None:
  """Sets `model.attention` to the implementation the run computes with: the one the workdir's
  config recorded (a resumed run keeps it, so it stays bit-exact), else `auto`'s choice here."""
  path = os.path.join(workdir, CONFIG_FILE)
  if cfg.model.attention == "auto" and files.exists(path):
    cfg.model.attention = load_config(workdir).model.get("attention", "auto")
  cfg.model.attention = attention.resolve(cfg.model.attention, cfg.model.dtype,
                                          cfg.model.position_encoding == "line_bias")


def load_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, CONFIG_FILE)
  if not files.exists(path):
    raise ValueError(f"{workdir} has no {CONFIG_FILE}: it is not the workdir of a training run")
  return ml_collections.ConfigDict(files.read_json(path))


def check_same_model(cfg: ml_collections.ConfigDict, workdir: str, same_task: bool = True) -> None:
  """Raises if WORKDIR holds a run of a differently shaped model (or, `same_task`, another task)."""
  if not files.exists(os.path.join(workdir, CONFIG_FILE)):
    return
  saved = load_config(workdir)
  defaults = dataclasses.asdict(transformer.ModelConfig(vocab_size=1))  # for configs older than a key
  saved_model = {k: saved.model.get(k, defaults[k]) for k in SHAPE_KEYS}
  diffs = [f"model.{k}={cfg.model[k]!r} but the checkpoint has {saved_model[k]!r}"
           for k in SHAPE_KEYS if saved_model[k] != cfg.model.get(k, defaults[k])]
  if padded_vocab_size(task_vocabulary_of(saved)) != padded_vocab_size(task_vocabulary_of(cfg)):
    diffs.append(f"the vocabulary of task {cfg.task!r} differs from that of {saved.task!r}")
  if same_task and saved.task != cfg.task:
    diffs.append(f"task={cfg.task!r} but the checkpoint was trained on {saved.task!r}")
  if diffs:
    raise ValueError(f"{workdir} holds a checkpoint from another config: {'; '.join(diffs)}")


def check_init_from(cfg: ml_collections.ConfigDict) -> None:
  """`train.init_from` must be a training run's workdir; a fine-tuning config (`cfg.pretrained`
  names the pretraining it needs) must start from a run of that pretraining: StdPT or PausePT."""
  wanted, init_from = cfg.get("pretrained"), cfg.train.init_from
  if wanted and not init_from:
    raise ValueError(f"variant {cfg.variant} fine-tunes a {wanted} model: set train.init_from to the "
                     f"workdir of a {wanted} run")
  if not init_from:
    return
  if not files.exists(os.path.join(init_from, CONFIG_FILE)):
    raise ValueError(f"config key train.init_from={init_from!r} must be the workdir of a training run, "
                     f"and it has no {CONFIG_FILE}")
  got = "PausePT" if _pauses(load_config(init_from)).pretrain_fraction else "StdPT"
  if wanted and got != wanted:
    raise ValueError(f"train.init_from={init_from!r} is a {got} run but variant {cfg.variant} needs {wanted}")
