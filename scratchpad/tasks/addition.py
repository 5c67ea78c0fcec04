"""Long addition, direct and scratchpad (Nye et al. 2021, section 3).

Scratchpad for 29 + 57 (the paper's figure, without its `#` comments):

    <scratch>
    2 9 + 5 7 , C: 0
    2 + 5 , 6 C: 1
    , 8 6 C: 0
    0 8 6
    </scratch>
    8 6

Each step line holds the digits still to add of both operands, ` , `, the
result digits so far, ` C: ` and the carry. Unequal lengths (the paper shows
only equal ones): the `+` stays while either operand has digits left and a used
up operand is written as nothing, so 123 + 45 has the step `1 + , 6 8 C: 0`;
once both are used up the `+` goes too. The line after the last step is the
final carry followed by the result digits.

Importing this module registers its seqio Tasks, `addition_{direct,scratchpad}*`.
"""

from __future__ import annotations

import dataclasses
import functools
import re

import numpy as np

from scratchpad.tasks.registration import SYMBOLS_SUFFIX, Breakdown, register_task
from scratchpad.tasks.vocabulary import SCRATCH_CLOSE, SCRATCH_OPEN, SYMBOLS, VOCABULARY, token_length

ALPHABET = "0123456789 +"  # every character an addition input may use


def spaced(digits) -> str:
  return " ".join(str(d) for d in digits)


def addition_input(a: int, b: int) -> str:
  return f"{spaced(str(a))} + {spaced(str(b))}"


def direct_target(a: int, b: int) -> str:
  return spaced(str(a + b))


def scratchpad_lines(a: int, b: int) -> list[str]:
  """The step lines of the column addition of a + b, carry line included."""
  a_digits, b_digits = list(str(a)), list(str(b))
  result, carry = [], 0
  lines = []
  while True:
    operands = a_digits + ["+"] + b_digits if a_digits or b_digits else []
    lines.append(" ".join(operands + [","] + result + ["C:", str(carry)]))
    if not (a_digits or b_digits):
      break
    column = int(a_digits.pop() if a_digits else 0) + int(b_digits.pop() if b_digits else 0)
    result.insert(0, str((column + carry) % 10))
    carry = (column + carry) // 10
  lines.append(spaced([carry] + result))
  return lines


def scratchpad_target(a: int, b: int) -> str:
  return "\n".join([SCRATCH_OPEN, *scratchpad_lines(a, b), SCRATCH_CLOSE, direct_target(a, b)])


_INPUT_RE = re.compile(r"^(\d(?: \d)*) \+ (\d(?: \d)*)$")


def parse_input(text: str) -> tuple[int, int]:
  """The operands of an input written as `addition_input` writes it; ValueError otherwise."""
  m = _INPUT_RE.match(text)
  if not m:
    raise ValueError(f"{text!r} is not an addition input: digits separated by spaces, ' + ' between "
                     "the operands, e.g. '2 9 + 5 7'")
  a, b = (int(g.replace(" ", "")) for g in m.groups())
  if addition_input(a, b) != text:
    raise ValueError(f"{text!r} is not an addition input: an operand has a leading zero")
  return a, b


def operand_length(text: str) -> int:
  """Digits of an input's longer operand: what accuracy is broken down by (the paper's figure 3)."""
  return max(len(str(n)) for n in parse_input(text))


def final_answer(text: str) -> str:
  """The answer of a target or a prediction: the text after `</scratch>`."""
  return text.rsplit(SCRATCH_CLOSE, 1)[-1].strip()


# Parsing, for tests and for error analysis of predictions.
_STEP_RE = re.compile(r"^(?:([\d ]*?) ?\+ ?([\d ]*?) )?, ?([\d ]*?) ?C: (\d)$")


@dataclasses.dataclass(frozen=True)
class Step:
  a_digits: str  # digits of a still to add, without spaces
  b_digits: str
  result: str
  carry: int


def parse_scratchpad(target: str) -> tuple[list[Step], str, str]:
  """Parses a scratchpad target into its steps, final carry line and answer."""
  lines = target.split("\n")
  if lines[0] != SCRATCH_OPEN or SCRATCH_CLOSE not in lines:
    raise ValueError(f"not a scratchpad: {target!r}")
  close = lines.index(SCRATCH_CLOSE)
  steps = []
  for line in lines[1:close - 1]:
    m = _STEP_RE.match(line)
    if not m:
      raise ValueError(f"bad scratchpad step line: {line!r}")
    a, b, result = (g.replace(" ", "") if g else "" for g in m.groups()[:3])
    steps.append(Step(a, b, result, int(m.group(4))))
  return steps, lines[close - 1].replace(" ", ""), "\n".join(lines[close + 1:])


# Data: operand lengths uniform in a range, so every length is well represented.

@dataclasses.dataclass(frozen=True)
class AdditionSplit:
  num_examples: int
  min_digits: int
  max_digits: int
  held_out: bool  # True: drawn only from held-out pairs (test); False: never from them


def is_held_out(a: int, b: int) -> bool:
  """A fixed tenth of all operand pairs, reserved for evaluation splits.

  Splitting the pair space (rather than removing sampled test pairs from
  train) keeps train and test disjoint without starving short lengths.
  """
  h = (a * 0x9E3779B1 + b * 0x85EBCA77 + 0x165667B1) & 0xFFFFFFFF
  h = ((h ^ (h >> 15)) * 0x2C1B3C6D) & 0xFFFFFFFF
  return (h ^ (h >> 12)) % 10 == 0


def sample_operand(rng: np.random.Generator, num_digits: int) -> int:
  if num_digits == 1:
    return int(rng.integers(0, 10))
  return int(rng.integers(10 ** (num_digits - 1), 10 ** num_digits))


def generate_pairs(split: AdditionSplit, seed: int) -> list[tuple[int, int]]:
  """Deterministic operand pairs for a split; held-out pairs only in eval splits."""
  rng = np.random.default_rng(seed)
  pairs = []
  while len(pairs) < split.num_examples:
    la, lb = rng.integers(split.min_digits, split.max_digits + 1, size=2)
    a, b = sample_operand(rng, int(la)), sample_operand(rng, int(lb))
    if is_held_out(a, b) == split.held_out:
      pairs.append((a, b))
  return pairs


# The Tasks. Seeds differ per split; both formats share the pairs.
_ADDITION_SEEDS = {"train": 1, "test": 2, "ood": 3}


@functools.lru_cache(maxsize=None)
def _addition_pairs(split: AdditionSplit, seed: int):
  return generate_pairs(split, seed)


def register_addition(train_digits: tuple[int, int], ood_digits: tuple[int, int],
                      sizes=(100_000, 10_000, 1_000), suffix: str = ""):
  """`addition_{direct,scratchpad}{suffix}` and their `_symbols` variants, over the same pairs."""
  lo, hi = train_digits
  splits = {
      "train": AdditionSplit(sizes[0], lo, hi, held_out=False),
      "test": AdditionSplit(sizes[1], lo, hi, held_out=True),
      "ood": AdditionSplit(sizes[2], *ood_digits, held_out=True),
  }
  for fmt, target_fn in (("direct", direct_target), ("scratchpad", scratchpad_target)):

    def examples_fn(split, target_fn=target_fn):
      pairs = _addition_pairs(splits[split], _ADDITION_SEEDS[split])
      return [(addition_input(a, b), target_fn(a, b)) for a, b in pairs]

    for vocabulary, vocabulary_suffix in ((VOCABULARY, ""), (SYMBOLS, SYMBOLS_SUFFIX)):
      # The longest example of a digit range is the all-nines pair: longest carry chain.
      def longest(s, target_fn=target_fn, vocabulary=vocabulary):
        n = int("9" * s.max_digits)
        return {"inputs": token_length(addition_input(n, n), vocabulary),
                "targets": token_length(target_fn(n, n), vocabulary)}

      register_task(
          f"addition_{fmt}{suffix}{vocabulary_suffix}", examples_fn,
          splits={k: s.num_examples for k, s in splits.items()},
          alphabet=ALPHABET,
          answer_fn=final_answer,
          description=f"{fmt} long addition, train/test {lo}-{hi} digits, ood {ood_digits[0]}-{ood_digits[1]}"
                      + (", one token per symbol" if vocabulary_suffix else ""),
          max_lengths={k: longest(s) for k, s in splits.items()},
          vocabulary=vocabulary, parse_input=parse_input,
          breakdown=Breakdown("answer_accuracy_by_length", operand_length, "digits", (lo, hi)))


# The paper's setup: 1-8 digits (100k/10k), out of distribution 9-10 digits (1k).
register_addition((1, 8), (9, 10))
# Shorter ranges for runs that must finish on a laptop CPU: ood is the next two lengths.
for _hi in (2, 3, 4, 5, 6):
  register_addition((1, _hi), (_hi + 1, _hi + 2), suffix=f"_1to{_hi}")
