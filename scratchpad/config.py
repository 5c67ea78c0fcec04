"""What a run's ml_collections config means, and the checks that guard a workdir."""

from __future__ import annotations

import json
import os

import ml_collections

from scratchpad.model.transformer import ModelConfig
from scratchpad.tasks import VOCABULARY

CONFIG_FILE = "config.json"
# The config fields that fix the shapes of the parameters in a checkpoint.
SHAPE_KEYS = ("num_layers", "d_model", "num_heads", "mlp_dim", "max_length", "position_encoding")


def padded_vocab_size(multiple: int = 8) -> int:
  return -(-VOCABULARY.vocab_size // multiple) * multiple


def model_config(cfg: ml_collections.ConfigDict) -> ModelConfig:
  return ModelConfig(vocab_size=padded_vocab_size(), **cfg.model.to_dict())


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


def check_same_model(cfg: ml_collections.ConfigDict, workdir: str) -> None:
  """Raises if WORKDIR holds a run of a differently shaped model or another task."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return
  saved = load_config(workdir)
  diffs = [f"model.{k}={cfg.model[k]!r} but the checkpoint has {saved.model[k]!r}"
           for k in SHAPE_KEYS if saved.model.get(k) != cfg.model[k]]
  if diffs:
    raise ValueError(f"{workdir} holds a checkpoint of a different model: {'; '.join(diffs)}")
