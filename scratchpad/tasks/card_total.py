"""Card total, a direct-answer task for the pause study: the value of a hand of cards.

    K 7 A 9 4   ->   3 1

Each card is one symbol of `A 2-9 T J Q K`, worth 1 (the ace), its number, or 10
(`T J Q K`), as in blackjack with the ace always 1. As in digit sum, the first
answer digit needs every card's value added first; unlike digit sum, a symbol's
value is not the digit it shows: the model learns the table, and four symbols
share the value 10. Hands have 5 to 12 cards; test hands never occur in train.
"""

from __future__ import annotations

from scratchpad.tasks.addition import spaced
from scratchpad.tasks.digit_sum import uniform_sequences

CARDS = "A23456789TJQK"
VALUES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 10, 10)  # VALUES[i] is the worth of CARDS[i]
ALPHABET = CARDS + "0123456789 "
HAND = (5, 12)  # cards in a hand, drawn uniformly


def card_total_input(hand: tuple[int, ...]) -> str:
  return spaced(CARDS[i] for i in hand)


def total(hand: tuple[int, ...]) -> int:
  return sum(VALUES[i] for i in hand)


def direct_target(hand: tuple[int, ...]) -> str:
  return spaced(str(total(hand)))


def parse_input(text: str) -> tuple[int, ...]:
  """The hand an input was written from (card indices); ValueError for anything else."""
  cards = text.split(" ")
  if any(len(c) != 1 or c not in CARDS for c in cards):
    raise ValueError(f"{text!r} is not a hand of cards: one of {CARDS} each, separated by single spaces, "
                     "e.g. 'K 7 A 9 4'")
  return tuple(CARDS.index(c) for c in cards)


def final_answer(text: str) -> str:
  return text.strip()


def generate(num_examples: int, seed: int, exclude: frozenset = frozenset()) -> list[tuple[int, ...]]:
  """Distinct hands of uniformly drawn cards, their size uniform in `HAND`, none of them in `exclude`."""
  return uniform_sequences(num_examples, seed, exclude, base=len(CARDS), lengths=HAND)
