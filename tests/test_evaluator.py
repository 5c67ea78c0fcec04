"""Evaluation: batching never changes a completion, the metrics read answers right, and every
task split has the lengths the decoder needs."""

import json

import numpy as np
import pytest
import seqio
from flax import nnx

from scratchpad.evaluation import evaluator
from scratchpad.model import transformer
from scratchpad.tasks import addition, get_task_info, programs, task_names, with_pauses
from scratchpad.tasks.registration import accuracy_metrics
from scratchpad.tasks.vocabulary import token_length
from scratchpad.train import input_pipeline


def test_batched_generation_equals_one_at_a_time():
  cfg = transformer.ModelConfig(vocab_size=264, num_layers=2, d_model=32, num_heads=2, mlp_dim=64)
  graphdef, state = nnx.split(transformer.Transformer(cfg, nnx.Rngs(4)), nnx.Param)
  params = nnx.to_pure_dict(state)
  rng = np.random.default_rng(0)
  prompts = [evaluator.prompt_ids(rng.integers(6, 264, n).tolist() + [1]) for n in (7, 2, 5, 9, 3, 4, 8)]
  batched = evaluator.generate(graphdef, params, prompts, 11, 12, batch_size=3)
  alone = [evaluator.generate(graphdef, params, [p], 11, 12, batch_size=1)[0] for p in prompts]
  assert batched == alone
  assert len(set(batched)) > 1


def test_metrics_score_the_answer_after_the_scratchpad():
  metric_fn = accuracy_metrics(addition.final_answer)
  right = addition.scratchpad_target(29, 57)
  wrong_steps_right_answer = right.replace("2 + 5 , 6 C: 1", "2 + 5 , 7 C: 1")
  wrong_answer = right[:-1] + "7"
  metrics = metric_fn([right] * 4, [right, wrong_steps_right_answer, wrong_answer, ""])
  assert metrics == {"answer_accuracy": 50.0, "sequence_accuracy": 25.0}


# Building every split of these takes a minute or more on 2 cores (10,000 traced programs,
# 100,000 polynomials), and so does writing out a split of more than 20,000 examples of every
# addition task: they are checked with `pytest -m slow`.
SLOW_TO_BUILD = ("polynomial_large_", "programs_large_", "single_line_")
LARGE_SPLIT = 20_000
# Tasks with pauses, registered on first use (`with_pauses`): what the evaluator decodes after pause training.
WITH_PAUSES = {"digit_sum_appended10": ("digit_sum", 10, False),
               "addition_direct_1to2_prepended3": ("addition_direct_1to2", 3, True)}
CHECKED = 2_000  # examples per split whose tokens are counted: the first ones
# MBPP is read from a file ($SCRATCHPAD_MBPP): a small one, with a problem in each of its splits.
MBPP_LINES = [{"task_id": 12, "code": "def div(a, b):\n    return a // b", "test_list": ["assert div(4, 2) == 2"]},
              {"task_id": 520, "code": "def add(a, b):\n    c = a + b\n    return c",
               "test_list": ["assert add(1, 2) == 3", "assert add(10, 20) == 30"]},
              {"task_id": 700, "code": "def sq(x):\n    return x * x", "test_list": ["assert sq(3) == 9"]}]


def task_splits():
  """(task, split) of every registered task and the WITH_PAUSES ones (their base's splits)."""
  params = []
  for name in task_names() + list(WITH_PAUSES):
    source = seqio.get_mixture_or_task(WITH_PAUSES.get(name, (name,))[0]).source
    for split in source.splits:
      size = source.num_input_examples(split) if isinstance(source, seqio.FunctionDataSource) else None
      slow = name.startswith(SLOW_TO_BUILD) or (size or 0) > LARGE_SPLIT
      params.append(pytest.param(name, split, id=f"{name}:{split}", marks=[pytest.mark.slow] if slow else []))
  return params


def split_texts(info, task, split: str) -> list[tuple[str, str]]:
  """(input, target) texts of a split's first CHECKED examples, as the task's source gives them."""
  if info.examples_fn:
    return info.examples_fn(split)[:CHECKED]
  rows = task.source.get_dataset(split, shuffle=False).take(CHECKED).as_numpy_iterator()
  return [(row.get("inputs", b"").decode(), row["targets"].decode()) for row in rows]


@pytest.mark.parametrize("name,split", task_splits())
def test_every_task_split_has_lengths_for_the_decoder(name, split, tmp_path, monkeypatch, make_config):
  """The evaluator decodes a split's longest target (`max_lengths[split]["targets"]`), and the
  trainer sizes rows by its longest input: every split of every task has both, and no example
  of the split (eos and pauses included) is longer. Corpora too big to measure have none, and
  then the config's lengths are the ones used (and required)."""
  if name in WITH_PAUSES:
    base, pauses, prepend = WITH_PAUSES[name]
    assert with_pauses(base, appended=pauses, prepend=prepend) == name
  info, task = get_task_info(name), seqio.get_mixture_or_task(name)
  if name.startswith("mbpp_"):
    path = tmp_path / "mbpp.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in MBPP_LINES))
    monkeypatch.setenv(programs.MBPP_ENV, str(path))
    monkeypatch.setitem(info.__dict__, "max_lengths", None)  # undone after the test: what is measured here is
    del info.__dict__["max_lengths"]                          # forgotten, with the file
  lengths = info.max_lengths
  if lengths is None:
    assert info.examples_fn is None, "examples held in memory can be measured"
    cfg = make_config()
    cfg.task = name
    with pytest.raises(ValueError, match="too big to measure: set data.targets_length"):
      input_pipeline.resolve_lengths(info, cfg.data, split)
    cfg.data.targets_length = 77
    assert evaluator.decode_limit(cfg, name) == 77
    return
  assert evaluator.decode_limit(make_config(), name) == 0, "0: each split's own longest target"
  assert set(lengths) == set(task.splits)
  assert set(lengths[split]) == {"inputs", "targets"}
  features = task.output_features
  texts = split_texts(info, task, split)
  assert texts, f"{split} has no examples"
  longest = {"inputs": max(token_length(i, features["inputs"].vocabulary) for i, _ in texts) + info.num_pauses
                       if "inputs" in features else 0,
             "targets": max(token_length(t, features["targets"].vocabulary) for _, t in texts)}
  assert longest["targets"] >= 2, "a target token and the eos"
  for feature in ("inputs", "targets"):
    assert isinstance(lengths[split][feature], int) and lengths[split][feature] >= longest[feature], (
        feature, lengths[split], longest)
  if "inputs" not in features:
    assert lengths[split]["inputs"] == 0, "a text task has no inputs"
  if name in WITH_PAUSES:
    assert lengths[split] == {"inputs": get_task_info(base).max_lengths[split]["inputs"] + pauses,
                              "targets": get_task_info(base).max_lengths[split]["targets"]}


def test_the_longest_addition_target_is_the_all_nines_scratchpad():
  info = get_task_info("addition_scratchpad_1to4")
  longest = addition.scratchpad_target(9999, 9999)
  assert info.max_lengths["test"]["targets"] == len(longest) - len("<scratch>") - len("</scratch>") + 2 + 1


def test_accuracy_by_length_counts_the_longer_operand():
  """By hand: 3 + 45 (2 digits) right, 123 + 4 (3) wrong, 7 + 8 (1) right, 12 + 34 (2) wrong."""
  info = get_task_info("addition_scratchpad_1to3")
  pairs = [(3, 45), (123, 4), (7, 8), (12, 34)]
  inputs = [addition.addition_input(a, b) for a, b in pairs]
  targets = [addition.scratchpad_target(a, b) for a, b in pairs]
  predictions = [targets[0], targets[1][:-1] + "8", targets[2], "<scratch>\n</scratch>\n4 7"]
  assert evaluator.accuracy_by_count(info, inputs, targets, predictions) == {"1": 100.0, "2": 50.0, "3": 0.0}
  assert info.breakdown.trained == (1, 3)


def test_accuracy_by_terms_of_a_polynomial():
  info = get_task_info("polynomial_direct")
  inputs = ["Evaluate 3*x + 1 at x = 2", "Evaluate 5 at x = 0", "Evaluate -1*x**3 + 2*x + 4 at x = 1"]
  assert evaluator.accuracy_by_count(info, inputs, ["total: 7", "total: 5", "total: 5"],
                                     ["total: 7", "total: 4", "total: 5"]) == {"1": 0.0, "2": 100.0, "3": 100.0}
