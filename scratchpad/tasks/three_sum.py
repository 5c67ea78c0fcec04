"""3SUM modulo 100, a direct-answer task for the pause-token study (after Pfau et al. 2024).

    37 12 99 51 88   ->   1        (37 + 12 + 51 = 100)

Is there a triple i < j < k of the numbers whose sum is 0 modulo 100? The answer
needs every triple of the whole input before the first answer token: work a
model can spread over extra positions. Half the examples of a split answer 1 and
half 0 at every length, so the answer is not a matter of how long the input is;
test inputs never occur in train.
"""

from __future__ import annotations

import itertools

import numpy as np

ALPHABET = "0123456789 "
MODULUS = 100
NUMBERS = (5, 9)  # how many numbers an input has, drawn uniformly


def has_triple(numbers: tuple[int, ...]) -> bool:
  return any((a + b + c) % MODULUS == 0 for a, b, c in itertools.combinations(numbers, 3))


def three_sum_input(numbers: tuple[int, ...]) -> str:
  return " ".join(f"{n:02d}" for n in numbers)


def direct_target(numbers: tuple[int, ...]) -> str:
  return str(int(has_triple(numbers)))


def parse_input(text: str) -> tuple[int, ...]:
  """The numbers an input was written from (its generator's tuple)."""
  return tuple(int(n) for n in text.split())


def final_answer(text: str) -> str:
  return text.strip()


def generate(num_examples: int, seed: int, exclude: frozenset = frozenset(),
             lengths: tuple[int, int] = NUMBERS) -> list[tuple[int, ...]]:
  """Distinct inputs, none in `exclude`, the answers alternating 1, 0, 1, ... at each length
  (drawn until the wanted answer comes): balanced at every length."""
  rng = np.random.default_rng(seed)
  chosen: dict[tuple[int, ...], None] = {}
  want = {n: True for n in range(lengths[0], lengths[1] + 1)}
  while len(chosen) < num_examples:
    n = int(rng.integers(lengths[0], lengths[1] + 1))
    while True:
      numbers = tuple(int(x) for x in rng.integers(0, MODULUS, n))
      if has_triple(numbers) == want[n] and numbers not in exclude and numbers not in chosen:
        break
    chosen[numbers] = None
    want[n] = not want[n]
  return list(chosen)
