import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings, strategies as st

from scratchpad.tasks import VOCABULARY
from scratchpad.tasks.vocabulary import NUM_SPECIAL, PAUSE_ID, SCRATCH_CLOSE_ID, SCRATCH_OPEN_ID, check_text

text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FFF), max_size=40)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(text, st.sampled_from(["<pause>", "<scratch>", "</scratch>"])), max_size=6))
def test_round_trip_python_and_tf_agree(parts):
  s = "".join(parts)
  ids = VOCABULARY.encode(s)
  assert VOCABULARY.decode(ids) == s
  assert VOCABULARY.encode_tf(tf.constant(s)).numpy().tolist() == ids
  assert VOCABULARY.decode_tf(tf.constant(ids, tf.int32)).numpy().decode() == s


def test_special_tokens_are_single_ids():
  assert VOCABULARY.encode("<pause>") == [PAUSE_ID]
  assert VOCABULARY.encode("<scratch>\n1</scratch>") == [SCRATCH_OPEN_ID, ord("\n") + NUM_SPECIAL,
                                                         ord("1") + NUM_SPECIAL, SCRATCH_CLOSE_ID]
  assert VOCABULARY.eos_id == 1 and VOCABULARY.pad_id == 0
  assert VOCABULARY.vocab_size == NUM_SPECIAL + 256


def test_check_text_names_the_bad_characters():
  check_text("2 9 + 5 7", "0123456789 +")
  with pytest.raises(ValueError, match="'x'"):
    check_text("2 x + 5", "0123456789 +")


# --- The opt-in one-token-per-symbol vocabulary of the arithmetic tasks.

from scratchpad.tasks import addition, polynomial  # noqa: E402
from scratchpad.tasks.vocabulary import SYMBOLS, UNK_ID  # noqa: E402


def _symbols_round_trip(text):
  ids = SYMBOLS.encode(text)
  assert UNK_ID not in ids, text
  assert SYMBOLS.decode(ids) == text
  assert SYMBOLS.encode_tf(tf.constant(text)).numpy().tolist() == ids
  assert SYMBOLS.decode_tf(tf.constant(ids, tf.int32)).numpy().decode() == text
  return ids


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10 ** 12), st.integers(0, 10 ** 12))
def test_symbols_round_trip_every_addition_text(a, b):
  for text in (addition.addition_input(a, b), addition.direct_target(a, b), addition.scratchpad_target(a, b)):
    _symbols_round_trip(text)
  # One token per digit, sign and line break: the byte count without the spaces.
  text = addition.scratchpad_target(a, b)
  assert len(SYMBOLS.encode(text)) == len(text.replace(" ", "")
                                          .replace("<scratch>", "<").replace("</scratch>", "<").replace("C:", "C"))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2 ** 32))
def test_symbols_round_trip_every_polynomial_text(seed):
  p = polynomial.sample(np.random.default_rng(seed))
  for text in (polynomial.polynomial_input(p), polynomial.direct_target(p), polynomial.scratchpad_target(p)):
    _symbols_round_trip(text)


def test_symbols_of_the_papers_example():
  ids = _symbols_round_trip(addition.scratchpad_target(29, 57))
  pieces = [SYMBOLS.pieces[i] for i in ids]
  assert pieces[:12] == ["▁<scratch>", "\n", "▁2", "▁9", "▁+", "▁5", "▁7", "▁,", "▁C:", "▁0", "\n", "▁2"]
  assert [SYMBOLS.pieces[i] for i in SYMBOLS.encode("-7*x**2: -7")] == ["▁-", "7", "*", "x", "*", "*", "2", ":",
                                                                         "▁-", "7"]
  assert SYMBOLS.encode("2 y") == [SYMBOLS.encode("2")[0], UNK_ID]  # outside the symbols: unk
  assert SYMBOLS.eos_id == 1 and SYMBOLS.pause_id == PAUSE_ID and SYMBOLS.vocab_size == 45
