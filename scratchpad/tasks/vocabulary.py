"""A byte vocabulary with reserved special ids, as a seqio Vocabulary.

Ids 0..5 are special; every byte b maps to id b + NUM_SPECIAL, so every digit,
space and symbol of the scratchpad formats is its own token. `<pause>` (Goyal
et al. 2023) has its own id and embedding row from the start. `<scratch>` and
`</scratch>` get one id each so the scratchpad tags cost one position, not ten.
"""

from __future__ import annotations

import re

import seqio
import tensorflow as tf

# TensorFlow only feeds data (seqio, tf.data): the accelerators belong to JAX.
tf.config.set_visible_devices([], "GPU")

PAD_ID, EOS_ID, UNK_ID, PAUSE_ID, SCRATCH_OPEN_ID, SCRATCH_CLOSE_ID = range(6)
NUM_SPECIAL = 6
PAUSE = "<pause>"
SCRATCH_OPEN = "<scratch>"
SCRATCH_CLOSE = "</scratch>"
# Special strings that encode to one id; pad, eos and unk have no text form.
SPECIAL_STRINGS = {PAUSE: PAUSE_ID, SCRATCH_OPEN: SCRATCH_OPEN_ID, SCRATCH_CLOSE: SCRATCH_CLOSE_ID}
_SPECIAL_RE = re.compile("|".join(re.escape(s) for s in SPECIAL_STRINGS))


class ByteVocabulary(seqio.Vocabulary):
  """UTF-8 bytes plus pad, eos, unk, `<pause>`, `<scratch>`, `</scratch>`.

  Encoding replaces each special string by a control byte equal to its id,
  then shifts every other byte by NUM_SPECIAL. Raw control bytes 0..5 therefore
  never reach the model as bytes; `check_text` rejects them.
  """

  def __init__(self):
    super().__init__(extra_ids=0)

  @property
  def eos_id(self) -> int:
    return EOS_ID

  @property
  def unk_id(self) -> int:
    return UNK_ID

  @property
  def pause_id(self) -> int:
    return PAUSE_ID

  @property
  def _base_vocab_size(self) -> int:
    return NUM_SPECIAL + 256

  def _encode(self, s: str) -> list[int]:
    raw = _SPECIAL_RE.sub(lambda m: chr(SPECIAL_STRINGS[m.group(0)]), s)
    return [b if b < NUM_SPECIAL else b + NUM_SPECIAL for b in raw.encode("utf-8")]

  def _decode(self, ids) -> str:
    out = bytearray()
    for i in ids:
      i = int(i)
      if i >= NUM_SPECIAL:
        out.append(i - NUM_SPECIAL)
      else:
        out.extend(_ID_TO_STRING[i].encode("utf-8"))
    return out.decode("utf-8", errors="replace")

  def _encode_tf(self, s: tf.Tensor) -> tf.Tensor:
    for string, i in SPECIAL_STRINGS.items():
      s = tf.strings.regex_replace(s, re.escape(string), chr(i))
    b = tf.cast(tf.io.decode_raw(s, tf.uint8), tf.int32)
    return tf.where(b < NUM_SPECIAL, b, b + NUM_SPECIAL)

  def _decode_tf(self, ids: tf.Tensor) -> tf.Tensor:
    table = tf.constant([_ID_TO_STRING[i] for i in range(NUM_SPECIAL)] +
                        [bytes([b]) for b in range(256)])
    return tf.strings.reduce_join(tf.gather(table, ids), axis=-1)

  def __eq__(self, other) -> bool:
    return isinstance(other, ByteVocabulary)

  def __hash__(self) -> int:
    return hash(type(self))


_ID_TO_STRING = {PAD_ID: "", EOS_ID: "", UNK_ID: "", **{i: s for s, i in SPECIAL_STRINGS.items()}}


def check_text(text: str, alphabet: str | None, what: str = "input") -> None:
  """Raises ValueError naming the characters of `text` outside `alphabet` (None: any text)."""
  if alphabet is None:
    return
  bad = sorted(set(text) - set(alphabet))
  if bad:
    raise ValueError(f"{what} {text!r} has characters this task never uses: "
                     f"{''.join(bad)!r} (allowed: {alphabet!r})")


VOCABULARY = ByteVocabulary()


def token_length(text: str) -> int:
  """Tokens of `text` as a feature of a task: its ids and the eos after them."""
  return len(VOCABULARY.encode(text)) + 1


# Pod runs: a SentencePiece model given by path (pad 0, eos 1, unk 2, as seqio
# expects), with one id after its pieces for `<pause>`.
SPM_ENV = "SCRATCHPAD_SPM"


class PauseSentencePieceVocabulary(seqio.SentencePieceVocabulary):
  """A SentencePiece vocabulary plus `<pause>`: the one extra id after the model's pieces."""

  def __init__(self, path: str):
    super().__init__(path, extra_ids=1)

  @property
  def pause_id(self) -> int:
    return self.vocab_size - 1  # seqio adds the extra id as the last piece


def spm_vocabulary(path: str | None = None) -> PauseSentencePieceVocabulary:
  """The SentencePiece vocabulary at `path` (default: $SCRATCHPAD_SPM), checked to exist when used."""
  import os
  path = path or os.environ.get(SPM_ENV, "")
  return PauseSentencePieceVocabulary(path) if path else _MissingSpm()


class _MissingSpm(PauseSentencePieceVocabulary):
  """Stands in until $SCRATCHPAD_SPM is set; any use says what to set."""

  def __init__(self):
    super().__init__("")

  def _model_context(self):
    raise ValueError(f"SentencePiece tasks need a model: set ${SPM_ENV} to a .model file "
                     "(pad 0, eos 1, unk 2)")
