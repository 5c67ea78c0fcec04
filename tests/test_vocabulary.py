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
