"""The pause-token paper's nine downstream tasks as generative seqio Tasks.

A decoder-only model reads `inputs`, then eos (and, pause-finetuned, M pauses),
then writes `targets`. Every task keeps the gold answers its metric needs in an
extra string feature, `answers` (a vector: short-answer QA has several), which
the postprocess function returns for targets; predictions are postprocessed to
the comparable form (a SQuAD-normalised string, a canonical number, a letter,
a word) and scored in % against every gold answer, the best match counting.

One example per task (inputs → targets; `|` separates gold answers):

  gsm8k              "Question: Natalia sold clips to 48 of her friends in April, and then she
                      sold half as many clips in May. How many clips did Natalia sell altogether?"
                     → "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n...\n#### 72"
                     exact_match of the final number (after `####`, else the last number): 72
  squad              "Title: Super_Bowl_50\nContext: Super Bowl 50 was ...\nQuestion: Which NFL team
                      represented the AFC at Super Bowl 50?" → "Denver Broncos"
                     exact_match, f1 (SQuAD-normalised): Denver Broncos|Denver Broncos|...
  coqa               "Context: Once upon a time, in a barn near a farm house, ...\nQ: What color was
                      Cotton?\nA: white\nQ: Where did she live?" → "in a barn"
                     exact_match, f1; one example per question turn, the previous turns in the input
  commonsense_qa     "Question: Where would you find magazines along side many other printed works?
                      \nA. doctor\nB. bookstore\nC. market\nD. train station\nE. mortuary" → "B"
                     accuracy of the letter
  piqa               "Goal: How do I ready a guinea pig cage for it's new occupants?\nA. Provide the
                      guinea pig with a cage full of a few inches of bedding made of ripped paper
                      strips, ...\nB. Provide the guinea pig with a cage full of a few inches of
                      bedding made of ripped jeans material, ..." → "A"
                     accuracy of the letter
  lambada            "... he said, pointing at the door. `` i 'll be back in a" → "minute"
                     accuracy of the first word of the prediction (edge punctuation stripped)
  hellaswag          "Context: Removing ice from car: Then, the man writes over the snow covering the
                      window of a car, and a woman wearing winter clothes smiles. then\nA. , the man
                      adds wax to the windshield and cuts it.\nB. ...\nC. ...\nD. ..." → "D"
                     accuracy of the letter
  web_questions      "Question: what is the name of justin bieber brother?" → "Jazmyn Bieber"
                     exact_match (SQuAD-normalised) against any gold answer: Jazmyn Bieber|Jaxon Bieber
  natural_questions  "Question: where is the world's largest ice sheet located today" → "Antarctica"
                     exact_match against any gold answer: Antarctica|...

All but CommonSenseQA come from TFDS at pinned versions (`TFDS_NAMES`); splits
keep TFDS's names, and `EVAL_SPLITS` names the split each task reports (the
gold-labelled held-out one: CoQA's development set is TFDS's `test`, LAMBADA's
is TFDS's `train`, HellaSwag's `test` has no labels and is not offered).
CommonSenseQA is read from the dataset's own JSONL files in
$SCRATCHPAD_COMMONSENSE_QA_DIR (`train_rand_split.jsonl`, `dev_rand_split.jsonl`)
when its data is first used. On import, `register()` adds the nine Tasks and
`register_spm()` their SentencePiece versions, `*_spm` (the model read when first used).
"""

from __future__ import annotations

import collections
import dataclasses
import decimal
import json
import os
import re
import string
from typing import Callable, Sequence

import numpy as np
import seqio
import tensorflow as tf

from scratchpad.tasks import vocabulary as vocabulary_lib
from scratchpad.tasks.registration import TaskInfo, add_task

DOWNSTREAM_TASKS = ("gsm8k", "squad", "coqa", "commonsense_qa", "piqa", "lambada", "hellaswag",
                    "web_questions", "natural_questions")

HEADLINE_METRICS = {
    "gsm8k": "exact_match", "squad": "exact_match", "coqa": "exact_match", "commonsense_qa": "accuracy",
    "piqa": "accuracy", "lambada": "accuracy", "hellaswag": "accuracy", "web_questions": "exact_match",
    "natural_questions": "exact_match",
}

TFDS_NAMES = {
    "gsm8k": "gsm8k:1.0.0",
    "squad": "squad/v1.1:3.0.0",
    "coqa": "coqa:1.0.0",
    "piqa": "piqa:1.0.0",
    "lambada": "lambada:1.0.0",
    "hellaswag": "hellaswag:1.1.0",
    "web_questions": "web_questions:1.0.0",
    "natural_questions": "natural_questions_open:1.0.0",
}

SPLITS = {
    "gsm8k": ("train", "test"),
    "squad": ("train", "validation"),
    "coqa": ("train", "test"),
    "commonsense_qa": ("train", "validation"),
    "piqa": ("train", "validation"),
    "lambada": ("train", "test"),
    "hellaswag": ("train", "validation"),
    "web_questions": ("train", "test"),
    "natural_questions": ("train", "validation"),
}

EVAL_SPLITS = {
    "gsm8k": "test", "squad": "validation", "coqa": "test", "commonsense_qa": "validation",
    "piqa": "validation", "lambada": "test", "hellaswag": "validation", "web_questions": "test",
    "natural_questions": "validation",
}

COMMONSENSE_QA_ENV = "SCRATCHPAD_COMMONSENSE_QA_DIR"
COMMONSENSE_QA_FILES = {"train": "train_rand_split.jsonl", "validation": "dev_rand_split.jsonl"}

LETTERS = string.ascii_uppercase


# --- Answer normalisation (pure Python; the postprocess functions and metrics use these). ---

_ARTICLES_RE = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def squad_normalize(text: str) -> str:
  """The SQuAD evaluation script's normalisation: lower case, no punctuation, no articles, single spaces."""
  text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
  return " ".join(_ARTICLES_RE.sub(" ", text).split())


# A number: digits with optional thousands commas ("1,234"), an optional sign and decimals.
_NUMBER_RE = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")


def canonical_number(number: str) -> str:
  """"1,234" -> "1234", "72.00" -> "72", "0.50" -> "0.5": equal numbers, equal strings."""
  value = decimal.Decimal(number.replace(",", ""))
  if value == value.to_integral_value():
    return str(int(value))
  return format(value.normalize(), "f")


def gsm8k_answer(text: str) -> str:
  """The final answer of a GSM8k solution: the first number after its last `####`, else its last number.

  "" when there is no number: it never equals a gold answer.
  """
  head, marker, tail = text.rpartition("####")
  if marker:
    numbers = _NUMBER_RE.findall(tail)
    return canonical_number(numbers[0]) if numbers else ""
  numbers = _NUMBER_RE.findall(head + tail)
  return canonical_number(numbers[-1]) if numbers else ""


_LETTER_RE = re.compile(r"\W*([A-Za-z])\b")


def choice_letter(text: str) -> str:
  """The option letter a multiple-choice answer starts with: "B", " (b)", "B. bookstore" -> "B".

  Text that starts with no lone letter is returned stripped, so it matches no option.
  """
  match = _LETTER_RE.match(text)
  return match.group(1).upper() if match else text.strip()


def first_word(text: str) -> str:
  """LAMBADA's answer: the first word, without punctuation at its edges ("minute." -> "minute")."""
  words = text.split()
  return words[0].strip(string.punctuation) if words else ""


def token_f1(prediction: str, gold: str) -> float:
  """SQuAD's token-overlap F1 of two normalised strings, in [0, 1].

  Two empty strings score 1 (SQuAD 2.0's convention), so an exact match always has F1 1.
  """
  pred_tokens, gold_tokens = prediction.split(), gold.split()
  if not pred_tokens or not gold_tokens:
    return float(pred_tokens == gold_tokens)
  common = sum((collections.Counter(pred_tokens) & collections.Counter(gold_tokens)).values())
  if common == 0:
    return 0.0
  precision, recall = common / len(pred_tokens), common / len(gold_tokens)
  return 2 * precision * recall / (precision + recall)


# --- Metrics: fn(targets, predictions) -> {name: %}. A target is a list of gold answers. ---


def _mean_best(targets: Sequence[Sequence[str] | str], predictions: Sequence[str],
               score: Callable[[str, str], float]) -> float:
  """Mean over examples of the best score against any gold answer, in %."""
  if len(targets) != len(predictions):
    raise ValueError(f"{len(targets)} targets but {len(predictions)} predictions")
  total = 0.0
  for golds, prediction in zip(targets, predictions):
    golds = [golds] if isinstance(golds, str) else golds
    total += max((score(prediction, g) for g in golds), default=0.0)
  return 100.0 * total / max(len(targets), 1)


def _exact(prediction: str, gold: str) -> float:
  return float(prediction == gold)


def exact_match(targets, predictions) -> dict[str, float]:
  return {"exact_match": _mean_best(targets, predictions, _exact)}


def f1(targets, predictions) -> dict[str, float]:
  return {"f1": _mean_best(targets, predictions, token_f1)}


def accuracy(targets, predictions) -> dict[str, float]:
  return {"accuracy": _mean_best(targets, predictions, _exact)}


# --- Postprocessing: gold answers for targets, one normalised string for predictions. ---


def gold_answers(example) -> list[str]:
  """The `answers` feature of an example from `get_dataset(...).as_numpy_iterator()`, as text."""
  return [a.decode() if isinstance(a, bytes) else str(a) for a in np.atleast_1d(example["answers"])]


def make_postprocess(normalize: Callable[[str], str]):
  """A seqio postprocess function: targets -> normalised gold answers, predictions -> normalised text.

  Without an example (a target seen alone), the target text itself is the one gold answer.
  """

  def postprocess(text: str, example=None, is_target: bool = False):
    if is_target:
      return [normalize(a) for a in (gold_answers(example) if example is not None else [text])]
    return normalize(text)

  return postprocess


# --- Formatting preprocessors: a TFDS or JSONL record -> {inputs, targets, answers}. ---


def _example(inputs: tf.Tensor, targets: tf.Tensor, answers: tf.Tensor) -> dict[str, tf.Tensor]:
  return {"inputs": inputs, "targets": targets, "answers": tf.reshape(answers, [-1])}


def _options(labels: tf.Tensor, texts: tf.Tensor) -> tf.Tensor:
  """"A. first\nB. second\n...": the options of a multiple-choice question, one a line."""
  return tf.strings.reduce_join(tf.strings.join([labels, ". ", texts]), separator="\n")


def _multiple_choice(question: tf.Tensor, texts: tf.Tensor, label: tf.Tensor) -> dict[str, tf.Tensor]:
  """Options lettered A, B, ... after the question; the target is the letter at index `label`."""
  letters = tf.gather(tf.constant(list(LETTERS)), tf.range(tf.size(texts)))
  letter = tf.gather(letters, label)
  return _example(tf.strings.join([question, "\n", _options(letters, texts)]), letter, letter)


def _valid_label(label: tf.Tensor, num_options: tf.Tensor) -> tf.Tensor:
  # Unlabelled examples (HellaSwag's test split has label -1) cannot be scored.
  label = tf.cast(label, tf.int32)
  return (label >= 0) & (label < num_options) & (num_options <= len(LETTERS))


def _non_empty(strings: tf.Tensor) -> tf.Tensor:
  return tf.size(strings) > 0


def format_gsm8k(dataset: tf.data.Dataset) -> tf.data.Dataset:
  """Target: the whole worked solution, ending in its `#### N` line; gold: N."""
  return dataset.map(lambda ex: _example(tf.strings.join(["Question: ", ex["question"]]), ex["answer"],
                                         tf.strings.strip(ex["short_answer"])),
                     num_parallel_calls=tf.data.AUTOTUNE)


def _short_answer_qa(dataset: tf.data.Dataset, inputs_fn, answers_key: Callable) -> tf.data.Dataset:
  """Target: the first gold answer; examples without one are dropped."""
  dataset = dataset.filter(lambda ex: _non_empty(answers_key(ex)))
  return dataset.map(lambda ex: _example(inputs_fn(ex), answers_key(ex)[0], answers_key(ex)),
                     num_parallel_calls=tf.data.AUTOTUNE)


def format_squad(dataset: tf.data.Dataset) -> tf.data.Dataset:
  return _short_answer_qa(
      dataset,
      lambda ex: tf.strings.join(["Title: ", ex["title"], "\nContext: ", ex["context"],
                                  "\nQuestion: ", ex["question"]]),
      lambda ex: ex["answers"]["text"])


def format_web_questions(dataset: tf.data.Dataset) -> tf.data.Dataset:
  return _short_answer_qa(dataset, lambda ex: tf.strings.join(["Question: ", ex["question"]]),
                          lambda ex: ex["answers"])


def format_natural_questions(dataset: tf.data.Dataset) -> tf.data.Dataset:
  return _short_answer_qa(dataset, lambda ex: tf.strings.join(["Question: ", ex["question"]]),
                          lambda ex: ex["answer"])


def _coqa_turns(story: dict[str, tf.Tensor]) -> tf.data.Dataset:
  """One example per question: the story, the turns before it (question and answer), the question."""
  questions, answers = story["questions"], story["answers"]["input_text"]
  num_turns = tf.minimum(tf.size(questions), tf.size(answers))
  lines = tf.strings.join(["Q: ", questions[:num_turns], "\nA: ", answers[:num_turns]])
  context = tf.strings.join(["Context: ", story["story"], "\n"])

  def turn(i):
    history = tf.concat([lines[:i], tf.strings.join(["Q: ", questions[i:i + 1]])], axis=0)
    return _example(tf.strings.join([context, tf.strings.reduce_join(history, separator="\n")]),
                    answers[i], answers[i])

  return tf.data.Dataset.range(tf.cast(num_turns, tf.int64)).map(turn)


def format_coqa(dataset: tf.data.Dataset) -> tf.data.Dataset:
  return dataset.flat_map(_coqa_turns)


def format_commonsense_qa(dataset: tf.data.Dataset) -> tf.data.Dataset:
  """Options keep the dataset's own labels (A-E); the target is `answerKey`."""
  dataset = dataset.filter(lambda ex: tf.reduce_any(tf.equal(ex["labels"], ex["answerKey"])))
  return dataset.map(
      lambda ex: _example(tf.strings.join(["Question: ", ex["stem"], "\n", _options(ex["labels"], ex["texts"])]),
                          ex["answerKey"], ex["answerKey"]),
      num_parallel_calls=tf.data.AUTOTUNE)


def format_piqa(dataset: tf.data.Dataset) -> tf.data.Dataset:
  dataset = dataset.filter(lambda ex: _valid_label(ex["label"], 2))
  return dataset.map(
      lambda ex: _multiple_choice(tf.strings.join(["Goal: ", ex["goal"]]), tf.stack([ex["sol1"], ex["sol2"]]),
                                  ex["label"]),
      num_parallel_calls=tf.data.AUTOTUNE)


def format_hellaswag(dataset: tf.data.Dataset) -> tf.data.Dataset:
  """The context is the activity label and the context, as the HellaSwag paper's models read it."""
  dataset = dataset.filter(lambda ex: _valid_label(ex["label"], tf.size(ex["endings"])))
  return dataset.map(
      lambda ex: _multiple_choice(tf.strings.join(["Context: ", ex["activity_label"], ": ", ex["context"]]),
                                  ex["endings"], ex["label"]),
      num_parallel_calls=tf.data.AUTOTUNE)


# The passage's last word and what precedes it (RE2 syntax; (?s): `.` crosses newlines).
_LAST_WORD_RE = r"(?s)^.*\s"
_BEFORE_LAST_WORD_RE = r"\s*\S+$"


def format_lambada(dataset: tf.data.Dataset) -> tf.data.Dataset:
  """Input: the passage without its last word; target: that word. One-word passages are dropped."""
  dataset = dataset.map(lambda ex: tf.strings.strip(ex["passage"]))
  dataset = dataset.filter(lambda passage: tf.strings.regex_full_match(passage, r"(?s).*\S\s+\S+"))

  def split(passage):
    word = tf.strings.regex_replace(passage, _LAST_WORD_RE, "")
    return _example(tf.strings.regex_replace(passage, _BEFORE_LAST_WORD_RE, ""), word, word)

  return dataset.map(split, num_parallel_calls=tf.data.AUTOTUNE)


# --- CommonSenseQA from its JSONL files. ---


def commonsense_qa_record(line: str) -> dict:
  """One JSONL line of CommonSenseQA, flattened to the fields `format_commonsense_qa` reads."""
  record = json.loads(line)
  choices = record["question"]["choices"]
  return {"id": record["id"], "stem": record["question"]["stem"], "labels": [c["label"] for c in choices],
          "texts": [c["text"] for c in choices], "answerKey": record.get("answerKey", "")}


def commonsense_qa_path(split: str) -> str:
  """The split's JSONL file under $SCRATCHPAD_COMMONSENSE_QA_DIR; a ValueError says what is missing."""
  directory = os.environ.get(COMMONSENSE_QA_ENV, "")
  path = os.path.join(directory, COMMONSENSE_QA_FILES[split])
  if not directory or not os.path.isfile(path):
    raise ValueError(f"commonsense_qa reads {COMMONSENSE_QA_FILES[split]} from ${COMMONSENSE_QA_ENV}, and "
                     f"{path!r} does not exist: download CommonsenseQA (www.tau-nlp.org/commonsenseqa) and "
                     f"set {COMMONSENSE_QA_ENV} to the folder holding its JSONL files")
  return path


_COMMONSENSE_QA_SIGNATURE = {
    "id": tf.TensorSpec([], tf.string), "stem": tf.TensorSpec([], tf.string),
    "labels": tf.TensorSpec([None], tf.string), "texts": tf.TensorSpec([None], tf.string),
    "answerKey": tf.TensorSpec([], tf.string),
}


def commonsense_qa_dataset(split: str, shuffle_files: bool = False, seed: int | None = None) -> tf.data.Dataset:
  """The split's records, read line by line as the dataset is iterated."""
  del shuffle_files, seed  # one file per split: the Task's shuffle buffer shuffles
  path = commonsense_qa_path(split)

  def records():
    with open(path, encoding="utf-8") as f:
      yield from (commonsense_qa_record(line) for line in f if line.strip())

  return tf.data.Dataset.from_generator(records, output_signature=_COMMONSENSE_QA_SIGNATURE)


# --- Registration. ---


@dataclasses.dataclass(frozen=True)
class DownstreamSpec:
  """How one task is read, formatted, postprocessed and scored."""
  format_fn: Callable[[tf.data.Dataset], tf.data.Dataset]
  normalize: Callable[[str], str]
  metric_fns: tuple[Callable, ...]
  description: str


SPECS = {
    "gsm8k": DownstreamSpec(format_gsm8k, gsm8k_answer, (exact_match,),
                            "GSM8k grade-school maths: worked solution ending '#### N', exact match of N"),
    "squad": DownstreamSpec(format_squad, squad_normalize, (exact_match, f1),
                            "SQuAD v1.1 extractive QA: exact match and F1 against the gold answers"),
    "coqa": DownstreamSpec(format_coqa, squad_normalize, (exact_match, f1),
                           "CoQA conversational QA, one example per turn: exact match and F1"),
    "commonsense_qa": DownstreamSpec(format_commonsense_qa, choice_letter, (accuracy,),
                                     f"CommonSenseQA, 5 options lettered A-E (JSONL from ${COMMONSENSE_QA_ENV})"),
    "piqa": DownstreamSpec(format_piqa, choice_letter, (accuracy,), "PhysicalIQA (PIQA), 2 options lettered A-B"),
    "lambada": DownstreamSpec(format_lambada, first_word, (accuracy,),
                              "LAMBADA: the passage's last word, accuracy of the word"),
    "hellaswag": DownstreamSpec(format_hellaswag, choice_letter, (accuracy,),
                                "HellaSwag sentence completion, 4 endings lettered A-D"),
    "web_questions": DownstreamSpec(format_web_questions, squad_normalize, (exact_match,),
                                    "WebQuestions open QA: exact match against any gold answer"),
    "natural_questions": DownstreamSpec(format_natural_questions, squad_normalize, (exact_match,),
                                        "NaturalQuestions open QA: exact match against any gold answer"),
}


def source(name: str) -> seqio.DataSource:
  if name == "commonsense_qa":
    return seqio.FunctionDataSource(commonsense_qa_dataset, splits=SPLITS[name])
  return seqio.TfdsDataSource(tfds_name=TFDS_NAMES[name], splits=SPLITS[name])


def register(vocabulary: seqio.Vocabulary | None = None, suffix: str = "") -> None:
  """Registers the nine tasks as `{name}{suffix}`, each with its TaskInfo; skips those registered."""
  vocabulary = vocabulary_lib.VOCABULARY if vocabulary is None else vocabulary
  output_features = {"inputs": seqio.Feature(vocabulary, add_eos=True),
                     "targets": seqio.Feature(vocabulary, add_eos=True)}
  for base in DOWNSTREAM_TASKS:
    spec, name = SPECS[base], base + suffix
    postprocess = make_postprocess(spec.normalize)
    if name not in seqio.TaskRegistry.names():
      add_task(
          TaskInfo(name, alphabet=None, max_lengths_fn=lambda: None, answer_fn=postprocess,
                   description=spec.description, headline_metric=HEADLINE_METRICS[base]),
          source=source(base),
          preprocessors=[spec.format_fn, seqio.preprocessors.tokenize, seqio.preprocessors.append_eos_after_trim],
          output_features=output_features,
          postprocess_fn=postprocess,
          metric_fns=list(spec.metric_fns),
          shuffle_buffer_size=10_000,
      )


def register_spm() -> None:
  """The nine tasks over the SentencePiece vocabulary of $SCRATCHPAD_SPM (loaded when first used), as `*_spm`."""
  register(vocabulary_lib.spm_vocabulary(), suffix="_spm")


register()
register_spm()
