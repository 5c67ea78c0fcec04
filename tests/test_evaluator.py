"""Evaluation: batching never changes a completion, and the metrics read answers right."""

import numpy as np
from flax import nnx

from scratchpad.evaluation import evaluator
from scratchpad.model import transformer
from scratchpad.tasks import addition, get_task_info
from scratchpad.tasks.registration import accuracy_metrics


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


def test_every_task_split_has_lengths_for_the_decoder():
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
