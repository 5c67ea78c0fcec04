"""Position ids of each scheme: causal, in range, and written out by hand for the paper's 29 + 57."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchpad import config as config_lib
from scratchpad.model import positions, transformer
from scratchpad.tasks import addition
from scratchpad.tasks.vocabulary import EOS_ID, SYMBOLS
from scratchpad.train import run_config

NEWLINE_ID = SYMBOLS.encode("\n")[0]
ROW = 480  # the padded length of the hypothesis tests' rows: 3 scratchpads of 7-digit operands
LINES = transformer.ModelConfig(vocab_size=48, position_encoding="lines", line_stride=32,
                                line_break_ids=(EOS_ID, NEWLINE_ID))


def _row(texts_and_segments, length: int = 0):
  """A packed training row as the feature converter makes it: bos, input, eos, target, eos; padded
  to `length` (one shape for every hypothesis example: JAX compiles once)."""
  tokens, segment_positions, segments = [], [], []
  for segment, (inputs, targets) in enumerate(texts_and_segments, 1):
    ids = [0] + SYMBOLS.encode(inputs) + [EOS_ID] + SYMBOLS.encode(targets) + [EOS_ID]
    ids = ids[:-1]  # decoder inputs are shifted right: the last eos is only a target
    tokens += ids
    segment_positions += list(range(len(ids)))
    segments += [segment] * len(ids)
  padding = max(length - len(tokens), 0)
  tokens, segment_positions, segments = tokens + [0] * padding, segment_positions + [0] * padding, segments + [0] * padding
  return (jnp.asarray([tokens], jnp.int32), jnp.asarray([segment_positions], jnp.int32),
          jnp.asarray([segments], jnp.int32))


def test_lines_ids_of_the_papers_example_by_hand():
  """29 + 57: line * 32 + place, a line ending after the input's eos or a newline."""
  tokens, segment_positions, _ = _row([(addition.addition_input(29, 57), addition.scratchpad_target(29, 57))])
  ids = np.asarray(positions.row_ids(LINES, tokens, segment_positions))[0].tolist()
  by_hand = [
      0, 1, 2, 3, 4, 5, 6,                       # bos 2 9 + 5 7 eos
      32, 33,                                    # <scratch> \n
      64, 65, 66, 67, 68, 69, 70, 71, 72,        # 2 9 + 5 7 , C: 0 \n
      96, 97, 98, 99, 100, 101, 102, 103,        # 2 + 5 , 6 C: 1 \n
      128, 129, 130, 131, 132, 133,              # , 8 6 C: 0 \n
      160, 161, 162, 163,                        # 0 8 6 \n
      192, 193,                                  # </scratch> \n
      224, 225,                                  # 8 6
  ]
  assert ids == by_hand


def test_lines_align_the_fields_of_consecutive_lines():
  """Each field of a step line sits at a fixed distance from where it was in the line above:
  a's digits one stride back, b's digits and the result one stride less one."""
  text = addition.scratchpad_target(4567, 891)
  tokens, segment_positions, _ = _row([(addition.addition_input(4567, 891), text)])
  ids = np.asarray(positions.row_ids(LINES, tokens, segment_positions))[0]
  symbols = [SYMBOLS.decode([t]) for t in np.asarray(tokens)[0]]
  plus = [int(i) for i, s in zip(ids, symbols) if s == "+"]
  comma = [int(i) for i, s in zip(ids, symbols) if s == ","]
  assert np.diff(plus[1:]).tolist() == [31] * (len(plus) - 2)  # the input's + has the bos before it
  assert np.diff(comma).tolist() == [30] * (len(comma) - 1)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 10 ** 6)), min_size=1, max_size=3),
       st.integers(0, 40), st.sampled_from(positions.SCHEMES))
def test_an_id_never_depends_on_later_tokens(pairs, cut, scheme):
  cfg = transformer.ModelConfig(vocab_size=48, position_encoding=scheme, line_stride=32,
                                line_break_ids=LINES.line_break_ids)
  tokens, segment_positions, segments = _row([(addition.addition_input(a, b), addition.scratchpad_target(a, b))
                                              for a, b in pairs], ROW)
  cut = min(cut, int(np.sum(np.asarray(segments) != 0)) - 1)
  changed = tokens.at[:, cut:].set(NEWLINE_ID)  # every later token a line break
  key = jax.random.key(0)
  ids, changed_ids = (positions.training_ids(cfg, t, segment_positions, segments, key) for t in (tokens, changed))
  np.testing.assert_array_equal(np.asarray(ids)[:, :cut], np.asarray(changed_ids)[:, :cut])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 60), min_size=1, max_size=4), st.integers(0, 2 ** 16))
def test_randomized_ids_are_sorted_distinct_and_in_range_per_segment(lengths, seed):
  padding = 256 - sum(lengths)  # one shape for every example: JAX compiles once (a row no longer than the range)
  segments = np.concatenate([np.full(n, s + 1) for s, n in enumerate(lengths)] + [np.zeros(padding, int)])
  segment_positions = np.concatenate([np.arange(n) for n in lengths] + [np.zeros(padding, int)])
  ids = np.asarray(positions.randomized(jax.random.key(seed), jnp.asarray([segment_positions]),
                                        jnp.asarray([segments]), 256))[0]
  for s in range(1, len(lengths) + 1):
    seg = ids[segments == s]
    assert np.all(np.diff(seg) > 0) and seg.min() >= 0 and seg.max() < 256


def test_randomized_ids_spread_over_the_range():
  """Drawn per segment, not per row: a short segment's ids still reach far into the range."""
  segments = jnp.asarray([[1] * 10 + [2] * 10])
  segment_positions = jnp.asarray([list(range(10)) * 2])
  highest = [int(positions.randomized(jax.random.key(k), segment_positions, segments, 1000)[0, 9])
             for k in range(20)]
  assert np.mean(highest) > 700


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 10 ** 6)), min_size=1, max_size=3),
       st.integers(1, 4), st.integers(1, 3), st.integers(0, 2 ** 16))
def test_random_lines_number_lines_and_places_by_gaps(pairs, max_gap, place_gap, seed):
  """Training: each segment's lines numbered from 0 by gaps in 1..max_line_gap, places by gaps in
  1..max_place_gap from 0, the same place the same id on every line (exactly `lines`' places when
  the gap is 1); evaluation: exactly the ids of `lines`."""
  stride = 128
  cfg = transformer.ModelConfig(vocab_size=48, position_encoding="random_lines", line_stride=stride,
                                line_break_ids=LINES.line_break_ids, max_line_gap=max_gap, max_place_gap=place_gap)
  lines_cfg = transformer.ModelConfig(vocab_size=48, position_encoding="lines", line_stride=stride,
                                      line_break_ids=LINES.line_break_ids)
  tokens, segment_positions, segments = _row([(addition.addition_input(a, b), addition.scratchpad_target(a, b))
                                              for a, b in pairs], ROW)
  real = np.asarray(segments)[0] != 0
  lines = np.asarray(positions.row_ids(lines_cfg, tokens, segment_positions))[0][real]
  drawn = np.asarray(positions.training_ids(cfg, tokens, segment_positions, segments, jax.random.key(seed)))[0][real]
  place, drawn_place = lines % stride, drawn % stride
  by_place = {p: set(drawn_place[place == p]) for p in set(place)}
  assert all(len(ids) == 1 for ids in by_place.values()), "a place has one id on every line"
  spread = np.diff([by_place[p].pop() for p in sorted(by_place)])
  assert np.all(spread >= 1) and np.all(spread <= place_gap) and drawn_place[place == 0][0] == 0
  if place_gap == 1:
    np.testing.assert_array_equal(drawn_place, place)
  segments_real = np.asarray(segments)[0][real]
  for s in range(1, len(pairs) + 1):
    line_numbers = np.unique(drawn[segments_real == s] // stride)
    gaps = np.diff(line_numbers)
    assert line_numbers[0] == 0 and gaps.min() >= 1 and gaps.max() <= max_gap
    assert len(line_numbers) == len(np.unique(lines[segments_real == s] // stride))
  np.testing.assert_array_equal(np.asarray(positions.row_ids(cfg, tokens, segment_positions))[0][real], lines)


@pytest.mark.parametrize("scheme", positions.SCHEMES)
def test_decoder_state_gives_the_ids_of_the_whole_row(scheme):
  """Carrying (line, place) token by token gives what `row_ids` gives the whole row."""
  cfg = transformer.ModelConfig(vocab_size=48, position_encoding=scheme, line_stride=32,
                                line_break_ids=LINES.line_break_ids)
  tokens, segment_positions, _ = _row([(addition.addition_input(708, 95), addition.scratchpad_target(708, 95))])
  whole = np.asarray(positions.row_ids(cfg, tokens, segment_positions))[0]
  prompt = 6  # bos and the 5 input tokens ... before the input's eos
  line, place = positions.next_state(cfg, tokens[:, :prompt], segment_positions[:, :prompt])
  stepped = []
  for t in range(prompt, tokens.shape[1]):
    stepped.append(int(positions.state_id(cfg, line, place)[0]))
    line, place = positions.step_state(cfg, tokens[:, t], line, place)
  assert stepped == whole[prompt:].tolist()


@pytest.mark.parametrize("scheme", positions.LINE_SCHEMES)
def test_a_line_schemes_model_ends_lines_at_its_vocabularys_newline_and_eos(scheme):
  from conftest import ROOT
  from scratchpad.tasks.vocabulary import VOCABULARY
  for vocab, newline_id in (("symbols", NEWLINE_ID), ("bytes", VOCABULARY.encode("\n")[0])):
    cfg = config_lib.load_config_file(f"{ROOT / 'configs' / 'addition.py'}:short,{vocab}")
    cfg.model.position_encoding = scheme
    assert run_config.model_config(cfg).line_break_ids == (EOS_ID, newline_id)
  cfg.model.position_encoding = "rope"
  assert run_config.model_config(cfg).line_break_ids == ()
