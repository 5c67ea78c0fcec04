"""The seqio Tasks: registration, features, splits and the packed loss weights."""

import numpy as np
import pytest
import seqio

import scratchpad.tasks
from conftest import on_task
from scratchpad import config as config_lib
from scratchpad import errors
from scratchpad.tasks import addition, get_task_info, pause_tasks, registration
from scratchpad.train import input_pipeline

SMALL = {"inputs": 10, "targets": 32}


@pytest.mark.parametrize("name,sizes", [("addition_direct", (100_000, 10_000, 1_000)),
                                        ("addition_scratchpad", (100_000, 10_000, 1_000))])
def test_paper_tasks_are_registered_with_their_splits(name, sizes):
  task = seqio.get_mixture_or_task(name)
  assert [task.num_input_examples(s) for s in ("train", "test", "ood")] == list(sizes)
  assert set(task.output_features) == {"inputs", "targets"}
  info = get_task_info(name)
  assert info.max_lengths["ood"]["inputs"] > info.max_lengths["test"]["inputs"]


def test_examples_keep_pretokenized_text_and_match_the_format():
  ds = seqio.get_mixture_or_task("addition_scratchpad_1to2").get_dataset(
      sequence_length=None, split="test", shuffle=False, trim_output_features=False)
  for ex in ds.take(20).as_numpy_iterator():
    inputs = ex["inputs_pretokenized"].decode()
    a, b = (int(x.replace(" ", "")) for x in inputs.split(" + "))
    assert ex["targets_pretokenized"].decode() == addition.scratchpad_target(a, b)
    assert ex["inputs"].tolist() == scratchpad.tasks.VOCABULARY.encode(inputs) + [1]  # eos ends the input


def test_unknown_task_is_a_clear_error():
  with pytest.raises(ValueError, match="unknown task 'addition_multiply'"):
    get_task_info("addition_multiply")


def test_a_split_without_examples_is_a_clear_error():
  name = "test_tasks_empty_split"
  registration.register_task(name, lambda split: [("1", "1")] if split == "train" else [],
                             splits={"train": 1, "test": 0}, alphabet="1", answer_fn=str.strip, description="empty test")
  try:
    with pytest.raises(errors.InputError, match=f"task {name} has no examples in split 'test'"):
      get_task_info(name).max_lengths
  finally:
    seqio.TaskRegistry.remove(name)


def test_zero_lengths_take_the_longest_example(make_config):
  cfg = make_config("scratchpad", data__inputs_length=0, data__targets_length=0)
  cfg.task = "addition_scratchpad_1to4"
  input_pipeline.resolve_lengths(get_task_info(cfg.task), cfg.data)
  n = 9999  # the longest 1-4 digit example: all nines, a carry in every column
  assert cfg.data.inputs_length == len(addition.addition_input(n, n)) + 1
  assert cfg.data.targets_length == len(scratchpad.tasks.VOCABULARY.encode(addition.scratchpad_target(n, n))) + 1


def test_lengths_that_would_trim_are_rejected(make_config):
  cfg = make_config("scratchpad", data__targets_length=20)
  with pytest.raises(ValueError, match="targets_length=20 is shorter"):
    input_pipeline.resolve_lengths(get_task_info(cfg.task), cfg.data)


def test_packed_loss_weights_are_zero_on_inputs_and_padding(make_config):
  cfg = make_config("direct")
  on_task(cfg, "addition_direct_1to2")
  cfg.data.targets_length = 24  # room to pack several examples in a row
  ds = input_pipeline.host_dataset(cfg.task, cfg.data, local_batch_size=4, seed=0)
  batch = next(ds.as_numpy_iterator())
  tokens, weights, segments = (batch[k] for k in ("decoder_target_tokens", "decoder_loss_weights",
                                                   "decoder_segment_ids"))
  assert segments.max() > 1, "examples should be packed"
  assert not weights[segments == 0].any(), "padding carries loss"
  for row in range(tokens.shape[0]):
    for seg in set(segments[row][segments[row] > 0]):
      where = np.flatnonzero(segments[row] == seg)
      seq, w = tokens[row, where].tolist(), weights[row, where].tolist()
      input_length = seq.index(1) + 1  # the input ends with its eos
      assert w[:input_length] == [0] * input_length, "inputs carry loss"
      assert all(w[input_length:]), "every target token carries loss"


@pytest.mark.parametrize("spec", [
    "addition.py:direct,paper", "addition.py:scratchpad,paper", "addition.py:direct,laptop",
    "addition.py:scratchpad,laptop", "polynomial.py:direct", "polynomial.py:scratchpad",
    "programs.py:direct,paper", "programs.py:scratchpad,paper", "pause.py:PausePT,text", "pause.py:StdPT,text",
    "pause.py:PausePT_PauseFT,addition", "pause.py:StdPT_StdFT,polynomial", "pause.py:PausePT_PauseFT,digit_sum"])
def test_every_shipped_config_fits_its_task(spec):
  from conftest import ROOT
  cfg = config_lib.load_config_file(f"{ROOT / 'configs' / spec}")
  input_pipeline.resolve_lengths(get_task_info(pause_tasks.train_task(cfg)), cfg.data)
  assert cfg.data.targets_length > 0 and (cfg.data.inputs_length > 0) == ("text" not in spec)
  assert cfg.data.inputs_length + cfg.data.targets_length <= cfg.model.max_length


def test_the_polynomial_configs_name_their_data_and_vocabulary():
  from conftest import ROOT
  load = lambda arg: config_lib.load_config_file(f"{ROOT / 'configs' / 'polynomial.py'}:{arg}").task
  assert load("direct") == "polynomial_direct"
  assert load("scratchpad,symbols,large") == "polynomial_large_scratchpad_symbols"
  assert seqio.get_mixture_or_task(load("direct,large")).num_input_examples("train") == 100_000


def test_unknown_variant_is_a_clear_error():
  from conftest import ROOT
  with pytest.raises(ValueError, match="unknown variant 'huge' in configs/polynomial.py"):
    config_lib.load_config_file(f"{ROOT / 'configs' / 'polynomial.py'}:direct,huge")
