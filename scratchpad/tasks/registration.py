"""Registering this project's seqio Tasks, each with the facts about it that seqio does not keep.

seqio's TaskRegistry is the one registry. Every Task added here is a
`ScratchpadTask`, which carries a `TaskInfo`: the alphabet of its inputs, the
longest input and target per split (so a config's lengths are checked, never
silently trimmed), how to read the final answer out of a target, its headline
metric and its pauses. `get_task_info` reads the facts back from seqio's Task.
Task modules register their own Tasks through this module; it imports none of them.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Sequence

import seqio
import tensorflow as tf

from scratchpad import errors
from scratchpad.tasks.vocabulary import VOCABULARY, token_length

# The opt-in one-token-per-symbol variant of a task: its name with this suffix.
SYMBOLS_SUFFIX = "_symbols"


def output_features(vocabulary: seqio.Vocabulary = VOCABULARY) -> dict[str, seqio.Feature]:
  # eos ends the input too: it tells a decoder-only model where the input stops.
  return {"inputs": seqio.Feature(vocabulary, add_eos=True), "targets": seqio.Feature(vocabulary, add_eos=True)}


@dataclasses.dataclass(frozen=True)
class Breakdown:
  """Answer accuracy by a count read off each input (the paper's figure 3: by operand length)."""
  metric: str  # the results' key, e.g. answer_accuracy_by_length
  count_fn: Callable[[str], int]  # input text -> its count (digits of the longer operand, terms)
  unit: str  # what is counted, for tables and warnings: "digits", "terms"
  trained: tuple[int, int]  # the counts the train split covers


class TaskInfo:
  """What the trainer and evaluator need to know of a task beyond its seqio Task.

  `alphabet`: the characters an input may use (None: any text). `max_lengths`,
  computed on first use: split -> {"inputs": n, "targets": n}, the longest
  example's tokens, eos included (None for corpora too big to measure: their
  configs give lengths, and longer examples are trimmed). `headline_metric`:
  the metric tables lead with. `num_pauses` / `prepend_pauses`: the pauses
  its preprocessors add to every input (see `with_pauses`). `examples_fn`:
  split -> (input, target) texts, for tasks generated in memory. `parse_input`:
  raises ValueError, naming the problem, for a text the task's generator would
  never write (None: the alphabet alone is checked). `breakdown`: accuracy by
  a count of each input, and the counts trained on.
  """

  def __init__(self, name: str, alphabet: str | None, max_lengths_fn: Callable[[], dict | None], answer_fn,
               description: str, headline_metric: str = "answer_accuracy", num_pauses: int = 0,
               prepend_pauses: bool = False, examples_fn: Callable[[str], list[tuple[str, str]]] | None = None,
               parse_input: Callable[[str], object] | None = None, breakdown: Breakdown | None = None):
    self.name, self.alphabet, self.answer_fn, self.description = name, alphabet, answer_fn, description
    self.headline_metric, self.num_pauses, self.prepend_pauses = headline_metric, num_pauses, prepend_pauses
    self.examples_fn, self.parse_input, self.breakdown = examples_fn, parse_input, breakdown
    self._max_lengths_fn = max_lengths_fn

  @functools.cached_property
  def max_lengths(self) -> dict[str, dict[str, int]] | None:
    return self._max_lengths_fn()


class ScratchpadTask(seqio.Task):
  """A seqio Task that carries its `TaskInfo`: the task and its facts are registered together."""

  def __init__(self, *args, info: TaskInfo, **kwargs):
    super().__init__(*args, **kwargs)
    self.info = info


def add_task(info: TaskInfo, **task_kwargs) -> ScratchpadTask:
  """Registers `info.name` with seqio (`task_kwargs`: `seqio.TaskRegistry.add`'s), carrying `info`."""
  return seqio.TaskRegistry.add(info.name, task_cls=ScratchpadTask, info=info, **task_kwargs)


def task_names() -> list[str]:
  """The names of the Tasks registered through this module, sorted."""
  return sorted(name for name in seqio.TaskRegistry.names() if is_registered(name))


def is_registered(name: str) -> bool:
  return name in seqio.TaskRegistry.names() and isinstance(seqio.TaskRegistry.get(name), ScratchpadTask)


def get_task_info(name: str) -> TaskInfo:
  if name not in seqio.TaskRegistry.names():
    raise errors.InputError(f"unknown task {name!r}; registered tasks: {', '.join(task_names())}")
  task = seqio.TaskRegistry.get(name)
  if not isinstance(task, ScratchpadTask):
    raise errors.InputError(f"task {name!r} was registered with seqio directly, without this project's facts about it "
                            "(alphabet, lengths, answer): register it through scratchpad.tasks.registration")
  return task.info


def task_vocabulary(name: str) -> seqio.Vocabulary:
  """The vocabulary of a task's targets: the model's vocabulary."""
  get_task_info(name)
  return seqio.get_mixture_or_task(name).output_features["targets"].vocabulary


def accuracy_metrics(answer_fn: Callable[[str], str]):
  """seqio metric function: final-answer and whole-sequence exact match, in %."""

  def metric_fn(targets: list[str], predictions: list[str]) -> dict[str, float]:
    n = max(len(targets), 1)
    answers = sum(answer_fn(t) == answer_fn(p) for t, p in zip(targets, predictions))
    sequences = sum(t == p for t, p in zip(targets, predictions))
    return {"answer_accuracy": 100.0 * answers / n, "sequence_accuracy": 100.0 * sequences / n}

  return metric_fn


def register_task(name: str, examples_fn: Callable[[str], list[tuple[str, str]]],
                  splits: dict[str, int | None], alphabet: str, answer_fn, description: str,
                  max_lengths: dict | None = None, metric_fns: Sequence[Callable] = (),
                  vocabulary: seqio.Vocabulary = VOCABULARY, parse_input: Callable[[str], object] | None = None,
                  breakdown: Breakdown | None = None):
  """Registers a seqio Task over (input, target) text pairs made by `examples_fn(split)`.

  `max_lengths` may be given when known in closed form; otherwise it is measured
  over the examples the first time it is asked for. `metric_fns` come after the
  answer and sequence accuracies every task has.
  """
  length = functools.partial(token_length, vocabulary=vocabulary)

  def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
    del shuffle_files, seed  # the Task shuffles; the examples are fixed by their own seed
    inputs, targets = zip(*examples_fn(split))
    return tf.data.Dataset.from_tensor_slices({"inputs": list(inputs), "targets": list(targets)})

  def measured_lengths():
    lengths = {}
    for split in splits:
      examples = examples_fn(split)
      if not examples:
        raise errors.InputError(f"task {name} has no examples in split {split!r}: its data holds none")
      lengths[split] = {"inputs": max(length(i) for i, _ in examples), "targets": max(length(t) for _, t in examples)}
    return lengths

  known_sizes = splits if all(n is not None for n in splits.values()) else None
  add_task(
      TaskInfo(name, alphabet, (lambda: max_lengths) if max_lengths else measured_lengths, answer_fn, description,
               examples_fn=examples_fn, parse_input=parse_input, breakdown=breakdown),
      source=seqio.FunctionDataSource(dataset_fn, splits=list(splits), num_input_examples=known_sizes),
      preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos_after_trim],
      output_features=output_features(vocabulary),
      metric_fns=[accuracy_metrics(answer_fn), *metric_fns],
      shuffle_buffer_size=10_000,
  )


# Pretraining text: targets only, the loss on every token (a plain language model).
TEXT_FEATURES = {"targets": seqio.Feature(VOCABULARY, add_eos=True)}


def register_text(name: str, texts_fn: Callable[[str], list[str]], splits: dict[str, int | None], description: str):
  def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
    del shuffle_files, seed
    return tf.data.Dataset.from_tensor_slices({"targets": texts_fn(split)})

  add_task(
      TaskInfo(name, None, lambda: {s: {"inputs": 0, "targets": max(map(token_length, texts_fn(s)))} for s in splits},
               lambda text: text, description),
      source=seqio.FunctionDataSource(dataset_fn, splits=list(splits)),
      preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos_after_trim],
      output_features=TEXT_FEATURES, shuffle_buffer_size=10_000)
