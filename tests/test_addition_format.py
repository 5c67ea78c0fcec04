"""The addition formats: the paper's example byte for byte, and properties of all."""

from hypothesis import given, settings, strategies as st

from scratchpad.tasks import addition

SPEC_29_PLUS_57 = """<scratch>
2 9 + 5 7 , C: 0
2 + 5 , 6 C: 1
, 8 6 C: 0
0 8 6
</scratch>
8 6"""

operands = st.integers(min_value=0, max_value=10**12)


def test_paper_example_byte_for_byte():
  assert addition.addition_input(29, 57) == "2 9 + 5 7"
  assert addition.scratchpad_target(29, 57).encode() == SPEC_29_PLUS_57.encode()
  assert addition.direct_target(29, 57) == "8 6"


def test_unequal_lengths_keep_plus_while_digits_remain():
  lines = addition.scratchpad_lines(123, 45)
  assert lines == ["1 2 3 + 4 5 , C: 0", "1 2 + 4 , 8 C: 0", "1 + , 6 8 C: 0", ", 1 6 8 C: 0", "0 1 6 8"]


@settings(max_examples=300, deadline=None)
@given(operands, operands)
def test_scratchpad_parses_back_into_correct_column_addition(a, b):
  target = addition.scratchpad_target(a, b)
  steps, carry_line, answer = addition.parse_scratchpad(target)
  assert (steps[0].a_digits, steps[0].b_digits, steps[0].result, steps[0].carry) == (str(a), str(b), "", 0)
  for before, after in zip(steps, steps[1:]):
    # Each step takes the last digit of each operand (0 once used up) plus the carry.
    da = int(before.a_digits[-1]) if before.a_digits else 0
    db = int(before.b_digits[-1]) if before.b_digits else 0
    column = da + db + before.carry
    assert after.a_digits == before.a_digits[:-1]
    assert after.b_digits == before.b_digits[:-1]
    assert after.result == str(column % 10) + before.result
    assert after.carry == column // 10
  assert steps[-1].a_digits == steps[-1].b_digits == ""
  assert len(steps) == max(len(str(a)), len(str(b))) + 1
  assert int(carry_line) == a + b and carry_line[0] == str(steps[-1].carry)
  assert answer == addition.direct_target(a, b)
  assert int(addition.final_answer(target).replace(" ", "")) == a + b


@given(operands, operands)
def test_direct_answer_is_the_sum(a, b):
  assert int(addition.direct_target(a, b).replace(" ", "")) == a + b
  assert addition.final_answer(addition.direct_target(a, b)) == addition.direct_target(a, b)


@given(operands, operands)
def test_every_digit_is_its_own_token(a, b):
  from scratchpad.tasks import VOCABULARY
  text = addition.addition_input(a, b)
  assert len(VOCABULARY.encode(text)) == len(text)
  assert set(text) <= set(addition.ALPHABET)


def _lengths(pairs):
  return {len(str(x)) for pair in pairs for x in pair}


def test_splits_are_disjoint_deterministic_and_in_range():
  train = addition.generate_pairs(addition.AdditionSplit(20_000, 1, 8, held_out=False), seed=1)
  test = addition.generate_pairs(addition.AdditionSplit(2_000, 1, 8, held_out=True), seed=2)
  ood = addition.generate_pairs(addition.AdditionSplit(500, 9, 10, held_out=True), seed=3)
  assert not set(train) & set(test)
  assert not set(train) & set(ood)
  assert _lengths(train) == _lengths(test) == set(range(1, 9))
  assert _lengths(ood) == {9, 10}
  assert train[:100] == addition.generate_pairs(addition.AdditionSplit(100, 1, 8, held_out=False), seed=1)


def test_every_length_is_well_represented():
  train = addition.generate_pairs(addition.AdditionSplit(16_000, 1, 8, held_out=False), seed=1)
  counts = [sum(len(str(a)) == n for a, _ in train) for n in range(1, 9)]
  assert min(counts) > 0.8 * len(train) / 8, counts
