"""The pause study's small direct-answer tasks as seqio Tasks: digit sum, parity, 3SUM, multi-addition, cards.

Their formats are in their own modules (`digit_sum.py`, `parity.py`, ...);
here they become seqio Tasks of 20,000 train and 1,000 test examples, test
disjoint from train. `PAUSE_TASKS` names the tasks pause fine-tuning takes,
`PAUSE_STUDY_TASKS` those the study runs by default.
"""

from __future__ import annotations

import functools

from scratchpad.tasks import card_total, digit_sum, multi_addition, parity, three_sum
from scratchpad.tasks.registration import Breakdown, register_task


# The small direct-answer tasks pause fine-tuning takes, and those the study runs by default:
# tasks a shallow model answers better with more computation before its first answer token.
PAUSE_TASKS = {"parity": "parity", "three_sum": "three_sum", "digit_sum": "digit_sum", "multi_addition": "multi_addition",
               "card_total": "card_total",
               "addition": "addition_direct_1to3", "polynomial": "polynomial_direct"}
PAUSE_STUDY_TASKS = ("parity", "three_sum", "multi_addition", "digit_sum", "card_total")


@functools.lru_cache(maxsize=None)
def _generated_split(module, split: str, seeds: tuple[int, int] = (51, 52)):
  """`module.generate`'s 20,000 train or 1,000 test examples, test disjoint from train (seeds: train's, test's)."""
  train = module.generate(20_000, seed=seeds[0])
  return train if split == "train" else module.generate(1_000, seed=seeds[1], exclude=frozenset(train))


# Digit sum: its own seeds.
register_task(
    "digit_sum", lambda split: [(digit_sum.digit_sum_input(d), digit_sum.direct_target(d))
                                for d in _generated_split(digit_sum, split, (41, 42))],
    splits={"train": 20_000, "test": 1_000}, alphabet=digit_sum.ALPHABET, answer_fn=digit_sum.final_answer,
    description=f"direct digit sum of {digit_sum.DIGITS[0]}-{digit_sum.DIGITS[1]} digits",
    breakdown=Breakdown("answer_accuracy_by_length", parity.input_length, "digits", digit_sum.DIGITS))


# Parity, 3SUM, multi-operand addition and card total: direct answers that need the whole input
# before the first answer token.
register_task(
    "parity", lambda split: [(parity.parity_input(b), parity.direct_target(b)) for b in _generated_split(parity, split)],
    splits={"train": 20_000, "test": 1_000}, alphabet=parity.ALPHABET, answer_fn=parity.final_answer,
    description=f"direct parity of {parity.BITS[0]}-{parity.BITS[1]} uniform bits",
    breakdown=Breakdown("answer_accuracy_by_length", parity.input_length, "bits", parity.BITS))
register_task(
    "three_sum", lambda split: [(three_sum.three_sum_input(n), three_sum.direct_target(n))
                                for n in _generated_split(three_sum, split)],
    splits={"train": 20_000, "test": 1_000}, alphabet=three_sum.ALPHABET, answer_fn=three_sum.final_answer,
    description=f"direct 3SUM mod {three_sum.MODULUS} of {three_sum.NUMBERS[0]}-{three_sum.NUMBERS[1]} numbers, "
                "half of each length with a triple",
    breakdown=Breakdown("answer_accuracy_by_length", parity.input_length, "numbers", three_sum.NUMBERS))
register_task(
    "multi_addition", lambda split: [(multi_addition.multi_addition_input(n), multi_addition.direct_target(n))
                                     for n in _generated_split(multi_addition, split)],
    splits={"train": 20_000, "test": 1_000}, alphabet=multi_addition.ALPHABET, answer_fn=multi_addition.final_answer,
    description=f"direct sum of {multi_addition.OPERANDS[0]}-{multi_addition.OPERANDS[1]} two-digit numbers",
    breakdown=Breakdown("answer_accuracy_by_length", multi_addition.operand_count, "operands",
                        multi_addition.OPERANDS))
register_task(
    "card_total", lambda split: [(card_total.card_total_input(h), card_total.direct_target(h))
                                 for h in _generated_split(card_total, split)],
    splits={"train": 20_000, "test": 1_000}, alphabet=card_total.ALPHABET, answer_fn=card_total.final_answer,
    description=f"direct total of a hand of {card_total.HAND[0]}-{card_total.HAND[1]} cards (A=1, T J Q K=10)",
    parse_input=card_total.parse_input,
    breakdown=Breakdown("answer_accuracy_by_length", parity.input_length, "cards", card_total.HAND))
