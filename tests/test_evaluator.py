"""Evaluation: batching never changes a completion, and the metrics read answers right."""

import numpy as np
from flax import nnx

from scratchpad.evaluation import evaluator
from scratchpad.model import transformer
from scratchpad.tasks import addition, get_task_info
from scratchpad.tasks.registry import accuracy_metrics


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
