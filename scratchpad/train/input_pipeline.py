"""Global training batches from per-host seqio shards (T5X style).

Each JAX process reads shard `process_index` of `process_count` through seqio,
packs with the decoder-only feature converter (loss on targets only) and
batches its part of the global batch; `jax.make_array_from_process_local_data`
joins the parts into one global array sharded over the batch axes. Each
process saves its tf.data iterator with every checkpoint (WORKDIR/data_state,
as T5X does), so a run resumed at step n restores the pipeline's position and
reads none of the n batches again. Where there is no saved position (a source
tf.data cannot checkpoint, `from_generator`; a workdir from before this; a crash
between the model's checkpoint and the pipeline's) it skips the first n batches
of the same seeded pipeline instead: slower, the same batches.
"""

from __future__ import annotations

import os
from typing import Iterator

import jax
import numpy as np
import seqio
import tensorflow as tf

from scratchpad import errors
from scratchpad import files
from scratchpad.tasks import task_vocabulary

MODEL_FEATURES = ("decoder_input_tokens", "decoder_target_tokens", "decoder_loss_weights",
                  "decoder_segment_ids", "decoder_positions")


def feature_lengths(data_cfg) -> dict[str, int]:
  """Task feature lengths; a language-model corpus (inputs_length 0) has targets only."""
  lengths = {"inputs": data_cfg.inputs_length, "targets": data_cfg.targets_length}
  return {k: n for k, n in lengths.items() if n or k == "targets"}


def resolve_lengths(task_info, data_cfg, split: str = "train") -> None:
  """Sets lengths left at 0 to the task's longest example; rejects lengths that would trim.

  A config whose lengths would cut the task's examples is an error, not a silent cut.
  Corpora too big to measure (C4, the downstream datasets) need lengths in the
  config, and their longer examples are trimmed.
  """
  if task_info.max_lengths is None:
    if not data_cfg.targets_length:
      raise errors.InputError(f"task {task_info.name} is too big to measure: set data.targets_length "
                              "(and data.inputs_length if it has inputs)")
    return
  longest = task_info.max_lengths[split]
  for feature, length in {"inputs": data_cfg.inputs_length, "targets": data_cfg.targets_length}.items():
    if length == 0:
      data_cfg[f"{feature}_length"] = longest[feature]
    elif longest[feature] > length:
      raise errors.InputError(f"config key data.{feature}_length={length} is shorter than the longest {feature} of "
                              f"task {task_info.name} split {split}: it must be >= {longest[feature]}, "
                              "or 0 for exactly that")


def host_dataset(task: str, data_cfg, local_batch_size: int, seed: int, start_step: int = 0,
                 split: str = "train", shard: tuple[int, int] | None = None):
  """This process's batches: shard `(index, count)`, by default (process_index, process_count)."""
  index, count = shard or (jax.process_index(), jax.process_count())
  ds = seqio.get_dataset(
      task, feature_lengths(data_cfg),
      seqio.DecoderFeatureConverter(pack=data_cfg.pack, loss_on_targets_only=True),
      dataset_split=split, shuffle=True, num_epochs=None, seed=seed,
      shard_info=seqio.ShardInfo(index, count), verbose=False)
  ds = ds.batch(local_batch_size, drop_remainder=True)
  ds = (ds.skip(start_step) if start_step else ds).prefetch(2)
  # The pipeline's only external state is its vocabularies' lookup tables, which never change: an
  # iterator that leaves them out of its checkpoint restores exactly (Batches.save).
  options = tf.data.Options()
  options.experimental_external_state_policy = tf.data.experimental.ExternalStatePolicy.IGNORE
  return ds.with_options(options)


def with_packing_features(batch: dict[str, np.ndarray], pause_id: int | None = None) -> dict[str, np.ndarray]:
  """Unpacked batches lack segments and positions: one segment per row.

  The model is never asked to predict `<pause>` (Goyal et al. 2023): the loss
  weight is zero wherever the next token is one.
  """
  if "decoder_segment_ids" not in batch:
    tokens = batch["decoder_target_tokens"]
    batch["decoder_segment_ids"] = (tokens != 0).astype(np.int32)
    batch["decoder_positions"] = np.broadcast_to(np.arange(tokens.shape[1], dtype=np.int32), tokens.shape)
  if pause_id is not None:
    batch["decoder_loss_weights"] = batch["decoder_loss_weights"] * (batch["decoder_target_tokens"] != pause_id)
  return {k: batch[k] for k in MODEL_FEATURES}


DATA_STATE_DIR = "data_state"  # in the workdir: STEP/process_I_of_N, each process's tf.data iterator


def data_state_path(workdir: str, step: int) -> str:
  return os.path.join(workdir, DATA_STATE_DIR, str(step), f"process_{jax.process_index()}_of_{jax.process_count()}")


class Batches:
  """Global training batches, whose position in the pipeline can be saved and restored."""

  def __init__(self, task: str, data_cfg, global_batch_size: int, seed: int, sharding, split: str = "train",
               workdir: str | None = None, start_step: int = 0):
    if global_batch_size % jax.process_count():
      raise errors.InputError(f"train.batch_size={global_batch_size} is not divisible by "
                              f"{jax.process_count()} processes")
    self.sharding, self.saveable = sharding, True
    self.pause_id = getattr(task_vocabulary(task), "pause_id", None)
    local = global_batch_size // jax.process_count()
    saved = self._saved_state(workdir, start_step) if workdir and start_step else None
    self.resumed = "restored" if saved else ("replayed" if start_step else "new")
    self._iterator = iter(host_dataset(task, data_cfg, local, seed, 0 if saved else start_step, split))
    if saved:
      self._checkpoint().read(saved).assert_consumed()

  @staticmethod
  def _saved_state(workdir: str, step: int) -> str | None:
    """The iterator saved at `step` by this process, if any; refuses one saved by another
    number of processes (their shards differ: the data would not be the run's)."""
    path = data_state_path(workdir, step)
    if files.exists(os.path.join(path, "iterator.index")):
      return os.path.join(path, "iterator")
    others = files.listdir(os.path.dirname(path))
    if others:
      raise errors.InputError(f"{workdir}: the data position of step {step} was saved by "
                              f"{others[0].rsplit('_of_', 1)[-1]} processes, and this run has "
                              f"{jax.process_count()}: resume with as many")
    return None

  def _checkpoint(self):
    return tf.train.Checkpoint(iterator=self._iterator)

  def __iter__(self):
    return self

  def __next__(self) -> dict[str, jax.Array]:
    batch = {k: v.numpy() for k, v in next(self._iterator).items()}
    return {k: jax.make_array_from_process_local_data(self.sharding, v)
            for k, v in with_packing_features(batch, self.pause_id).items()}

  def save(self, workdir: str, step: int, keep_steps) -> None:
    """Saves this process's position after `step` batches, and drops the positions of steps
    not in `keep_steps` (the checkpoints kept). tf.train.Checkpoint writes its index last, so
    a position counts once its `iterator.index` exists (no directory renames: gs:// has none)."""
    if not self.saveable:
      return
    path = data_state_path(workdir, step)
    files.remove_tree(path)  # a position left half-written
    try:
      self._checkpoint().write(os.path.join(path, "iterator"))
    except Exception as e:  # noqa: BLE001 - tf.data cannot save some sources (from_generator)
      self.saveable = False
      print(f"the data position is not saved ({type(e).__name__}: {str(e).splitlines()[0][:120]}); "
            "a resumed run replays its batches instead", flush=True)
      files.remove_tree(path)
      _remove_if_empty(os.path.dirname(path))
      return
    root = os.path.join(workdir, DATA_STATE_DIR)
    for name in files.listdir(root):
      if name.isdigit() and int(name) not in set(keep_steps) | {step}:
        files.remove_tree(os.path.join(root, name, os.path.basename(path)))
        _remove_if_empty(os.path.join(root, name))  # once every process has dropped its own


def _remove_if_empty(directory: str) -> None:
  """Removes `directory` once it is empty (another process's position may still be in it)."""
  if files.isdir(directory) and not files.listdir(directory):
    files.remove_tree(directory)


def global_batches(task: str, data_cfg, global_batch_size: int, seed: int, sharding,
                   start_step: int = 0, split: str = "train") -> Iterator[dict[str, jax.Array]]:
  """Global batches from the start, or from `start_step` by skipping (no saved position)."""
  return Batches(task, data_cfg, global_batch_size, seed, sharding, split, start_step=start_step)
