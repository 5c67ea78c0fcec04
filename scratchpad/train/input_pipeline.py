"""Global training batches from per-host seqio shards (T5X style).

Each JAX process reads shard `process_index` of `process_count` through seqio,
packs with the decoder-only feature converter (loss on targets only) and
batches its part of the global batch; `jax.make_array_from_process_local_data`
joins the parts into one global array sharded over the batch axes. Resuming
at step n skips the first n batches of the same seeded pipeline, so a resumed
run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

from typing import Iterator

import jax
import numpy as np
import seqio

import scratchpad.tasks.registry  # noqa: F401  (registers the Tasks)

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
      raise ValueError(f"task {task_info.name} is too big to measure: set data.targets_length "
                       "(and data.inputs_length if it has inputs)")
    return
  longest = task_info.max_lengths[split]
  for feature, length in {"inputs": data_cfg.inputs_length, "targets": data_cfg.targets_length}.items():
    if length == 0:
      data_cfg[f"{feature}_length"] = longest[feature]
    elif longest[feature] > length:
      raise ValueError(f"config key data.{feature}_length={length} is shorter than the longest {feature} of "
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
  return ds.batch(local_batch_size, drop_remainder=True).skip(start_step).prefetch(2)


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


def global_batches(task: str, data_cfg, global_batch_size: int, seed: int, sharding,
                   start_step: int = 0, split: str = "train") -> Iterator[dict[str, jax.Array]]:
  if global_batch_size % jax.process_count():
    raise ValueError(f"train.batch_size={global_batch_size} is not divisible by {jax.process_count()} processes")
  local = global_batch_size // jax.process_count()
  pause_id = getattr(seqio.get_mixture_or_task(task).output_features["targets"].vocabulary, "pause_id", None)
  for batch in host_dataset(task, data_cfg, local, seed, start_step, split).as_numpy_iterator():
    yield {k: jax.make_array_from_process_local_data(sharding, v)
           for k, v in with_packing_features(batch, pause_id).items()}
