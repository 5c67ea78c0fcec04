"""A run's config against its task, its devices and its workdir, and the record it leaves there.

`config.validate` checks a config alone; `check_run` adds what needs the task
registry and the devices. A workdir keeps the config it was made with
(`config.json`): a resumed or fine-tuned run is checked against it.
"""

from __future__ import annotations

import dataclasses
import os

import ml_collections
import seqio

from scratchpad import config as config_lib
from scratchpad import errors
from scratchpad import files
from scratchpad.model import attention, positions, transformer
from scratchpad.tasks import VOCABULARY, get_task_info, task_vocabulary
from scratchpad.train import sharding

CONFIG_FILE = "config.json"
# The model keys a checkpoint's parameters depend on (scan_layers: stacked or one per layer).
SHAPE_KEYS = ("num_layers", "d_model", "num_heads", "mlp_dim", "max_length", "position_encoding", "scan_layers")


def check_run(cfg: ml_collections.ConfigDict, num_devices: int | None = None) -> None:
  """`config.validate`, then, in one line naming the key: an unknown task or split and
  (given `num_devices`) a mesh or batch that does not fit the devices."""
  config_lib.validate(cfg)
  get_task_info(cfg.task)
  splits = seqio.get_mixture_or_task(cfg.task).splits
  for split in cfg.eval.splits:
    if split not in splits:
      raise errors.InputError(f"config key eval.splits has {split!r}, which task {cfg.task} lacks; "
                              f"it has: {', '.join(splits)}")
  if cfg.eval.every and cfg.eval.every_split not in splits:
    raise errors.InputError(f"config key eval.every_split={cfg.eval.every_split!r} is a split task {cfg.task} lacks; "
                            f"it has: {', '.join(splits)}")
  if num_devices is not None:
    _check_mesh(cfg, num_devices)


def _check_mesh(cfg: ml_collections.ConfigDict, num_devices: int) -> None:
  try:
    data, fsdp, _ = sharding.mesh_shape(cfg.mesh.shape, num_devices)
  except ValueError as e:
    raise errors.InputError(f"config key mesh.shape={tuple(cfg.mesh.shape)} {e}") from None
  split = data * fsdp * cfg.train.microbatches
  if cfg.train.batch_size % split:
    raise errors.InputError(f"config key train.batch_size={cfg.train.batch_size} must be a multiple of {split}: "
                            f"the mesh's {data * fsdp} data x fsdp devices split each of the "
                            f"train.microbatches={cfg.train.microbatches} slices of a batch")


def padded_vocab_size(vocabulary=VOCABULARY, multiple: int = 8) -> int:
  return -(-vocabulary.vocab_size // multiple) * multiple


def check_positions(cfg: ml_collections.ConfigDict) -> None:
  """Learned positions stop at model.max_length, and randomized ids are drawn below it: a
  packed row must not be longer."""
  row = cfg.data.inputs_length + cfg.data.targets_length
  scheme = cfg.model.position_encoding
  if scheme in ("learned", "randomized") and row > cfg.model.max_length:
    raise errors.InputError(f"config key model.max_length={cfg.model.max_length} is shorter than a row of "
                            f"data.inputs_length + data.targets_length = {row} tokens: {scheme} positions need "
                            f"at least {row}")


def model_config(cfg: ml_collections.ConfigDict) -> transformer.ModelConfig:
  """The model of `cfg`, with the vocabulary's size and, for `lines`, its line-ending tokens."""
  vocabulary = task_vocabulary(cfg.task)
  model = cfg.model.to_dict()
  if model.get("position_encoding") in positions.LINE_SCHEMES:
    model["line_break_ids"] = (vocabulary.eos_id, *vocabulary.encode("\n"))
  return transformer.ModelConfig(vocab_size=padded_vocab_size(vocabulary), **model)


def save_config(cfg: ml_collections.ConfigDict, workdir: str) -> None:
  """Writes WORKDIR/config.json once; a workdir keeps the config it was made with."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not files.exists(path):
    files.write_text(path, cfg.to_json(indent=2))


def load_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, CONFIG_FILE)
  if not files.exists(path):
    raise errors.InputError(f"{workdir} has no {CONFIG_FILE}: it is not the workdir of a training run")
  return ml_collections.ConfigDict(files.read_json(path))


def _saved_config(workdir: str) -> ml_collections.ConfigDict | None:
  return load_config(workdir) if files.exists(os.path.join(workdir, CONFIG_FILE)) else None


def record_attention(cfg: ml_collections.ConfigDict, workdir: str) -> None:
  """Sets `model.attention` to the implementation the run computes with: the one the workdir's
  config recorded (a resumed run keeps it, so it stays bit-exact), else `auto`'s choice here."""
  saved = _saved_config(workdir) if cfg.model.attention == "auto" else None
  if saved is not None:
    cfg.model.attention = saved.model.get("attention", "auto")
  cfg.model.attention = attention.resolve(cfg.model.attention, cfg.model.dtype,
                                          cfg.model.position_encoding == "line_bias")


def check_same_model(cfg: ml_collections.ConfigDict, workdir: str, same_task: bool = True) -> None:
  """Raises if WORKDIR holds a run of a differently shaped model (or, `same_task`, another task)."""
  saved = _saved_config(workdir)
  if saved is None:
    return
  defaults = dataclasses.asdict(transformer.ModelConfig(vocab_size=1))  # for configs older than a key
  saved_model = {k: saved.model.get(k, defaults[k]) for k in SHAPE_KEYS}
  diffs = [f"model.{k}={cfg.model[k]!r} but the checkpoint has {saved_model[k]!r}"
           for k in SHAPE_KEYS if saved_model[k] != cfg.model.get(k, defaults[k])]
  if padded_vocab_size(task_vocabulary(saved.task)) != padded_vocab_size(task_vocabulary(cfg.task)):
    diffs.append(f"the vocabulary of task {cfg.task!r} differs from that of {saved.task!r}")
  if same_task and saved.task != cfg.task:
    diffs.append(f"task={cfg.task!r} but the checkpoint was trained on {saved.task!r}")
  if diffs:
    raise errors.InputError(f"{workdir} holds a checkpoint from another config: {'; '.join(diffs)}")


def check_init_from(cfg: ml_collections.ConfigDict) -> None:
  """`train.init_from` must be a training run's workdir; a fine-tuning config (`pauses.pretraining`
  names the pretraining it needs) must start from a run of that pretraining: StdPT or PausePT."""
  wanted, init_from = cfg.pauses.pretraining, cfg.train.init_from
  if wanted and not init_from:
    raise errors.InputError(f"variant {cfg.variant} fine-tunes a {wanted} model: set train.init_from to the "
                            f"workdir of a {wanted} run")
  if not init_from:
    return
  saved = _saved_config(init_from)
  if saved is None:
    raise errors.InputError(f"config key train.init_from={init_from!r} must be the workdir of a training run, "
                            f"and it has no {CONFIG_FILE}")
  got = "PausePT" if saved.pauses.pretrain_fraction else "StdPT"
  if wanted and got != wanted:
    raise errors.InputError(f"train.init_from={init_from!r} is a {got} run but variant {cfg.variant} needs {wanted}")
