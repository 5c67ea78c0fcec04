"""Polynomial evaluation, direct and scratchpad (Nye et al. 2021, section 4).

    Evaluate -7*x**2 + 7*x + 5 at x = 1

Scratchpad target, one line per term with its value, then the total:

    <scratch>
    -7*x**2: -7
    7*x: 7
    5: 5
    </scratch>
    total: 5

The direct target is the last line alone (`total: 5`). Polynomials have 1 to 3
terms of distinct degrees <= 3, in decreasing degree, with integer
coefficients in [-10, 10] (never 0, always written, `1*x`), joined by ` + `:
a negative coefficient keeps its sign inside its term (`3*x + -2`), so each
scratchpad line starts with its term exactly as the input writes it. x is an
integer in [-10, 10]; every term's value and the total lie in [-1000, 1000].

Importing this module registers its seqio Tasks, `polynomial*_{direct,scratchpad}*`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re

import numpy as np

from scratchpad.tasks.registration import SYMBOLS_SUFFIX, Breakdown, register_task
from scratchpad.tasks.vocabulary import SCRATCH_CLOSE, SCRATCH_OPEN, SYMBOLS, VOCABULARY

ALPHABET = "Evaluteatx=*+-0123456789 "  # every character a polynomial input may use
COEFFICIENTS = (-10, 10)
X_RANGE = (-10, 10)
MAX_DEGREE = 3
MAX_TERMS = 3
VALUE_BOUND = 1000


@dataclasses.dataclass(frozen=True)
class Polynomial:
  terms: tuple[tuple[int, int], ...]  # (coefficient, degree), degrees decreasing
  x: int


def term_text(coefficient: int, degree: int) -> str:
  if degree == 0:
    return str(coefficient)
  return f"{coefficient}*x" + (f"**{degree}" if degree > 1 else "")


def term_value(coefficient: int, degree: int, x: int) -> int:
  return coefficient * x ** degree


def value(p: Polynomial) -> int:
  return sum(term_value(c, d, p.x) for c, d in p.terms)


def polynomial_input(p: Polynomial) -> str:
  return f"Evaluate {' + '.join(term_text(c, d) for c, d in p.terms)} at x = {p.x}"


_TERM_RE = re.compile(r"^(-?\d+)(\*x(?:\*\*(\d))?)?$")


def parse_input(text: str) -> Polynomial:
  """The polynomial and x of an input written as `polynomial_input` writes it; ValueError otherwise."""
  body, sep, x = text.removeprefix("Evaluate ").rpartition(" at x = ")
  matches = [_TERM_RE.match(term) for term in body.split(" + ")]
  if not (text.startswith("Evaluate ") and sep and re.fullmatch(r"-?\d+", x) and all(matches)):
    raise ValueError(f"{text!r} is not a polynomial input: e.g. 'Evaluate -7*x**2 + 7*x + 5 at x = 1'")
  terms = tuple((int(m.group(1)), int(m.group(3) or 1) if m.group(2) else 0) for m in matches)
  p = Polynomial(terms, int(x))
  if polynomial_input(p) != text:
    raise ValueError(f"{text!r} is not a polynomial input as the task writes it: "
                     f"it would be {polynomial_input(p)!r}")
  return p


def num_terms(text: str) -> int:
  """Terms of an input's polynomial: what accuracy is broken down by."""
  return len(parse_input(text).terms)


def direct_target(p: Polynomial) -> str:
  return f"total: {value(p)}"


def scratchpad_target(p: Polynomial) -> str:
  lines = [f"{term_text(c, d)}: {term_value(c, d, p.x)}" for c, d in p.terms]
  return "\n".join([SCRATCH_OPEN, *lines, SCRATCH_CLOSE, direct_target(p)])


def final_answer(text: str) -> str:
  """The answer of a target or a prediction: the number after the last `total:`."""
  return text.rsplit("total:", 1)[-1].strip() if "total:" in text else ""


def parse_scratchpad(target: str) -> tuple[list[tuple[str, int]], int]:
  """The (term text, value) lines of a scratchpad target and its total."""
  lines = target.split("\n")
  if lines[0] != SCRATCH_OPEN or SCRATCH_CLOSE not in lines:
    raise ValueError(f"not a scratchpad: {target!r}")
  close = lines.index(SCRATCH_CLOSE)
  terms = []
  for line in lines[1:close]:
    term, sep, v = line.rpartition(": ")
    if not sep:
      raise ValueError(f"bad scratchpad term line: {line!r}")
    terms.append((term, int(v)))
  return terms, int(final_answer(target))


def in_bounds(p: Polynomial) -> bool:
  values = [term_value(c, d, p.x) for c, d in p.terms]
  return all(abs(v) <= VALUE_BOUND for v in values) and abs(sum(values)) <= VALUE_BOUND


def is_held_out(p: Polynomial) -> bool:
  """A fixed tenth of all (polynomial, x) pairs, reserved for `test` (as in addition)."""
  return hashlib.blake2b(polynomial_input(p).encode(), digest_size=4).digest()[0] % 10 == 0


def sample(rng: np.random.Generator) -> Polynomial:
  num_terms = int(rng.integers(1, MAX_TERMS + 1))
  degrees = sorted(rng.choice(MAX_DEGREE + 1, size=num_terms, replace=False).tolist(), reverse=True)
  coefficients = rng.choice([c for c in range(COEFFICIENTS[0], COEFFICIENTS[1] + 1) if c], size=num_terms)
  return Polynomial(tuple(zip(coefficients.tolist(), degrees)), int(rng.integers(X_RANGE[0], X_RANGE[1] + 1)))


def generate(num_examples: int, held_out: bool, seed: int) -> list[Polynomial]:
  """Distinct in-bounds examples; held-out ones only in `test`, never in `train`."""
  rng = np.random.default_rng(seed)
  seen, examples = set(), []
  while len(examples) < num_examples:
    p = sample(rng)
    if p not in seen and in_bounds(p) and is_held_out(p) == held_out:
      seen.add(p)
      examples.append(p)
  return examples


# The Tasks: 10k train, 2k test; test from a held-out tenth.
# `_large` draws 100k distinct train polynomials with the same sampler (its first 10k are the
# paper's) and keeps the same test: more data, a labelled departure from the paper. Few
# polynomials have one or two terms, so distinct draws hold more of three (66% against 42%).
_POLYNOMIAL_SPLITS = {"train": (10_000, False, 11), "test": (2_000, True, 12)}  # size, held out, seed
POLYNOMIAL_TRAIN_SIZES = {"": _POLYNOMIAL_SPLITS["train"][0], "_large": 100_000}
_generated_polynomials = functools.lru_cache(maxsize=None)(generate)


def _polynomials(split: str, train_size: int = _POLYNOMIAL_SPLITS["train"][0]):
  """A split's polynomials, built once per (size, held out, seed): both train sizes share one test."""
  size, held_out, seed = _POLYNOMIAL_SPLITS[split]
  return _generated_polynomials(train_size if split == "train" else size, held_out, seed)


for _fmt, _target_fn in (("direct", direct_target), ("scratchpad", scratchpad_target)):
  for _data, _train_size in POLYNOMIAL_TRAIN_SIZES.items():
    for _vocabulary, _suffix in ((VOCABULARY, ""), (SYMBOLS, SYMBOLS_SUFFIX)):
      register_task(
          f"polynomial{_data}_{_fmt}{_suffix}",
          lambda split, target_fn=_target_fn, train_size=_train_size: [
              (polynomial_input(p), target_fn(p)) for p in _polynomials(split, train_size)],
          splits={"train": _train_size, "test": _POLYNOMIAL_SPLITS["test"][0]},
          alphabet=ALPHABET,
          answer_fn=final_answer,
          description=f"{_fmt} polynomial evaluation, <= 3 terms of degree <= 3, values in [-1000, 1000]"
                      + (f", {_train_size:,} train" if _data else "") + (", one token per symbol" if _suffix else ""),
          vocabulary=_vocabulary, parse_input=parse_input,
          breakdown=Breakdown("answer_accuracy_by_terms", num_terms, "terms", (1, MAX_TERMS)))
