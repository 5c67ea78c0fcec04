"""C4 English as seqio Tasks: the pretraining corpus of the pause-token paper.

Goyal et al. pretrain decoder-only models on C4 (English), with and without
pauses, before any fine-tuning. `register()`, run on import, adds two Tasks
over the same documents, with the loss on every token (a decoder-only LM,
`targets` only):

- `c4_std`: standard pretraining. Each document is tokenized, cut into pieces
  of `targets` length minus one, and each piece ends with eos.
- `c4_std_inserted10pct` (`pause_tasks.with_pauses`): pause-pretraining, as in
  the paper (`pauses.insert_pauses`, its pause id read when the data is built).
  The same pieces; k = round(10%) of a piece's length n of `<pause>` ids go
  to uniformly random slots among n + k, and the piece is trimmed back to n.
  It keeps its head in order; pauses that fell in the cut tail go with it,
  so about k * n / (n + k) remain (5.5 of 64, 186 of 2048).

Tokens: the SentencePiece model at $SCRATCHPAD_SPM (pad 0, eos 1, unk 2, as
seqio expects), with `<pause>` the one id after its pieces. The model is read
when the data is first built, not when the Tasks are registered; without
$SCRATCHPAD_SPM that first use raises a ValueError saying what to set.

Data: TFDS `c4/en` (C4_TFDS_NAME), splits train and validation. On a pod,
build it once into a bucket with `tfds build c4/en --data_dir=gs://BUCKET/tfds`
(an Apache Beam job over Common Crawl; TFDS recommends running it on
Dataflow), then point every host at it with TFDS_DATA_DIR=gs://BUCKET/tfds or
`register(data_dir=...)`. TFDS reads an already prepared copy of another
version (T5's `c4/en:3.0.1`) from its files: `register(tfds_name="c4/en:3.0.1")`.
"""

from __future__ import annotations

import functools

import seqio
import tensorflow as tf

from scratchpad.tasks.pause_tasks import PRETRAIN_FRACTION, with_pauses
from scratchpad.tasks.registration import add_task, TaskInfo
from scratchpad.tasks.vocabulary import SPM_ENV, spm_vocabulary

# The version this TFDS's C4 code builds; older prepared versions load from their files.
C4_TFDS_NAME = "c4/en:3.1.0"
C4_SPLITS = ("train", "validation")


def split_tokens(dataset: tf.data.Dataset, sequence_length: dict[str, int] | None,
                 output_features: dict[str, seqio.Feature], feature: str = "targets") -> tf.data.Dataset:
  """Cuts each example's `feature` into consecutive pieces that fit `sequence_length[feature]`.

  A piece holds one token fewer when the feature gets an eos, so the eos is
  never trimmed off. Other features are copied into every piece; empty
  documents give no pieces.
  """
  if not sequence_length or not sequence_length.get(feature):
    raise ValueError(f"C4 tasks cut documents to sequence_length[{feature!r}], and got {sequence_length!r}")
  size = sequence_length[feature] - (1 if output_features[feature].add_eos else 0)
  if size < 1:
    raise ValueError(f"sequence_length[{feature!r}] = {sequence_length[feature]} leaves no room for tokens")

  def pieces(features):
    tokens = features[feature]
    n = tf.size(tokens)
    count = (n + size - 1) // size
    # Padded to whole rows of `size`; each row's true length trims the padding off again.
    rows = tf.reshape(tf.pad(tokens, [[0, count * size - n]]), [count, size])
    lengths = tf.minimum(size, n - tf.range(count) * size)
    copied = {k: tf.repeat(v[None], count, axis=0) for k, v in features.items() if k != feature}
    return tf.data.Dataset.from_tensor_slices(({**copied, feature: rows}, lengths))

  def trim(features, length):
    return {**features, feature: features[feature][:length]}

  return dataset.flat_map(pieces).map(trim, num_parallel_calls=tf.data.AUTOTUNE)


def load_vocabulary(dataset: tf.data.Dataset, output_features: dict[str, seqio.Feature]) -> tf.data.Dataset:
  """Loads the `targets` vocabulary before any tf.data function is traced.

  A missing SentencePiece model then fails as its own ValueError, not one
  wrapped in a tokenizer's traceback.
  """
  _ = output_features["targets"].vocabulary.vocab_size
  return dataset


def register(vocabulary: seqio.Vocabulary | None = None, suffix: str = "", tfds_name: str = C4_TFDS_NAME,
             data_dir: str | None = None) -> tuple[str, str]:
  """Registers `c4_std{suffix}` and its pause-pretraining version; names already registered are kept.

  `vocabulary` defaults to the SentencePiece model at $SCRATCHPAD_SPM (read
  lazily); it must have a `pause_id`. `data_dir` defaults to TFDS's own
  (TFDS_DATA_DIR, else ~/tensorflow_datasets). Returns the two names: the pause
  version is `with_pauses(c4_std, PRETRAIN_FRACTION)`.
  """
  vocabulary = vocabulary if vocabulary is not None else spm_vocabulary()
  common = [
      load_vocabulary,
      functools.partial(seqio.preprocessors.rekey, key_map={"targets": "text"}),
      # No `targets_pretokenized`: every piece would carry its whole document's text.
      functools.partial(seqio.preprocessors.tokenize, copy_pretokenized=False),
      split_tokens,
      seqio.preprocessors.append_eos_after_trim,
  ]
  name = f"c4_std{suffix}"
  if name not in seqio.TaskRegistry.names():
    add_task(
        TaskInfo(name, alphabet=None, max_lengths_fn=lambda: None, answer_fn=lambda text: text,
                 description=f"C4 English ({tfds_name}); loss on every token (SentencePiece from ${SPM_ENV})"),
        source=seqio.TfdsDataSource(tfds_name=tfds_name, tfds_data_dir=data_dir, splits=C4_SPLITS),
        preprocessors=common,
        output_features={"targets": seqio.Feature(vocabulary, add_eos=True)},
        metric_fns=[],
        shuffle_buffer_size=10_000,  # pieces of one document arrive together; mix them with others
    )
  # Pauses go in last, over the finished piece (eos included), which keeps its length.
  return name, with_pauses(name, inserted_fraction=PRETRAIN_FRACTION)


register()
