"""Polynomial evaluation: the paper's format, right values, disjoint splits."""

import hypothesis.strategies as st
import numpy as np
import seqio
from hypothesis import given, settings

from scratchpad.tasks import get_task_info, polynomial
from scratchpad.tasks.polynomial import _polynomials
from scratchpad.tasks.vocabulary import check_text


def test_the_papers_example_byte_for_byte():
  p = polynomial.Polynomial(((-7, 2), (7, 1), (5, 0)), x=1)
  assert polynomial.polynomial_input(p) == "Evaluate -7*x**2 + 7*x + 5 at x = 1"
  assert polynomial.scratchpad_target(p) == "<scratch>\n-7*x**2: -7\n7*x: 7\n5: 5\n</scratch>\ntotal: 5"
  assert polynomial.direct_target(p) == "total: 5"


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_every_scratchpad_line_and_the_total_are_right(seed):
  p = polynomial.sample(np.random.default_rng(seed))
  text = polynomial.polynomial_input(p)
  check_text(text, polynomial.ALPHABET)
  expression, _, x = text.removeprefix("Evaluate ").rpartition(" at x = ")
  terms, total = polynomial.parse_scratchpad(polynomial.scratchpad_target(p))
  # Each line's term is the input's term, exactly, and its value is Python's.
  assert " + ".join(term for term, _ in terms) == expression
  for term, v in terms:
    assert eval(term, {"x": int(x)}) == v  # noqa: S307 (our own generated arithmetic)
  assert total == eval(expression, {"x": int(x)}) == sum(v for _, v in terms)  # noqa: S307
  assert polynomial.final_answer(polynomial.direct_target(p)) == str(total)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_samples_follow_the_papers_ranges(seed):
  p = polynomial.sample(np.random.default_rng(seed))
  assert 1 <= len(p.terms) <= 3
  degrees = [d for _, d in p.terms]
  assert degrees == sorted(set(degrees), reverse=True) and max(degrees) <= 3
  assert all(c != 0 and -10 <= c <= 10 for c, _ in p.terms) and -10 <= p.x <= 10


def test_splits_are_in_bounds_distinct_and_disjoint():
  train, test = _polynomials("train"), _polynomials("test")
  assert (len(train), len(test)) == (10_000, 2_000)
  assert len(set(train)) == len(train) and not set(train) & set(test)
  assert all(polynomial.in_bounds(p) for p in train + test)
  assert {len(p.terms) for p in test} == {1, 2, 3}


def test_a_larger_train_split_extends_the_papers_and_never_meets_test():
  larger = _polynomials("train", 12_000)
  assert larger[:10_000] == _polynomials("train") and len(set(larger)) == 12_000
  assert not set(larger) & set(_polynomials("test"))


def test_tasks_are_registered_with_their_splits():
  for fmt in ("direct", "scratchpad"):
    task = seqio.get_mixture_or_task(f"polynomial_{fmt}")
    assert [task.num_input_examples(s) for s in ("train", "test")] == [10_000, 2_000]
    large = seqio.get_mixture_or_task(f"polynomial_large_{fmt}_symbols")
    assert [large.num_input_examples(s) for s in ("train", "test")] == [100_000, 2_000]
    lengths = get_task_info(f"polynomial_{fmt}").max_lengths
    assert lengths["train"]["inputs"] == max(len(polynomial.polynomial_input(p)) for p in _polynomials("train")) + 1


def test_answer_is_read_from_the_total_line():
  assert polynomial.final_answer("<scratch>\n3*x: 6\n</scratch>\ntotal: -12") == "-12"
  assert polynomial.final_answer("<scratch>\n3*x: 6\n") == ""
