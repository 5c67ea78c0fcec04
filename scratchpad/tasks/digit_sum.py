"""Digit sum, a direct-answer task for the pause-token study.

    3 5 8 1 9 4   ->   3 0

The answer depends on every input digit at once, so a small model must gather
and add them all before its first answer token: a task where extra positions
before the answer (pauses) could matter. Inputs have 5 to 12 digits; test
sequences never occur in train.
"""

from __future__ import annotations

import numpy as np

from scratchpad.tasks.addition import spaced

ALPHABET = "0123456789 "
DIGITS = (5, 12)


def digit_sum_input(digits: tuple[int, ...]) -> str:
  return spaced(digits)


def direct_target(digits: tuple[int, ...]) -> str:
  return spaced(str(sum(digits)))


def final_answer(text: str) -> str:
  return text.strip()


def generate(num_examples: int, seed: int, exclude: frozenset = frozenset()) -> list[tuple[int, ...]]:
  """Distinct digit sequences with uniformly drawn lengths, none of them in `exclude`."""
  return uniform_sequences(num_examples, seed, exclude, base=10, lengths=DIGITS)


def uniform_sequences(num_examples: int, seed: int, exclude: frozenset, base: int,
                      lengths: tuple[int, int], low: int = 0) -> list[tuple[int, ...]]:
  """Distinct sequences of uniform symbols in [low, low + base), lengths uniform in `lengths`,
  none in `exclude`."""
  rng = np.random.default_rng(seed)
  chosen: dict[tuple[int, ...], None] = {}
  while len(chosen) < num_examples:
    sequence = tuple(int(d) for d in rng.integers(low, low + base, rng.integers(lengths[0], lengths[1] + 1)))
    if sequence not in exclude:
      chosen[sequence] = None
  return list(chosen)
