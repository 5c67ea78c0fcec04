"""Pause tokens (Goyal et al. 2023) as seqio preprocessors.

`insert_pauses` is pause-pretraining's: `<pause>` ids at uniformly random
positions, `fraction` of the example's length of them, then the sequence is
trimmed back to its length (for the paper's full 2048-token sequences that is
10% of the sequence length). `append_pauses` is pause-finetuning's and
inference's: M pauses after the input (or before it, the paper's ablation).

Both act on token ids, so they run after `seqio.preprocessors.tokenize` and
after the eos is appended: a fine-tuning input reads `input eos <pause>*M`, and
the answer is decoded from after the last pause. The loss never asks the
model to predict a pause (`input_pipeline.with_packing_features`).
"""

from __future__ import annotations

import seqio
import tensorflow as tf


def insert_ids(tokens: tf.Tensor, pause_id: int, fraction: float, seed: tf.Tensor) -> tf.Tensor:
  """`tokens` with round(fraction * n) pauses at uniform random slots, trimmed back to n."""
  n = tf.size(tokens)
  k = tf.cast(tf.math.round(fraction * tf.cast(n, tf.float32)), tf.int32)
  total = n + k
  # The k slots with the smallest random scores hold pauses: a uniform choice of k of n + k.
  order = tf.argsort(tf.random.stateless_uniform([total], seed))
  is_pause = tf.scatter_nd(order[:k, None], tf.ones([k], tf.bool), [total])
  source = tf.maximum(tf.cumsum(tf.cast(~is_pause, tf.int32)) - 1, 0)  # which token fills a non-pause slot
  padded = tf.concat([tokens, tf.zeros([1], tokens.dtype)], 0)  # gather needs a row even when n == 0
  merged = tf.where(is_pause, tf.cast(pause_id, tokens.dtype), tf.gather(padded, source))
  return merged[:n]


def _pause_id(pause_id: int | None, output_features) -> int:
  # Read from the vocabulary when the data is built: a SentencePiece model loads only then.
  return output_features["targets"].vocabulary.pause_id if pause_id is None else pause_id


def insert_pauses(dataset: tf.data.Dataset, output_features=None, *, fraction: float = 0.1,
                  pause_id: int | None = None, feature: str = "targets") -> tf.data.Dataset:
  """Pause-pretraining: inserts pauses at random into `feature` (seeded by the pipeline's seed)."""
  pause_id = _pause_id(pause_id, output_features)

  @seqio.map_over_dataset(num_seeds=1)
  def insert(features, seed):
    features = dict(features)
    features[feature] = insert_ids(features[feature], pause_id, fraction, seed)
    return features

  return insert(dataset)


def append_pauses(dataset: tf.data.Dataset, output_features=None, *, num_pauses: int, prepend: bool = False,
                  pause_id: int | None = None, feature: str = "inputs") -> tf.data.Dataset:
  """Pause-finetuning and inference: M pauses after (or, `prepend`, before) `feature`."""
  pause_id = _pause_id(pause_id, output_features)

  @seqio.map_over_dataset
  def append(features):
    features = dict(features)
    tokens = features[feature]
    pauses = tf.fill([num_pauses], tf.cast(pause_id, tokens.dtype))
    features[feature] = tf.concat([pauses, tokens] if prepend else [tokens, pauses], axis=0)
    return features

  return append(dataset)
