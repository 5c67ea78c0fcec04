"""Parity, 3SUM and multi-operand addition: the pause study's tasks that need the whole input
before the answer."""

import collections
import itertools

import pytest
import seqio
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchpad.tasks import card_total, direct_tasks, get_task_info, multi_addition, parity, three_sum


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2 ** 16), st.integers(1, 40))
def test_parity_labels_are_the_xor_of_the_bits(seed, count):
  for bits in parity.generate(count, seed):
    assert parity.BITS[0] <= len(bits) <= parity.BITS[1] and set(bits) <= {0, 1}
    assert parity.direct_target(bits) == str(bits.count(1) % 2)
    assert parity.parity_input(bits).split() == [str(b) for b in bits]


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2 ** 16), st.integers(1, 40))
def test_three_sum_labels_say_whether_a_triple_sums_to_zero(seed, count):
  for numbers in three_sum.generate(count, seed):
    brute = any((numbers[i] + numbers[j] + numbers[k]) % 100 == 0
                for i in range(len(numbers)) for j in range(i + 1, len(numbers)) for k in range(j + 1, len(numbers)))
    assert three_sum.direct_target(numbers) == str(int(brute))
    assert [int(x) for x in three_sum.three_sum_input(numbers).split()] == list(numbers)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2 ** 16), st.integers(1, 40))
def test_multi_addition_labels_are_the_sum_of_two_digit_operands(seed, count):
  for operands in multi_addition.generate(count, seed):
    lo, hi = multi_addition.OPERANDS
    assert lo <= len(operands) <= hi and all(10 <= n <= 99 for n in operands)
    text = multi_addition.multi_addition_input(operands)
    assert multi_addition.parse_input(text) == operands
    assert multi_addition.operand_count(text) == len(operands)
    assert int(multi_addition.direct_target(operands).replace(" ", "")) == sum(operands)


def test_multi_addition_written_out():
  assert multi_addition.multi_addition_input((47, 12, 99, 30)) == "4 7 + 1 2 + 9 9 + 3 0"
  assert multi_addition.direct_target((47, 12, 99, 30)) == "1 8 8"


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2 ** 16), st.integers(1, 40))
def test_card_total_labels_are_the_blackjack_value_of_the_hand(seed, count):
  worth = {**{str(n): n for n in range(2, 10)}, "A": 1, "T": 10, "J": 10, "Q": 10, "K": 10}
  for hand in card_total.generate(count, seed):
    text = card_total.card_total_input(hand)
    assert card_total.HAND[0] <= len(hand) <= card_total.HAND[1]
    assert card_total.parse_input(text) == hand
    assert card_total.direct_target(hand) == " ".join(str(sum(worth[c] for c in text.split())))


def test_card_total_written_out_and_bad_hands_refused():
  hand = card_total.parse_input("K 7 A 9 4")
  assert card_total.direct_target(hand) == "3 1"
  for bad in ("K7A94", "K 7 1 9 4", "", "K  7"):
    with pytest.raises(ValueError, match="not a hand of cards"):
      card_total.parse_input(bad)


def test_card_totals_spread_at_every_hand_size():
  """The total is not read from the hand's size: each size has many totals, none of them most of its hands."""
  for n, c in _by_length(card_total.generate(20_000, 0), card_total.total).items():
    assert len(c) >= 3 * n and max(c.values()) < 0.2 * sum(c.values()), n


def _by_length(examples, label):
  counts = collections.defaultdict(collections.Counter)
  for e in examples:
    counts[len(e)][label(e)] += 1
  return counts


def test_the_answer_cannot_be_read_from_the_length():
  """Parity: uniform bits, about half each answer at every length; 3SUM: exactly half, give or take one."""
  for n, c in _by_length(parity.generate(20_000, 0), parity.direct_target).items():
    assert abs(c["1"] / (c["0"] + c["1"]) - 0.5) < 0.06, (n, c)
  for n, c in _by_length(three_sum.generate(2_000, 0), three_sum.direct_target).items():
    assert abs(c["1"] - c["0"]) <= 1, (n, c)


@pytest.mark.parametrize("task", ["parity", "three_sum", "multi_addition", "card_total"])
def test_the_tasks_splits_are_disjoint_and_answers_right(task):
  module = {"parity": parity, "three_sum": three_sum, "multi_addition": multi_addition, "card_total": card_total}[task]
  train, test = (direct_tasks._generated_split(module, s) for s in ("train", "test"))
  assert len(train) == 20_000 and len(test) == 1_000 and not set(train) & set(test)
  examples = [(e["inputs_pretokenized"].decode(), e["targets_pretokenized"].decode())
              for e in seqio.get_mixture_or_task(task).get_dataset(None, split="test", shuffle=False).as_numpy_iterator()]
  assert len(examples) == 1_000
  for text, target in itertools.islice(examples, 200):
    assert module.direct_target(module.parse_input(text)) == target
  assert get_task_info(task).answer_fn(" 1 ") == "1"
