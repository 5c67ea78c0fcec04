"""Pause tokens: the preprocessors, the loss mask, pause tasks, warm starts and the study."""

import json
import re

import jax
import numpy as np
import pytest
import seqio
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT, table_rows
from scratchpad import config as config_lib
from scratchpad import report
from scratchpad.tasks import get_task_info, pause_tasks, pauses, with_pauses
from scratchpad.tasks.vocabulary import EOS_ID, PAUSE_ID
from scratchpad.train import input_pipeline

PAUSE_CONFIG = str(ROOT / "configs" / "pause.py")


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(10, 200), max_size=60), st.sampled_from([0.1, 0.25, 0.5]), st.integers(0, 2**16))
def test_inserted_pauses_keep_length_and_order(tokens, fraction, seed):
  out = pauses.insert_ids(tf.constant(tokens, tf.int32), PAUSE_ID, fraction, tf.constant([seed, 1])).numpy()
  assert len(out) == len(tokens)
  kept = [t for t in out if t != PAUSE_ID]
  assert kept == tokens[:len(kept)], "non-pause tokens stay in order; only the tail is trimmed"
  assert len(out) - len(kept) <= round(fraction * len(tokens))
  again = pauses.insert_ids(tf.constant(tokens, tf.int32), PAUSE_ID, fraction, tf.constant([seed, 1])).numpy()
  np.testing.assert_array_equal(out, again)


def test_inserted_pauses_are_spread_uniformly():
  """Over many seeds every position is a pause about equally often."""
  n, fraction, seeds = 50, 0.2, 400
  counts = np.zeros(n)
  for s in range(seeds):
    counts += pauses.insert_ids(tf.range(10, 10 + n), PAUSE_ID, fraction, tf.constant([s, 0])).numpy() == PAUSE_ID
  rate = counts / seeds
  # k = 10 of 60 slots are pauses, then 50 kept: each position is a pause with probability 1/6.
  assert abs(rate.mean() - 1 / 6) < 0.02
  assert rate.min() > 0.08 and rate.max() < 0.27


@pytest.mark.parametrize("prepend", [False, True])
def test_pause_task_appends_m_pauses_after_the_eos(prepend):
  name = with_pauses("digit_sum", appended=7, prepend=prepend)
  base = next(seqio.get_mixture_or_task("digit_sum").get_dataset(None, split="test", shuffle=False)
              .as_numpy_iterator())["inputs"].tolist()
  ex = next(seqio.get_mixture_or_task(name).get_dataset(None, split="test", shuffle=False).as_numpy_iterator())
  assert base[-1] == EOS_ID
  assert ex["inputs"].tolist() == ([PAUSE_ID] * 7 + base if prepend else base + [PAUSE_ID] * 7)
  info, base_info = get_task_info(name), get_task_info("digit_sum")
  assert info.max_lengths["train"]["inputs"] == base_info.max_lengths["train"]["inputs"] + 7
  assert (info.num_pauses, info.prepend_pauses) == (7, prepend)
  assert with_pauses("digit_sum", appended=7, prepend=prepend) == name, "registered once"


def test_no_loss_where_the_next_token_is_a_pause(make_config):
  """Pause-pretraining batches: weight 0 exactly where the target is a pause (and on padding)."""
  cfg = make_config()
  cfg.task, cfg.pauses.pretrain_fraction = "pretrain_text", 0.1
  cfg.data.update(inputs_length=0, targets_length=128)
  task = pause_tasks.train_task(cfg)
  assert task == "pretrain_text_inserted10pct"
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  batch = next(input_pipeline.global_batches(task, cfg.data, 8, 0, sharding))
  targets, weights = np.asarray(batch["decoder_target_tokens"]), np.asarray(batch["decoder_loss_weights"])
  assert (targets == PAUSE_ID).mean() > 0.05, "pauses were inserted"
  np.testing.assert_array_equal(weights, (targets != PAUSE_ID) & (targets != 0))


def test_both_pretrainings_draw_the_same_documents_in_the_same_order():
  """PausePT's rows are StdPT's, row for row: with the pauses taken out, each is a prefix of
  the standard row (trimmed back by the pauses it gained), and it holds about a tenth fewer
  text tokens."""
  cfg = config_lib.load_config_file(f"{PAUSE_CONFIG}:StdPT,text,tiny")
  pause_cfg = config_lib.load_config_file(f"{PAUSE_CONFIG}:PausePT,text,tiny")
  assert not cfg.data.pack and cfg.task == pause_cfg.task == "pretrain_text"
  rows = {}
  for c in (cfg, pause_cfg):
    batches = input_pipeline.host_dataset(pause_tasks.train_task(c), c.data, 16, seed=3, shard=(0, 1))
    rows[c.pauses.pretrain_fraction] = np.concatenate(
        [b["decoder_target_tokens"] for b in batches.take(4).as_numpy_iterator()])
  std_RxL, pause_RxL = rows[0.0], rows[0.1]
  text_tokens = [0, 0]
  for std_L, pause_L in zip(std_RxL, pause_RxL):
    kept_L = pause_L[pause_L != PAUSE_ID]
    kept_L = kept_L[kept_L != 0]
    std_L = std_L[std_L != 0]
    assert 0 < len(kept_L) <= len(std_L)
    np.testing.assert_array_equal(kept_L, std_L[:len(kept_L)])
    text_tokens[0] += len(std_L)
    text_tokens[1] += len(kept_L)
  assert 0.85 < text_tokens[1] / text_tokens[0] < 0.95, text_tokens
  assert len({tuple(r) for r in std_RxL}) == len(std_RxL), "distinct documents, not one repeated"


def test_pause_finetuning_puts_no_loss_on_the_input(make_config):
  cfg = make_config()
  cfg.task, cfg.pauses.finetune = "digit_sum", 5
  input_pipeline.resolve_lengths(get_task_info(pause_tasks.train_task(cfg)), cfg.data)
  ds = input_pipeline.host_dataset(pause_tasks.train_task(cfg), cfg.data, 4, 0)
  batch = input_pipeline.with_packing_features(next(ds.as_numpy_iterator()), PAUSE_ID)
  inputs, weights = batch["decoder_input_tokens"], batch["decoder_loss_weights"]
  num_examples = sum(len(set(row[row > 0].tolist())) for row in batch["decoder_segment_ids"])
  assert (inputs == PAUSE_ID).sum() == 5 * num_examples
  # A position whose input is a pause predicts another pause (no loss) or, after the
  # last pause, the first answer token (a target: loss).
  next_is_pause = batch["decoder_target_tokens"] == PAUSE_ID
  assert not weights[next_is_pause].any()
  assert weights[(inputs == PAUSE_ID) & ~next_is_pause].all()
  assert ((inputs == PAUSE_ID) & ~next_is_pause).sum() == num_examples


def test_eval_task_uses_m_inf_and_defaults_to_m_ft():
  cfg = config_lib.load_config_file(f"{PAUSE_CONFIG}:PausePT_PauseFT,digit_sum")
  assert pause_tasks.train_task(cfg) == "digit_sum_appended10"
  assert pause_tasks.eval_task(cfg) == "digit_sum_appended10"
  cfg.pauses.inference = 0
  assert pause_tasks.eval_task(cfg) == "digit_sum"
  cfg.pauses.update(inference=3, prepend=True)
  assert pause_tasks.eval_task(cfg) == "digit_sum_prepended3"
  std = config_lib.load_config_file(f"{PAUSE_CONFIG}:StdPT_StdFT,digit_sum")
  assert pause_tasks.train_task(std) == pause_tasks.eval_task(std) == "digit_sum"


def test_prompt_for_typed_input_carries_the_pauses():
  from scratchpad.evaluation import evaluator
  prompt = evaluator.prompt_for_text(with_pauses("digit_sum", appended=4), "1 2")
  assert prompt[0] == 0 and prompt[-5:] == [EOS_ID] + [PAUSE_ID] * 4


@pytest.mark.parametrize("arg, message", [
    ("PausePT,addition", "variant PausePT takes a corpus"),
    ("StdPT_PauseFT,text", "variant StdPT_PauseFT takes a downstream task"),
    ("PausePT_PauseFT,cifar", "unknown variant 'cifar'"),
])
def test_pause_config_rejects_mismatched_variants(arg, message):
  with pytest.raises(ValueError, match=message):
    config_lib.load_config_file(f"{PAUSE_CONFIG}:{arg}")


def _tiny(cfg, steps=2):
  cfg.model.update(num_layers=1, d_model=32, num_heads=2, mlp_dim=64)
  cfg.train.update(steps=steps, batch_size=8, warmup_steps=1, log_every=1, checkpoint_every=steps)
  cfg.eval.update(max_examples=8, batch_size=8)
  return cfg


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
  from scratchpad.train import trainer
  root = tmp_path_factory.mktemp("pretrain")
  states = {}
  for pt in ("StdPT", "PausePT"):
    states[pt] = trainer.train(_tiny(config_lib.load_config_file(f"{PAUSE_CONFIG}:{pt},text")), root / pt)[0]
  return root, states


def test_finetuning_starts_from_the_pretrained_parameters(pretrained, tmp_path):
  import jax
  from scratchpad.train import trainer
  root, states = pretrained
  cfg = _tiny(config_lib.load_config_file(f"{PAUSE_CONFIG}:PausePT_PauseFT,digit_sum"), steps=1)
  cfg.train.update(init_from=str(root / "PausePT"), learning_rate=0.0)  # one step that changes nothing
  state, _ = trainer.train(cfg, tmp_path / "ft")
  assert int(state["step"]) == 1, "fine-tuning counts its own steps from 0"
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(state["params"]),
               jax.device_get(states["PausePT"]["params"]))


def test_finetuning_with_a_parameter_average_starts_from_a_pretraining_without_one(pretrained, tmp_path):
  import jax
  from scratchpad.train import optim, trainer
  root, states = pretrained
  cfg = _tiny(config_lib.load_config_file(f"{PAUSE_CONFIG}:StdPT_StdFT,digit_sum"), steps=1)
  cfg.train.update(init_from=str(root / "StdPT"), learning_rate=0.0, ema_decay=0.5)
  state, _ = trainer.train(cfg, tmp_path / "ft")
  assert optim.evaluation_params(state) is not state["params"], "the fine-tuning keeps an average"
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(state["params"]),
               jax.device_get(states["StdPT"]["params"]))


@pytest.mark.parametrize("variant, init_from, message", [
    ("PausePT_StdFT", "", "fine-tunes a PausePT model: set train.init_from"),
    ("PausePT_PauseFT", "StdPT", "is a StdPT run but variant PausePT_PauseFT"),
    ("StdPT_PauseFT", "PausePT", "is a PausePT run but variant StdPT_PauseFT"),
])
def test_finetuning_from_the_wrong_pretraining_is_refused(pretrained, tmp_path, variant, init_from, message):
  from scratchpad.train import trainer
  root, _ = pretrained
  cfg = _tiny(config_lib.load_config_file(f"{PAUSE_CONFIG}:{variant},digit_sum"))
  cfg.train.init_from = str(root / init_from) if init_from else ""
  with pytest.raises(ValueError, match=message):
    trainer.train(cfg, tmp_path / "ft")
  assert not (tmp_path / "ft").exists(), "nothing written"


def test_study_tables_report_mean_std_and_the_gap():
  records = [{"task": "t", "group": g, "seed": s, "m_inf": None, "metric": "answer_accuracy", "value": v}
             for g, values in (("StdPT_StdFT", (10, 12)), ("PausePT_PauseFT", (20, 22)))
             for s, v in enumerate(values)]
  records.append({"task": "t", "group": "PausePT_PauseFT", "seed": 0, "m_inf": 0, "metric": "answer_accuracy",
                  "value": 3.0})
  text = report.pause_tables(records, minutes=1.0)
  assert text.startswith("Pause-token study: 5 evaluations, 1.0 min.")
  assert table_rows(text, "task (metric %)") == [{
      "task (metric %)": "t (answer_accuracy)", "StdPT_StdFT": "11.0 ± 1.4 (n=2)", "StdPT_PauseFT": "-",
      "PausePT_StdFT": "-", "PausePT_PauseFT": "21.0 ± 1.4 (n=2)",
      "PausePT_PauseFT - StdPT_StdFT (verdict)": "+10.0 (PausePT_PauseFT better: 2σ = 2.8)"}]
  assert table_rows(text.split("Ablation: pauses at inference")[1], "task") == [
      {"task": "t", "M_inf=0": "3.0 (n=1)", "M_inf=10": "21.0 ± 1.4 (n=2)"}], "M_inf=0 beside M_inf=M_ft"


@pytest.mark.e2e
def test_pause_study_command_runs_every_variant_and_resumes(tmp_path, capsys):
  from scratchpad import cli
  argv = ["pause-study", f"--config={PAUSE_CONFIG}:tiny", f"--workdir={tmp_path}", "--tasks=digit_sum",
          "--seeds=2", "--ablation_seeds=1", "--pause_counts=50", "--pretrain_steps=2", "--finetune_steps=2",
          "--config.model.num_layers=1", "--config.model.d_model=32", "--config.model.num_heads=2",
          "--config.model.mlp_dim=64", "--config.train.batch_size=8", "--config.train.warmup_steps=1",
          "--config.train.checkpoint_every=2", "--config.eval.max_examples=8", "--config.data.pack=true"]
  assert cli.main(argv) == 0
  out = capsys.readouterr().out
  study = json.loads((tmp_path / "study.json").read_text())
  # The printed tables are study.md's: a column per variant, each over both seeds of study.json.
  assert (tmp_path / "study.md").read_text() in out
  (main,) = table_rows(out, "task (metric %)")
  assert list(main)[1:-1] == list(pause_tasks.PAUSE_VARIANTS)
  for variant in pause_tasks.PAUSE_VARIANTS:
    values = [r["value"] for r in study["records"] if r["group"] == variant and r["m_inf"] is None]
    assert len(values) == 2 and main[variant] == report.cell(values), (variant, main)
  groups = {(r["group"], r["m_inf"]) for r in study["records"]}
  assert groups == {(v, None) for v in pause_tasks.PAUSE_VARIANTS} | {("M_ft=50", None), ("prepend", None)} | {
      ("PausePT_PauseFT", m) for m in (0, 5, 20)}
  assert len(study["records"]) == 2 * len(pause_tasks.PAUSE_VARIANTS) + 2 + 3
  report_text = (tmp_path / "study.md").read_text()
  assert report_text.startswith("Pause-token study")
  main_row = next(line for line in report_text.splitlines() if line.startswith("| digit_sum"))
  assert main_row.count("(n=2)") == len(pause_tasks.PAUSE_VARIANTS), "every variant over both seeds"
  assert "Where the extra computation goes: digit_sum" in report_text, "digit sum's accuracy by length"
  assert (tmp_path / "pause_variants.png").stat().st_size and (tmp_path / "pause_counts.png").stat().st_size
  # A second call finds every run done: same records, nothing retrained.
  mtime = (tmp_path / "digit_sum" / "StdPT_StdFT" / "seed0" / "results.json").stat().st_mtime
  assert cli.main(argv) == 0
  assert json.loads((tmp_path / "study.json").read_text())["records"] == study["records"]
  assert (tmp_path / "digit_sum" / "StdPT_StdFT" / "seed0" / "results.json").stat().st_mtime == mtime


@pytest.mark.parametrize("num_pauses", [4, 0])
def test_the_pause_embedding_row_learns_only_from_pauses(make_config, num_pauses):
  """The pause token is one embedding row: it gets a gradient exactly when inputs carry pauses."""
  from flax import nnx
  from scratchpad.train import optim, trainer
  cfg = make_config()
  cfg.task, cfg.pauses.finetune = "digit_sum", num_pauses
  task = pause_tasks.train_task(cfg)
  input_pipeline.resolve_lengths(get_task_info(task), cfg.data)
  setup = trainer.ShardedTraining(cfg)
  params = setup.init_state()["params"]
  batch = input_pipeline.with_packing_features(
      next(input_pipeline.host_dataset(task, cfg.data, 8, 0).as_numpy_iterator()), PAUSE_ID)

  def loss(params):
    logits, _ = nnx.merge(setup.graphdef, params)(batch["decoder_input_tokens"], batch["decoder_positions"],
                                                  batch["decoder_segment_ids"])
    return optim.weighted_loss(logits, batch["decoder_target_tokens"], batch["decoder_loss_weights"])[0]

  grad_row = np.asarray(jax.jit(jax.grad(loss))(params)["embed_VxD"])[PAUSE_ID]
  assert (np.abs(grad_row).sum() > 0) == (num_pauses > 0)


def test_c4_configs_pretrain_and_finetune_with_the_sentencepiece_vocabulary():
  pause = config_lib.load_config_file(f"{PAUSE_CONFIG}:PausePT,c4")
  assert pause_tasks.train_task(pause) == "c4_std_inserted10pct"
  assert pause.data.targets_length == 2048 and pause.data.inputs_length == 0
  squad = config_lib.load_config_file(f"{PAUSE_CONFIG}:PausePT_PauseFT,squad,spm")
  assert pause_tasks.train_task(squad) == "squad_spm_appended10" and squad.eval.splits == ("validation",)
  with pytest.raises(ValueError, match="uses the byte vocabulary"):
    config_lib.load_config_file(f"{PAUSE_CONFIG}:PausePT_PauseFT,digit_sum,spm")


def test_the_by_length_analysis_is_of_the_task_where_pauses_gain_most():
  def record(task, group, seed, value, by_length):
    return {"task": task, "group": group, "seed": seed, "m_inf": None, "metric": "answer_accuracy",
            "value": value, "by_length": by_length}
  records = [record("flat", "StdPT_StdFT", 0, 50.0, {"3": 50.0}), record("flat", "PausePT_PauseFT", 0, 51.0, {"3": 51.0}),
             record("gain", "StdPT_StdFT", 0, 20.0, {"5": 40.0, "9": 0.0}),
             record("gain", "StdPT_StdFT", 1, 30.0, {"5": 60.0, "9": 0.0}),
             record("gain", "PausePT_PauseFT", 0, 70.0, {"5": 90.0, "9": 50.0})]
  text = report.pause_tables(records)
  section = text[text.index("Where the extra computation goes"):]
  assert section.startswith("Where the extra computation goes: gain (the largest gain)")
  rows = [re.sub(" +", " ", line) for line in section.splitlines() if line.startswith("| 5") or line.startswith("| 9")]
  assert rows == ["| 5 | 50.0 ± 14.1 (n=2) | 90.0 (n=1) | +40.0 |", "| 9 | 0.0 ± 0.0 (n=2) | 50.0 (n=1) | +50.0 |"]
