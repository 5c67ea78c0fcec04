"""Parity, a direct-answer task for the pause-token study (London & Kanade 2025).

    1 0 1 1 0 1 0   ->   0

The answer is the XOR of every bit: a causal model must carry it across the whole
input before its first answer token, and a shallow one without extra positions
falls short as the strings grow. Bits are uniform, so at every length the two
answers are equally likely and no surface feature gives the answer away; test
strings never occur in train.
"""

from __future__ import annotations

from scratchpad.tasks.addition import spaced
from scratchpad.tasks.digit_sum import uniform_sequences

ALPHABET = "01 "
BITS = (8, 24)  # lengths drawn uniformly; 2^8 strings of the shortest: the splits sample longer ones mostly


def parity_input(bits: tuple[int, ...]) -> str:
  return spaced(bits)


def direct_target(bits: tuple[int, ...]) -> str:
  return str(sum(bits) % 2)


def input_length(text: str) -> int:
  """How many space-separated symbols an input has: bits here, numbers in 3SUM."""
  return len(text.split())


def parse_input(text: str) -> tuple[int, ...]:
  """The bits an input was written from (its generator's tuple)."""
  return tuple(int(b) for b in text.split())


def final_answer(text: str) -> str:
  return text.strip()


def generate(num_examples: int, seed: int, exclude: frozenset = frozenset(),
             lengths: tuple[int, int] = BITS) -> list[tuple[int, ...]]:
  """Distinct uniform bit strings with uniformly drawn lengths, none of them in `exclude`."""
  return uniform_sequences(num_examples, seed, exclude, base=2, lengths=lengths)
