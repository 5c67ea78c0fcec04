"""Multi-operand addition, a direct-answer task for the pause study.

    4 7 + 1 2 + 9 9 + 3 0   ->   1 8 8

The sum of 2 to 4 two-digit numbers, written most significant digit first as in
the paper's addition. Its first answer digit depends on every operand and on
the carries of the whole column of units, so a shallow model must do all the
adding before its first answer token: wide, parallel work that extra positions
(pauses) can take. Unlike parity and 3SUM, the answer has two or three digits,
so a model is rewarded for each one it gets right and learns at this budget.
Test inputs never occur in train.
"""

from __future__ import annotations

from scratchpad.tasks.addition import spaced
from scratchpad.tasks.digit_sum import uniform_sequences

ALPHABET = "0123456789 +"
OPERANDS = (2, 4)  # how many numbers an input adds, drawn uniformly
LOW, HIGH = 10, 99  # every operand has two digits


def multi_addition_input(operands: tuple[int, ...]) -> str:
  return " + ".join(spaced(str(n)) for n in operands)


def direct_target(operands: tuple[int, ...]) -> str:
  return spaced(str(sum(operands)))


def operand_count(text: str) -> int:
  return text.count("+") + 1


def parse_input(text: str) -> tuple[int, ...]:
  """The numbers an input was written from (its generator's tuple)."""
  return tuple(int(n.replace(" ", "")) for n in text.split(" + "))


def final_answer(text: str) -> str:
  return text.strip()


def generate(num_examples: int, seed: int, exclude: frozenset = frozenset(),
             operands: tuple[int, int] = OPERANDS) -> list[tuple[int, ...]]:
  """Distinct operand tuples, their count uniform in `operands`, none of them in `exclude`."""
  return uniform_sequences(num_examples, seed, exclude, base=HIGH - LOW + 1, lengths=operands, low=LOW)
