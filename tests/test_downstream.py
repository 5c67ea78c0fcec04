"""The pause paper's downstream tasks: formats, gold answers and metrics, on mocked TFDS data.

TFDS is mocked offline (`MockPolicy.USE_CODE`: features from the builders' code,
no metadata files) with a few hand-written records per dataset, so formats and
metrics are checked on realistic text; CommonSenseQA reads a JSONL file written
here. Scoring follows the evaluator's contract: postprocess targets with their
example, postprocess predictions, then call every metric function.
"""

from __future__ import annotations

import json

import hypothesis
import numpy as np
import pytest
import seqio
import tensorflow as tf
import tensorflow_datasets as tfds
from hypothesis import strategies as st

from scratchpad.tasks import downstream
from scratchpad.tasks import get_task_info, task_names, with_pauses
from scratchpad.tasks.vocabulary import EOS_ID, PAUSE_ID, VOCABULARY

downstream.register()

# Hand-written records per TFDS builder, in its features' structure.
GSM8K = {"question": "A shop sells 617 pens a day. How many pens does it sell in 2 days?",
         "answer": "It sells 617 * 2 = <<617*2=1234>>1,234 pens.\n#### 1,234",
         "annotation": "It sells 617 * 2 = <<617*2=1234>>1,234 pens.\n", "short_answer": "1,234"}
SQUAD = {"id": "56be4db0acb8001400a502ec", "title": "Super_Bowl_50",
         "context": "The American Football Conference (AFC) champion Denver Broncos defeated the Carolina Panthers.",
         "question": "Which NFL team represented the AFC at Super Bowl 50?",
         "answers": {"text": ["Denver Broncos", "the Denver Broncos"], "answer_start": [48, 44]}}
COQA = {"source": "mctest", "story": "Cotton was a white kitten who lived in a barn.",
        "questions": ["What color was Cotton?", "Where did she live?", "Was she a cat?"],
        "answers": {"input_text": ["white", "in a barn", "a kitten"], "answer_start": [13, 36, 13],
                    "answer_end": [18, 45, 25]}}
PIQA = {"id": "piqa-1", "goal": "How do I ready a guinea pig cage?",
        "sol1": "Fill it with bedding made of ripped paper strips.", "sol2": "Fill it with ripped jeans.", "label": 0}
LAMBADA = {"passage": "he opened the cab door and sat down . `` where to ? '' asked the driver\n"}
HELLASWAG = {"context": "the man writes over the snow covering the window of a car. then", "activity_label":
             "Removing ice from car", "endings": [", the man adds wax.", ", a woman trims her hair.",
                                                  ", the man sits down.", ", the man continues removing the snow."],
             "label": 3, "split_type": "indomain", "source_id": "activitynet~v_-1IBHYS3L-Y"}
WEB_QUESTIONS = {"url": "http://www.freebase.com/view/en/justin_bieber",
                 "question": "what is the name of justin bieber brother?",
                 "answers": ["Jazmyn Bieber", "Jaxon Bieber"]}
NATURAL_QUESTIONS = {"question": "where is the world's largest ice sheet located today",
                     "answer": ["Antarctica", "the Antarctic"]}

RECORDS = {
    "gsm8k": [GSM8K],
    "squad": [SQUAD],
    "coqa": [COQA],
    "piqa": [PIQA, {**PIQA, "id": "piqa-2", "label": 1}],
    "lambada": [LAMBADA, {"passage": "lonely\n"}],  # a one-word passage has no context: dropped
    "hellaswag": [HELLASWAG, {**HELLASWAG, "label": -1}],  # unlabelled (as in its test split): dropped
    "web_questions": [WEB_QUESTIONS, {**WEB_QUESTIONS, "answers": []}],  # no gold answer: dropped
    "natural_questions_open": [NATURAL_QUESTIONS],
}

# Per task: the first example's inputs and targets, the number of examples.
EXPECTED = {
    "gsm8k": ("Question: " + GSM8K["question"], GSM8K["answer"], 1),
    "squad": ("Title: Super_Bowl_50\nContext: " + SQUAD["context"] + "\nQuestion: " + SQUAD["question"],
              "Denver Broncos", 1),
    "coqa": ("Context: " + COQA["story"] + "\nQ: What color was Cotton?", "white", 3),
    "piqa": ("Goal: How do I ready a guinea pig cage?\nA. " + PIQA["sol1"] + "\nB. " + PIQA["sol2"], "A", 2),
    "lambada": ("he opened the cab door and sat down . `` where to ? '' asked the", "driver", 1),
    "hellaswag": ("Context: Removing ice from car: " + HELLASWAG["context"] + "\nA. , the man adds wax.\n"
                  "B. , a woman trims her hair.\nC. , the man sits down.\nD. , the man continues removing the snow.",
                  "D", 1),
    "web_questions": ("Question: " + WEB_QUESTIONS["question"], "Jazmyn Bieber", 1),
    "natural_questions": ("Question: " + NATURAL_QUESTIONS["question"], "Antarctica", 1),
}

WRONG = "zzz 987654321"  # no task's gold answer: no letter, word, number or token in common


def _as_dataset(builder, split, decoders=None, read_config=None, **kwargs):
  """Replaces TFDS's reader: the builder's records, typed by its own features."""
  del split, decoders, read_config, kwargs
  records = RECORDS[builder.name]
  return tf.data.Dataset.from_generator(lambda: iter(records),
                                        output_signature=builder.info.features.get_tensor_spec())


@pytest.fixture
def mock_tfds(monkeypatch):
  # A USE_CODE mock has no split sizes: seqio asks for them only to decide on caching.
  monkeypatch.setattr(seqio.TfdsDataSource, "num_input_examples", lambda self, split: None)
  with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE, as_dataset_fn=_as_dataset):
    yield


def examples(name: str, split: str) -> list[dict]:
  task = seqio.get_mixture_or_task(name)
  ds = task.get_dataset(split=split, sequence_length=None, shuffle=False, trim_output_features=False)
  return list(ds.as_numpy_iterator())


def score(name: str, exs: list[dict], predict) -> dict[str, float]:
  """The evaluator's contract: postprocessed gold answers and predictions through every metric."""
  task = seqio.get_mixture_or_task(name)
  targets = [task.postprocess_fn(ex["targets_pretokenized"].decode(), example=ex, is_target=True) for ex in exs]
  predictions = [task.postprocess_fn(predict(ex), example=ex, is_target=False) for ex in exs]
  metrics = {}
  for metric_fn in task.metric_fns:
    metrics.update(metric_fn(targets, predictions))
  return metrics


def check_tokens(ex: dict) -> None:
  for feature in ("inputs", "targets"):
    ids = ex[feature]
    assert ids.dtype == np.int32 and ids.size > 1 and ids[-1] == EOS_ID and (ids[:-1] != EOS_ID).all()
    assert VOCABULARY.decode(ids[:-1].tolist()) == ex[f"{feature}_pretokenized"].decode()


def check_metrics(name: str, exs: list[dict]) -> None:
  metrics = downstream.HEADLINE_METRICS[name]
  gold = score(name, exs, lambda ex: ex["targets_pretokenized"].decode())
  wrong = score(name, exs, lambda ex: WRONG)
  assert metrics in gold and set(gold.values()) == {100.0}, gold
  assert set(wrong.values()) == {0.0}, wrong


def test_register_is_idempotent_and_records_task_info():
  before = set(seqio.TaskRegistry.names())
  downstream.register()
  assert set(seqio.TaskRegistry.names()) == before
  assert set(downstream.DOWNSTREAM_TASKS) <= before
  for name in downstream.DOWNSTREAM_TASKS:
    info = get_task_info(name)
    assert info.headline_metric == downstream.HEADLINE_METRICS[name] in ("exact_match", "accuracy")
    assert info.max_lengths is None and info.alphabet is None
    assert downstream.EVAL_SPLITS[name] in seqio.get_mixture_or_task(name).splits
  assert get_task_info("squad").answer_fn(" The Denver Broncos.") == "denver broncos"
  assert get_task_info("gsm8k").answer_fn("so 2 + 3 = 5 apples") == "5"


def test_register_spm_needs_no_model_until_used(monkeypatch):
  monkeypatch.delenv("SCRATCHPAD_SPM", raising=False)
  downstream.register_spm()
  downstream.register_spm()
  for name in downstream.DOWNSTREAM_TASKS:
    assert f"{name}_spm" in seqio.TaskRegistry.names() and f"{name}_spm" in task_names()


@pytest.mark.parametrize("name", [n for n in downstream.DOWNSTREAM_TASKS if n != "commonsense_qa"])
def test_tfds_task_formats_and_scores(name, mock_tfds):
  exs = examples(name, downstream.EVAL_SPLITS[name])
  inputs, targets, count = EXPECTED[name]
  assert len(exs) == count
  assert exs[0]["inputs_pretokenized"].decode() == inputs
  assert exs[0]["targets_pretokenized"].decode() == targets
  for ex in exs:
    check_tokens(ex)
  check_metrics(name, exs)


def test_every_split_reads(mock_tfds):
  for name in downstream.TFDS_NAMES:
    for split in downstream.SPLITS[name]:
      assert examples(name, split), (name, split)


def test_random_mock_records_do_not_break_the_pipelines(monkeypatch):
  """TFDS's random records (empty answer lists, labels out of range) are dropped, never crash a task."""
  monkeypatch.setattr(seqio.TfdsDataSource, "num_input_examples", lambda self, split: None)
  with tfds.testing.mock_data(num_examples=3, policy=tfds.testing.MockPolicy.USE_CODE):
    for name in downstream.TFDS_NAMES:
      for ex in examples(name, downstream.EVAL_SPLITS[name]):
        check_tokens(ex)


def test_gsm8k_scores_the_final_number(mock_tfds):
  exs = examples("gsm8k", "test")
  assert downstream.gold_answers(exs[0]) == ["1,234"]
  for prediction, expected in [("#### 1234", 100.0), ("617 * 2 = 1234 so #### 1,234.", 100.0),
                               ("617 * 2 = 1,234", 100.0), ("#### 1,234.00", 100.0), ("#### 1,235", 0.0),
                               ("1,234 is wrong, #### 617", 0.0), ("no idea", 0.0)]:
    assert score("gsm8k", exs, lambda ex: prediction) == {"exact_match": expected}, prediction


def test_short_answer_qa_counts_any_gold_answer(mock_tfds):
  assert score("web_questions", examples("web_questions", "test"), lambda ex: "jaxon bieber.") == {
      "exact_match": 100.0}
  squad = examples("squad", "validation")
  assert score("squad", squad, lambda ex: "Broncos") == {"exact_match": 0.0, "f1": pytest.approx(200 / 3)}
  assert score("natural_questions", examples("natural_questions", "validation"),
               lambda ex: "Antarctic") == {"exact_match": 100.0}


def test_coqa_input_holds_the_story_and_previous_turns(mock_tfds):
  exs = examples("coqa", "test")
  assert [ex["targets_pretokenized"].decode() for ex in exs] == ["white", "in a barn", "a kitten"]
  assert exs[2]["inputs_pretokenized"].decode() == (
      "Context: Cotton was a white kitten who lived in a barn.\nQ: What color was Cotton?\nA: white\n"
      "Q: Where did she live?\nA: in a barn\nQ: Was she a cat?")
  # "kitten" against "a kitten": normalised "kitten" both, an exact match.
  assert score("coqa", exs[2:], lambda ex: "Kitten") == {"exact_match": 100.0, "f1": 100.0}


def test_multiple_choice_reads_the_letter(mock_tfds):
  exs = examples("piqa", "validation")
  assert [ex["targets_pretokenized"].decode() for ex in exs] == ["A", "B"]
  assert score("piqa", exs, lambda ex: " (a) fill it with bedding") == {"accuracy": 50.0}
  assert score("hellaswag", examples("hellaswag", "validation"), lambda ex: "D. , the man continues") == {
      "accuracy": 100.0}


def test_lambada_scores_the_first_word(mock_tfds):
  exs = examples("lambada", "test")
  assert score("lambada", exs, lambda ex: " driver. and then") == {"accuracy": 100.0}
  assert score("lambada", exs, lambda ex: "drivers") == {"accuracy": 0.0}


# CommonSenseQA from its own JSONL files.

def csqa_record(i: int, answer: str) -> dict:
  return {"id": f"q{i}", "answerKey": answer,
          "question": {"question_concept": "magazines", "stem": f"Question number {i}?",
                       "choices": [{"label": label, "text": f"option {label.lower()}{i}"} for label in "ABCDE"]}}


@pytest.fixture
def csqa_dir(tmp_path, monkeypatch):
  records = [csqa_record(0, "B"), csqa_record(1, "E"), csqa_record(2, "A")]
  for file in downstream.COMMONSENSE_QA_FILES.values():
    (tmp_path / file).write_text("".join(json.dumps(r) + "\n" for r in records))
  monkeypatch.setenv(downstream.COMMONSENSE_QA_ENV, str(tmp_path))
  return tmp_path


def test_commonsense_qa_from_jsonl(csqa_dir):
  exs = examples("commonsense_qa", "validation")
  assert [ex["targets_pretokenized"].decode() for ex in exs] == ["B", "E", "A"]
  assert exs[1]["inputs_pretokenized"].decode() == (
      "Question: Question number 1?\nA. option a1\nB. option b1\nC. option c1\nD. option d1\nE. option e1")
  for ex in exs:
    check_tokens(ex)
  check_metrics("commonsense_qa", exs)
  assert score("commonsense_qa", exs, lambda ex: "B") == {"accuracy": pytest.approx(100 / 3)}
  assert len(examples("commonsense_qa", "train")) == 3


def test_commonsense_qa_without_its_files_names_the_variable(tmp_path, monkeypatch):
  for env in ("", str(tmp_path)):  # unset, then a folder without the files
    monkeypatch.setenv(downstream.COMMONSENSE_QA_ENV, env)
    with pytest.raises(ValueError, match=downstream.COMMONSENSE_QA_ENV):
      examples("commonsense_qa", "train")


# The metric functions themselves.

def test_squad_normalisation():
  assert downstream.squad_normalize("The  Denver-Broncos!") == "denverbroncos"
  assert downstream.squad_normalize(" An apple, a day; THE end.") == "apple day end"
  assert downstream.squad_normalize("Theatre and anthem") == "theatre and anthem"  # articles only as words


def test_f1_on_a_partial_overlap():
  # "denver broncos won" vs "denver broncos": 2 tokens shared, precision 2/3, recall 1, F1 = 2*(2/3)/(5/3) = 0.8.
  pred, gold = downstream.squad_normalize("Denver Broncos won."), downstream.squad_normalize("the Denver Broncos")
  assert downstream.f1([[gold]], [pred]) == {"f1": pytest.approx(80.0)}
  # Repeated tokens count once per match: "x x y" vs "x z" -> shared 1, P 1/3, R 1/2, F1 0.4.
  assert downstream.token_f1("x x y", "x z") == pytest.approx(0.4)
  # The best gold answer counts: "denver" vs "broncos" 0, vs "denver broncos" P 1 R 1/2 -> 2/3.
  assert downstream.f1([["broncos", "denver broncos"]], ["denver"]) == {"f1": pytest.approx(200 / 3)}
  assert downstream.exact_match([["x"], ["y", "z"]], ["x", "z"]) == {"exact_match": 100.0}
  assert downstream.accuracy([["A"], ["B"]], ["A", "C"]) == {"accuracy": 50.0}


@pytest.mark.parametrize("text, number", [
    ("#### 1,234", "1234"), ("She has 1,234,567 marbles.\n#### 1,234,567", "1234567"), ("#### -12", "-12"),
    ("costs $3.50 each, so 7.00", "7"), ("#### 0.50", "0.5"), ("#### 72\nThen 5 more", "72"),
    ("he ran 3 km, 12 km and 40 km", "40"), ("no number", ""), ("####", ""),
])
def test_gsm8k_number_extraction(text, number):
  assert downstream.gsm8k_answer(text) == number


def test_answer_extraction_of_letters_and_words():
  assert [downstream.choice_letter(t) for t in ["B", " (c) text", "d.", "Bookstore", ""]] == [
      "B", "C", "D", "Bookstore", ""]
  assert [downstream.first_word(t) for t in [" driver.", "``door''", "", "two words"]] == [
      "driver", "door", "", "two"]


_TEXT = st.text(alphabet="ab ,.!The", max_size=12)


@hypothesis.given(_TEXT)
def test_f1_and_exact_match_of_a_string_with_itself_are_100(text):
  normalised = downstream.squad_normalize(text)
  assert downstream.f1([[normalised]], [normalised]) == {"f1": 100.0}
  assert downstream.exact_match([[normalised]], [normalised]) == {"exact_match": 100.0}


@hypothesis.given(_TEXT, _TEXT)
def test_exact_match_implies_full_f1(prediction, gold):
  pred, gold = downstream.squad_normalize(prediction), downstream.squad_normalize(gold)
  em, f1 = downstream.exact_match([[gold]], [pred])["exact_match"], downstream.f1([[gold]], [pred])["f1"]
  assert 0.0 <= em <= f1 <= 100.0
  assert em == 0.0 or f1 == 100.0
  assert downstream.token_f1(pred, gold) == pytest.approx(downstream.token_f1(gold, pred))


@hypothesis.given(st.text(max_size=40))
def test_squad_normalisation_is_idempotent(text):
  once = downstream.squad_normalize(text)
  assert downstream.squad_normalize(once) == once


@hypothesis.given(st.integers(-10**9, 10**9))
def test_gsm8k_numbers_with_commas(n):
  assert downstream.gsm8k_answer(f"#### {n:,}") == str(n)
  assert downstream.gsm8k_answer(f"The answer is {n:,}.") == str(n)


def test_pause_finetuning_variant_keeps_gold_answers(mock_tfds):
  """`with_pauses` derives a task with M pauses after the input; scoring is unchanged."""
  name = with_pauses("squad", appended=3)
  exs = examples(name, "validation")
  assert exs[0]["inputs"][-4:].tolist() == [EOS_ID] + [PAUSE_ID] * 3
  assert score(name, exs, lambda ex: "Denver Broncos") == {"exact_match": 100.0, "f1": 100.0}
