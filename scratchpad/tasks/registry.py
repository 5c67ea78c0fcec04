"""seqio Tasks for the scratchpad paper's experiments, and what each needs.

`TASKS` records, beside each registered seqio Task, the facts the trainer and
the evaluator need that seqio does not keep: the alphabet of its inputs, the
longest input and target per split (so a config's lengths are checked, never
silently trimmed) and how to read the final answer out of a target.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import seqio
import tensorflow as tf

from scratchpad.tasks import addition
from scratchpad.tasks.vocabulary import ByteVocabulary

VOCABULARY = ByteVocabulary()
OUTPUT_FEATURES = {
    # eos ends the input too: it tells a decoder-only model where the input stops.
    "inputs": seqio.Feature(VOCABULARY, add_eos=True),
    "targets": seqio.Feature(VOCABULARY, add_eos=True),
}


@dataclasses.dataclass(frozen=True)
class TaskInfo:
  name: str
  alphabet: str
  max_lengths: dict[str, dict[str, int]]  # split -> {"inputs": n, "targets": n}, eos included
  answer_fn: Callable[[str], str]
  description: str


TASKS: dict[str, TaskInfo] = {}


def get_task_info(name: str) -> TaskInfo:
  if name not in TASKS:
    raise ValueError(f"unknown task {name!r}; registered tasks: {', '.join(sorted(TASKS))}")
  return TASKS[name]


def accuracy_metrics(answer_fn: Callable[[str], str]):
  """seqio metric function: final-answer and whole-sequence exact match, in %."""

  def metric_fn(targets: list[str], predictions: list[str]) -> dict[str, float]:
    n = max(len(targets), 1)
    answers = sum(answer_fn(t) == answer_fn(p) for t, p in zip(targets, predictions))
    sequences = sum(t == p for t, p in zip(targets, predictions))
    return {"answer_accuracy": 100.0 * answers / n, "sequence_accuracy": 100.0 * sequences / n}

  return metric_fn


def register_task(name: str, examples_fn: Callable[[str], list[tuple[str, str]]],
                  splits: dict[str, int], alphabet: str, max_lengths, answer_fn, description: str):
  """Registers a seqio Task over (input, target) text pairs made by `examples_fn(split)`."""

  def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
    del shuffle_files, seed  # the Task shuffles; the examples are fixed by their own seed
    inputs, targets = zip(*examples_fn(split))
    return tf.data.Dataset.from_tensor_slices({"inputs": list(inputs), "targets": list(targets)})

  seqio.TaskRegistry.add(
      name,
      source=seqio.FunctionDataSource(dataset_fn, splits=list(splits), num_input_examples=splits),
      preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos_after_trim],
      output_features=OUTPUT_FEATURES,
      metric_fns=[accuracy_metrics(answer_fn)],
      shuffle_buffer_size=10_000,
  )
  TASKS[name] = TaskInfo(name, alphabet, max_lengths, answer_fn, description)


def token_length(text: str) -> int:
  return len(VOCABULARY.encode(text)) + 1  # + eos


# Long addition (SPEC 1a). Seeds differ per split; both formats share the pairs.
_ADDITION_SEEDS = {"train": 1, "test": 2, "ood": 3}


@functools.lru_cache(maxsize=None)
def _addition_pairs(split: addition.AdditionSplit, seed: int):
  return addition.generate_pairs(split, seed)


def register_addition(train_digits: tuple[int, int], ood_digits: tuple[int, int],
                      sizes=(100_000, 10_000, 1_000), suffix: str = ""):
  lo, hi = train_digits
  splits = {
      "train": addition.AdditionSplit(sizes[0], lo, hi, held_out=False),
      "test": addition.AdditionSplit(sizes[1], lo, hi, held_out=True),
      "ood": addition.AdditionSplit(sizes[2], *ood_digits, held_out=True),
  }
  for fmt, target_fn in (("direct", addition.direct_target), ("scratchpad", addition.scratchpad_target)):

    def examples_fn(split, target_fn=target_fn):
      pairs = _addition_pairs(splits[split], _ADDITION_SEEDS[split])
      return [(addition.addition_input(a, b), target_fn(a, b)) for a, b in pairs]

    # The longest example of a digit range is the all-nines pair: longest carry chain.
    def longest(s, target_fn=target_fn):
      n = int("9" * s.max_digits)
      return {"inputs": token_length(addition.addition_input(n, n)), "targets": token_length(target_fn(n, n))}

    register_task(
        f"addition_{fmt}{suffix}", examples_fn,
        splits={k: s.num_examples for k, s in splits.items()},
        alphabet=addition.ALPHABET,
        max_lengths={k: longest(s) for k, s in splits.items()},
        answer_fn=addition.final_answer,
        description=f"{fmt} long addition, train/test {lo}-{hi} digits, ood {ood_digits[0]}-{ood_digits[1]}",
    )


# The paper's setup: 1-8 digits (100k/10k), out of distribution 9-10 digits (1k).
register_addition((1, 8), (9, 10))
# Shorter ranges for runs that must finish on a laptop CPU: ood is the next two lengths.
for _hi in (2, 3, 4, 5):
  register_addition((1, _hi), (_hi + 1, _hi + 2), suffix=f"_1to{_hi}")
