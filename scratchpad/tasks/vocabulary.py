"""The tasks' vocabularies, as seqio Vocabularies sharing six reserved special ids.

`ByteVocabulary`, every task's default: every byte b maps to id b + NUM_SPECIAL,
so every digit, space and symbol of the scratchpad formats is its own token.
`<pause>` (Goyal et al. 2023) has its own id and embedding row from the start.
`<scratch>` and `</scratch>` get one id each so the scratchpad tags cost one
position, not ten.

`SymbolVocabulary`, opt-in (the arithmetic tasks' `_symbols` variants): the
paper's one token per digit, each space absorbed into the token after it as
SentencePiece does, so `2 9 + 5 7` is five tokens, not nine bytes.
"""

from __future__ import annotations

import re

import seqio
import tensorflow as tf

from scratchpad import errors

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


class _SpecialIds(seqio.Vocabulary):
  """The six special ids every vocabulary here shares; vocabularies of one class are equal."""

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

  def __eq__(self, other) -> bool:
    return type(other) is type(self)

  def __hash__(self) -> int:
    return hash(type(self))


class ByteVocabulary(_SpecialIds):
  """UTF-8 bytes plus pad, eos, unk, `<pause>`, `<scratch>`, `</scratch>`.

  Encoding replaces each special string by a control byte equal to its id,
  then shifts every other byte by NUM_SPECIAL. Raw control bytes 0..5 therefore
  never reach the model as bytes; `check_text` rejects them.
  """

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


_ID_TO_STRING = {PAD_ID: "", EOS_ID: "", UNK_ID: "", **{i: s for s, i in SPECIAL_STRINGS.items()}}


class SymbolVocabulary(_SpecialIds):
  """One token per space-separated symbol of the addition and polynomial texts.

  A text is split into words at spaces and newlines; a newline is a token. A word
  of WORDS (or a special string) is one token; any other word is spelled in
  CHARACTERS, its first character marked as starting a word (`▁-`, `7`, `*`, `x`
  for `-7*x`), as SentencePiece marks the space before it. Decoding puts one space
  before each word but a line's first, so a text round-trips when its words are
  single-spaced, its lines have no spaces at their ends and it uses only these
  symbols; another character encodes as unk.
  """

  CHARACTERS = "0123456789+-*=,:x"
  WORDS = ("C:", "Evaluate", "at", "total:")
  NEWLINE_ID = NUM_SPECIAL

  def __init__(self):
    super().__init__()
    pieces = ["\n", *("▁" + c for c in self.CHARACTERS), *self.CHARACTERS, *("▁" + w for w in self.WORDS)]
    self.pieces = [_ID_TO_STRING[i] for i in range(NUM_SPECIAL)] + pieces
    self.pieces[PAUSE_ID], self.pieces[SCRATCH_OPEN_ID], self.pieces[SCRATCH_CLOSE_ID] = (
        "▁" + s for s in (PAUSE, SCRATCH_OPEN, SCRATCH_CLOSE))
    self._piece_ids = {p: i for i, p in enumerate(self.pieces) if p}
    self._word_ids = {p[1:]: i for p, i in self._piece_ids.items() if p.startswith("▁") and len(p) > 2}
    self._word_ids["\n"] = self.NEWLINE_ID

  @property
  def _base_vocab_size(self) -> int:
    return len(self.pieces)

  @staticmethod
  def _words(s: str) -> list[str]:
    return [w for w in s.replace("\n", " \n ").split(" ") if w]

  def _encode(self, s: str) -> list[int]:
    ids = []
    for word in self._words(s):
      if word in self._word_ids:
        ids.append(self._word_ids[word])
      else:
        ids.extend(self._piece_ids.get(("▁" if i == 0 else "") + c, UNK_ID) for i, c in enumerate(word))
    return ids

  @staticmethod
  def _spaced(joined: str) -> str:
    """Pieces joined, `▁` read as a space: no space starts the text or a line."""
    return joined.replace("▁", " ").replace("\n ", "\n").removeprefix(" ")

  def _decode(self, ids) -> str:
    return self._spaced("".join(self.pieces[int(i)] if 0 <= int(i) < len(self.pieces) else "" for i in ids))

  def _encode_tf(self, s: tf.Tensor) -> tf.Tensor:
    words = tf.strings.split(tf.strings.regex_replace(s, "\n", " \n "), " ")
    words = tf.boolean_mask(words, tf.strings.length(words) > 0)
    word_ids = _lookup(self._word_ids, words, -1)
    chars = tf.strings.unicode_split(words, "UTF-8")  # ragged: one row per word
    flat, row = chars.flat_values, chars.value_rowids()
    first = tf.equal(tf.range(tf.size(flat, out_type=tf.int64)), tf.gather(chars.row_starts(), row))
    char_ids = _lookup(self._piece_ids, tf.where(first, "▁" + flat, flat), UNK_ID)
    is_word = tf.gather(word_ids, row) >= 0
    ids = tf.where(is_word, tf.gather(word_ids, row), char_ids)
    return tf.boolean_mask(ids, ~is_word | first)  # a whole word keeps one id

  def _decode_tf(self, ids: tf.Tensor) -> tf.Tensor:
    joined = tf.strings.reduce_join(tf.gather(tf.constant(self.pieces), ids), axis=-1)
    joined = tf.strings.regex_replace(tf.strings.regex_replace(joined, "▁", " "), "\n ", "\n")
    return tf.strings.regex_replace(joined, "^ ", "")


def _lookup(table: dict[str, int], keys: tf.Tensor, default: int) -> tf.Tensor:
  init = tf.lookup.KeyValueTensorInitializer(list(table), list(table.values()), tf.string, tf.int32)
  return tf.lookup.StaticHashTable(init, default).lookup(keys)


def check_text(text: str, alphabet: str | None, what: str = "input") -> None:
  """Raises ValueError naming the characters of `text` outside `alphabet` (None: any text)."""
  if alphabet is None:
    return
  bad = sorted(set(text) - set(alphabet))
  if bad:
    raise errors.InputError(f"{what} {text!r} has characters this task never uses: "
                            f"{''.join(bad)!r} (allowed: {alphabet!r})")


VOCABULARY = ByteVocabulary()
SYMBOLS = SymbolVocabulary()


def token_length(text: str, vocabulary: seqio.Vocabulary = VOCABULARY) -> int:
  """Tokens of `text` as a feature of a task: its ids and the eos after them."""
  return len(vocabulary.encode(text)) + 1


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
    raise errors.InputError(f"SentencePiece tasks need a model: set ${SPM_ENV} to a .model file "
                            "(pad 0, eos 1, unk 2)")
