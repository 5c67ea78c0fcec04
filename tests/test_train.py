"""Training: sharded equals single-device, resumed equals uninterrupted, and it learns."""

import functools
import os
import pathlib
import shutil

import jax
import jax.numpy as jnp
import pytest
import numpy as np
import optax
from flax import nnx

from conftest import on_task
from scratchpad import config as config_lib
from scratchpad.model import transformer
from scratchpad.train import checkpoints, compile_options, input_pipeline, optim, run_config, trainer


def _first_batches(cfg, n):
  it = input_pipeline.host_dataset(cfg.task, cfg.data, cfg.train.batch_size, cfg.seed).as_numpy_iterator()
  return [input_pipeline.with_packing_features(next(it)) for _ in range(n)]


def _run_steps(setup, batches):
  step = setup.train_step_fn()
  state, losses = setup.init_state(), []
  for batch in batches:
    state, metrics = step(state, jax.device_put(batch, setup.batch_sharding))
    losses.append(float(metrics["loss"]))
  return losses, jax.device_get(state["params"])


def test_sharded_train_step_equals_single_device(make_config):
  cfg = make_config("scratchpad", train__batch_size=8)
  on_task(cfg, "addition_scratchpad_1to2")
  batches = _first_batches(cfg, 3)
  cfg.mesh.shape = (1, 1, 1)
  single_losses, single_params = _run_steps(trainer.ShardedTraining(cfg, devices=jax.devices()[:1]), batches)
  cfg.mesh.shape = (2, 2, 2)
  sharded = trainer.ShardedTraining(cfg)
  sharded_specs = {str(s.spec) for s in jax.tree.leaves(sharded.state_shardings["params"])}
  assert len(sharded_specs) > 2, "parameters should be split over fsdp and tensor axes"
  sharded_losses, sharded_params = _run_steps(sharded, batches)
  np.testing.assert_allclose(sharded_losses, single_losses, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), sharded_params, single_params)


@pytest.mark.parametrize("microbatches, mesh", [(4, (1, 1, 1)), (2, (2, 2, 2))])
def test_accumulated_microbatches_equal_the_whole_batch(make_config, microbatches, mesh):
  # random_lines: ids drawn at random, for the whole batch, then sliced
  cfg = make_config("scratchpad", train__batch_size=8, model__position_encoding="random_lines")
  on_task(cfg, "addition_scratchpad_1to2")
  batches = _first_batches(cfg, 3)
  cfg.mesh.shape = mesh
  devices = jax.devices()[:int(np.prod(mesh))]
  whole = trainer.ShardedTraining(cfg, devices)
  whole_losses, whole_params = _run_steps(whole, batches)
  cfg.train.microbatches = microbatches
  setup = trainer.ShardedTraining(cfg, devices)
  scans = lambda m: str(jax.make_jaxpr(functools.partial(optim.train_step, setup.graphdef, setup.tx, microbatches=m))(
      setup.abstract_state, batches[0])).count("scan[")
  assert scans(microbatches) == scans(1) + 1  # the slices one at a time
  losses, params = _run_steps(setup, batches)
  np.testing.assert_allclose(losses, whole_losses, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), params, whole_params)


def test_resumed_run_continues_exactly(make_config, tmp_path):
  cfg = make_config("scratchpad", train__steps=10, train__log_every=1, train__checkpoint_every=4)
  on_task(cfg, "addition_scratchpad_1to2")
  _, uninterrupted = trainer.train(cfg, str(tmp_path / "straight"))
  _, first = trainer.train(cfg, str(tmp_path / "resumed"), stop_after=4)  # "killed" after step 4
  _, second = trainer.train(cfg, str(tmp_path / "resumed"))
  assert [h["step"] for h in first] == [1, 2, 3, 4] and second[0]["step"] == 5
  np.testing.assert_allclose([h["loss"] for h in first + second], [h["loss"] for h in uninterrupted], rtol=1e-6)


@pytest.mark.e2e  # 20-25 s: whole runs; CI runs it with `-m e2e`
def test_a_resumed_run_restores_the_pipeline_and_reads_no_consumed_batch(make_config, tmp_path, monkeypatch):
  import tensorflow as tf
  cfg = make_config("scratchpad", train__steps=12, train__log_every=1, train__checkpoint_every=8)
  on_task(cfg, "addition_scratchpad_1to2_symbols")  # its lookup tables: state the checkpoint leaves out
  _, uninterrupted = trainer.train(cfg, str(tmp_path / "straight"))
  trainer.train(cfg, str(tmp_path / "resumed"), stop_after=8)
  assert os.path.isdir(input_pipeline.data_state_path(str(tmp_path / "resumed"), 8))
  # A fresh pipeline that may not skip gives batch 9 next only from the saved position: read from
  # the start it would give batch 1 (tf.data restores its buffers; it does not re-read the source).
  monkeypatch.setattr(tf.data.Dataset, "skip", lambda *_: pytest.fail("a restored pipeline skips nothing"))
  _, second = trainer.train(cfg, str(tmp_path / "resumed"))
  np.testing.assert_allclose([h["loss"] for h in second], [h["loss"] for h in uninterrupted[8:]], rtol=1e-6)


@pytest.mark.e2e  # 20-25 s: whole runs; CI runs it with `-m e2e`
def test_a_missing_data_position_replays_and_another_process_count_is_refused(make_config, tmp_path, capsys):
  cfg = make_config("scratchpad", train__steps=6, train__log_every=1, train__checkpoint_every=3)
  on_task(cfg, "addition_scratchpad_1to2")
  _, uninterrupted = trainer.train(cfg, str(tmp_path / "straight"))
  run = tmp_path / "resumed"
  trainer.train(cfg, str(run), stop_after=3)
  state_dir = pathlib.Path(input_pipeline.data_state_path(str(run), 3))
  state_dir.rename(state_dir.with_name("process_0_of_2"))
  with pytest.raises(ValueError, match="saved by 2 processes, and this run has 1: resume with as many"):
    trainer.train(cfg, str(run))
  shutil.rmtree(run / input_pipeline.DATA_STATE_DIR)  # as a workdir from before data positions were saved
  _, second = trainer.train(cfg, str(run))
  assert "no saved data position for step 3: replaying 3 batches" in capsys.readouterr().out
  np.testing.assert_allclose([h["loss"] for h in second], [h["loss"] for h in uninterrupted[3:]], rtol=1e-6)


@pytest.mark.slow  # a real (short) training run: about a minute on 2 cores
def test_short_run_learns_small_addition_above_chance(make_config, tmp_path):
  from scratchpad.evaluation import evaluator
  cfg = make_config("scratchpad", train__steps=400, train__batch_size=16, train__learning_rate=3e-3,
                    train__warmup_steps=40, train__log_every=100)
  on_task(cfg, "addition_scratchpad_1to2")
  cfg.model.update(num_layers=2, d_model=64, num_heads=4, mlp_dim=256)
  cfg.eval.update(splits=("test",), max_examples=200)
  state, history = trainer.train(cfg, str(tmp_path))
  assert history[-1]["loss"] < history[0]["loss"] / 10
  results = evaluator.evaluate(cfg, str(tmp_path), trainer.model_graphdef(cfg), state["params"])
  # Chance is under 2%: no single sum of two 1-2 digit operands is that frequent.
  assert results["test"]["answer_accuracy"] > 10.0, results


def test_train_step_compiles_with_the_backends_options(make_config, monkeypatch):
  """On CPU the trainer's step has no YNNPACK fusions (Eigen dots: compile_options); with
  SCRATCHPAD_XLA_DEFAULTS=1 it has XLA's defaults; an option this jaxlib lacks is dropped."""
  if not compile_options.train_step("cpu"):
    pytest.skip("this jaxlib does not know the CPU options")
  cfg = make_config("scratchpad", train__batch_size=8)
  setup = trainer.ShardedTraining(cfg, devices=jax.devices()[:1])
  assert "__ynn_fusion" not in setup.compile_train_step(8, 64).as_text()
  monkeypatch.setenv("SCRATCHPAD_XLA_DEFAULTS", "1")
  assert compile_options.train_step("cpu") == {}
  assert "__ynn_fusion" in setup.compile_train_step(8, 64).as_text()

  monkeypatch.delenv("SCRATCHPAD_XLA_DEFAULTS")
  monkeypatch.setitem(compile_options.BACKEND_OPTIONS, "cpu", {"xla_cpu_no_such_option": "1"})
  compile_options._known.cache_clear()
  try:
    assert compile_options.train_step("cpu") == {}
  finally:
    compile_options._known.cache_clear()


@pytest.mark.parametrize("spec", ["addition.py:paper,130m", "addition.py:paper,1b", "pause.py:StdPT,c4,130m",
                                  "pause.py:PausePT,c4,1b", "pause.py:PausePT,c4,tiny"])
def test_pod_recipes_compute_in_bfloat16_on_float32_parameters(spec):
  from conftest import ROOT
  cfg = config_lib.load_config_file(str(ROOT / "configs" / spec))
  assert cfg.model.dtype == "bfloat16"
  if ",c4," in spec:  # the layout that fits a v5e chip (benchmarks/NOTES.md)
    assert cfg.model.scan_layers and cfg.model.remat == "full" and cfg.train.microbatches == 2
  if spec.startswith("addition"):
    params = nnx.state(nnx.eval_shape(lambda: transformer.Transformer(run_config.model_config(cfg), nnx.Rngs(0))),
                       nnx.Param)
    assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype("float32")}
  assert config_lib.load_config_file(str(ROOT / "configs" / "addition.py:paper")).model.dtype == "float32"


def test_the_parameter_average_is_the_moving_average_of_each_steps_parameters():
  """average_params, chained after SGD on a quadratic, against the average written out."""
  decay, lr = 0.8, 0.1
  tx = optax.chain(optax.sgd(lr), optim.average_params(decay))
  params = {"w": jnp.array([1.0, -2.0])}
  state = tx.init(params)
  expected = np.array([1.0, -2.0])
  for t in range(6):
    grads = jax.tree.map(lambda w: 2 * w, params)  # d/dw of |w|^2
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
    d = min(decay, (1 + t) / (10 + t))
    expected = d * expected + (1 - d) * np.asarray(params["w"])
  np.testing.assert_allclose(optim.evaluation_params({"params": params, "opt_state": state})["w"], expected,
                             rtol=1e-6)


def test_the_parameter_average_is_checkpointed_and_is_what_evaluation_uses(make_config, tmp_path):
  cfg = make_config("scratchpad", train__steps=4, train__checkpoint_every=4, train__ema_decay=0.9)
  on_task(cfg, "addition_scratchpad_1to2")
  trained, _ = trainer.train(cfg, str(tmp_path))
  restored = checkpoints.restore_latest(str(tmp_path), trainer.ShardedTraining(cfg).abstract_state)
  average = optim.evaluation_params(trained)
  jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-6), optim.evaluation_params(restored), average)
  assert not np.allclose(average["embed_VxD"], trained["params"]["embed_VxD"]), "the average is not the params"
  state = trainer.ShardedTraining(make_config("scratchpad", train__ema_decay=0.0)).init_state()
  assert optim.evaluation_params(state) is state["params"], "without ema_decay, the parameters themselves"
