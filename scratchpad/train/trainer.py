"""Training: one jitted, sharded, state-donating step, and the loop around it."""

from __future__ import annotations

import functools
import json
import os
import signal
import threading
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from clu import metric_writers

from scratchpad import errors
from scratchpad import files
from scratchpad.model import transformer
from scratchpad.tasks import get_task_info, pause_tasks
from scratchpad.train import checkpoints, compile_options, input_pipeline, optim, run_config, sharding
from scratchpad.train.progress import Progress


def model_graphdef(cfg: ml_collections.ConfigDict):
  """The graph of `cfg`'s model, without its parameters (what evaluation pairs with restored ones)."""
  return transformer.graphdef(run_config.model_config(cfg))


class ShardedTraining:
  """A run's model graph, optimizer and mesh, the shardings of its state and batches, and its
  jitted train step: everything training derives from the config."""

  def __init__(self, cfg: ml_collections.ConfigDict, devices=None, model_cfg=None):
    self.cfg = cfg
    self.model_cfg = model_cfg or run_config.model_config(cfg)
    self.mesh = sharding.make_mesh(cfg.mesh.shape, devices, cfg.mesh.get("dcn_shape", (1, 1, 1)))
    rules = cfg.mesh.rules
    self.graphdef, abstract_params = transformer.graphdef(self.model_cfg, with_params=True)
    self.tx = optim.make_optimizer(cfg.train)
    param_shardings = sharding.param_shardings(abstract_params, rules, self.mesh)
    abstract = jax.eval_shape(self._init_state)
    rep = sharding.replicated(self.mesh)
    self.state_shardings = {
        "step": rep,
        "params": param_shardings,
        "opt_state": optax.tree_map_params(self.tx, lambda _, s: s, abstract["opt_state"], param_shardings,
                                           transform_non_params=lambda _: rep),
    }
    self.abstract_state = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                                       abstract, self.state_shardings)
    self.batch_sharding = sharding.batch_sharding(self.mesh, rules)

  def _init_state(self):
    return optim.init_state(self.model_cfg, self.tx, self.cfg.seed)

  def init_state(self):
    return jax.jit(self._init_state, out_shardings=self.state_shardings)()

  def train_step_fn(self):
    """The train step, jitted with explicit shardings, the state donated and the backend's
    `compile_options`."""
    train_step = functools.partial(optim.train_step, self.graphdef, self.tx, seed=self.cfg.seed,
                                   microbatches=self.cfg.train.microbatches)
    rep = sharding.replicated(self.mesh)
    batch_shardings = {k: self.batch_sharding for k in input_pipeline.MODEL_FEATURES}
    return jax.jit(sharding.under_mesh(train_step, self.mesh), in_shardings=(self.state_shardings, batch_shardings),
                   out_shardings=(self.state_shardings, rep), donate_argnums=0,
                   compiler_options=compile_options.train_step(self.mesh.devices.flat[0].platform))

  def abstract_batch(self, batch_size: int, length: int) -> dict[str, jax.ShapeDtypeStruct]:
    """The shapes of a global batch of packed rows, as the input pipeline gives them."""
    return {k: jax.ShapeDtypeStruct((batch_size, length), jnp.int32, sharding=self.batch_sharding)
            for k in input_pipeline.MODEL_FEATURES}

  def compile_train_step(self, batch_size: int, length: int):
    """The train step compiled for batches of `batch_size` rows of `length`, without
    allocating the state: its `memory_analysis()` says what a step needs."""
    return self.train_step_fn().lower(self.abstract_state, self.abstract_batch(batch_size, length)).compile()


TRAINING_FILE = "training.json"  # what a workdir's training took: steps, seconds, tokens, over every session


def add_training_record(workdir: str, steps: int, seconds: float, tokens: int) -> dict:
  """Adds this session's seconds and tokens to WORKDIR/training.json; `steps` is where it stopped."""
  path = os.path.join(workdir, TRAINING_FILE)
  record = {"steps": 0, "seconds": 0.0, "tokens": 0, "sessions": 0}
  if files.exists(path):
    record.update(files.read_json(path))
  record = {"steps": steps, "seconds": round(record["seconds"] + seconds, 1), "tokens": record["tokens"] + tokens,
            "sessions": record["sessions"] + 1}
  files.write_json(path, record, indent=None)
  return record


class MetricsWriter:
  """The training metrics, from process 0: JSON lines in WORKDIR/metrics.jsonl (what the
  reports and tests read) and TensorBoard events in WORKDIR/tensorboard (`clu.metric_writers`)."""

  def __init__(self, workdir: str):
    self._active = files.is_writer()
    self._jsonl = os.path.join(workdir, "metrics.jsonl")
    if self._active:
      self._summaries = metric_writers.SummaryWriter(os.path.join(workdir, "tensorboard"))

  def write(self, step: int, metrics: dict[str, float]):
    if not self._active:
      return
    files.append_text(self._jsonl, json.dumps({"step": step, **metrics}) + "\n")
    self._summaries.write_scalars(step, metrics)
    self._summaries.flush()

  def close(self):
    if self._active:
      self._summaries.close()


def pretrained_params(setup: ShardedTraining, workdir: str):
  """The parameters of WORKDIR's latest checkpoint (a pretraining run), laid out for `setup`.

  Fine-tuning starts from them with a fresh optimizer and step 0. The whole state
  restores in the pretraining's own optimizer structure (it may keep a parameter
  average where this run does not, or the reverse), and everything but the
  parameters it is evaluated with is dropped.
  """
  abstract_state = setup.abstract_state
  ema_decay = run_config.load_config(workdir).train.ema_decay
  if bool(ema_decay) != bool(setup.cfg.train.ema_decay):  # only then do the states' structures differ
    pretraining = ml_collections.ConfigDict(setup.cfg.to_dict())
    pretraining.train.ema_decay = ema_decay
    abstract_state = ShardedTraining(pretraining, list(setup.mesh.devices.flat), setup.model_cfg).abstract_state
  state = checkpoints.restore_latest(workdir, abstract_state)
  if state is None:
    raise errors.InputError(f"train.init_from={workdir!r} has no complete checkpoint: train the pretraining run first")
  print(f"initialised from {workdir} step {int(state['step'])}")
  return optim.evaluation_params(state)


class Preemption:
  """SIGTERM (how pods and schedulers preempt a job) asks the loop to stop after its step.

  The loop then saves that step and returns cleanly; rerunning the same command
  resumes from it. One process catches SIGTERM itself (only the main thread can own a
  signal handler: elsewhere, a notebook's worker thread, SIGTERM keeps its default).
  Several processes use JAX's own mechanism, through Orbax's `reached_preemption`: the
  coordination service's SIGTERM notifier and its preemption sync point, which agree on one
  step for every process and exchange nothing until a process is preempted (no per-step
  host sync).
  """

  def __init__(self, mngr):
    self.requested = False
    self._mngr = mngr
    self._previous = None

  def _handle(self, signum, frame):
    del signum, frame
    self.requested = True

  def agreed(self, step: int) -> bool:
    """Whether to stop after `step`: every process stops at the same one."""
    if jax.process_count() == 1:  # JAX's sync point needs the coordination service of several processes
      return self.requested
    return self._mngr.reached_preemption(step)

  def __enter__(self):
    if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def check_finite(pending, last_good: int | None, checkpoint_dir: str) -> None:
  """Raises Diverged at the first of the pending `(step, metrics)` with a NaN or infinite loss or gradient."""
  for step, metrics in jax.device_get(pending):
    bad = {k: float(v) for k, v in metrics.items()
           if k in ("loss", "grad_norm") and not np.isfinite(v)}
    if bad:
      good = f"step {last_good} in {checkpoint_dir}" if last_good is not None else "none (no step was saved)"
      raise errors.Diverged(f"training diverged at step {step}: {', '.join(f'{k}={v}' for k, v in bad.items())}; "
                     f"stopped without saving it; the last good checkpoint is {good}")


def resume_state(setup: ShardedTraining, mngr, workdir: str, fallback: bool):
  """WORKDIR's latest complete state, saying which and what was skipped; None for a new run."""
  for step in checkpoints.unfinished_steps(workdir):
    print(f"{workdir}: the checkpoint of step {step} was never finished (the run stopped while saving it); "
          "ignoring it", flush=True)
  try:
    state = checkpoints.restore(mngr, setup.abstract_state, fallback=fallback)
  except checkpoints.DamagedCheckpoint as e:
    raise checkpoints.DamagedCheckpoint(e.step, f"{e}; rerun with --fallback to set it aside and resume "
                                                "from the step before it") from e
  if state is not None:
    print(f"{workdir}: resuming from step {int(state['step'])}", flush=True)
  return state


class Validation:
  """`eval.every`: the loss on a fixed set of `eval.every_split` examples, and (given an
  `answer_accuracy` callback, from the evaluation layer) their decoded answers."""

  def __init__(self, cfg, task: str, setup: ShardedTraining, answer_accuracy=None):
    self.answer_accuracy = answer_accuracy
    split, wanted = cfg.eval.every_split, cfg.eval.every_examples
    batches = input_pipeline.global_batches(task, cfg.data, cfg.train.batch_size, cfg.seed, setup.batch_sharding,
                                            split=split)
    self.batches, seen = [], 0
    while seen < wanted:  # packed rows: count the examples (segments) in them
      batch = next(batches)
      self.batches.append(batch)
      seen += int(np.sum(np.max(np.asarray(batch["decoder_segment_ids"]), axis=1)))
    self.step = jax.jit(sharding.under_mesh(functools.partial(optim.eval_step, setup.graphdef), setup.mesh))

  def __call__(self, params) -> dict[str, float]:
    losses, accuracies = zip(*(jax.device_get(self.step(params, batch)) for batch in self.batches))
    metrics = {"validation_loss": float(np.mean(losses)), "validation_token_accuracy": float(np.mean(accuracies))}
    if self.answer_accuracy:
      metrics["validation_answer_accuracy"] = float(self.answer_accuracy(params))
    return metrics


def train(cfg: ml_collections.ConfigDict, workdir: str, devices=None, stop_after: int | None = None,
          fallback: bool = False, answer_accuracy=None):
  """Trains `cfg` in `workdir`, resuming from its latest complete checkpoint.

  Returns the final state and the list of logged metrics. `stop_after` ends the
  run early after that many steps of this call (tests use it to "kill" a run).
  `fallback`: a damaged latest checkpoint is set aside and the one before it used.
  Raises errors.Diverged, without saving, on a non-finite loss or gradient, and errors.Preempted,
  after saving, on SIGTERM. `answer_accuracy(params) -> %`: with `eval.every`, also
  logged (`eval.every_accuracy`; the evaluation layer provides it).
  """
  run_config.check_run(cfg, num_devices=len(devices) if devices is not None else jax.device_count())
  task = pause_tasks.train_task(cfg)
  run_config.check_init_from(cfg)
  input_pipeline.resolve_lengths(get_task_info(task), cfg.data)
  run_config.check_positions(cfg)
  run_config.check_same_model(cfg, workdir)
  run_config.record_attention(cfg, workdir)
  if cfg.train.init_from:
    run_config.check_same_model(cfg, cfg.train.init_from, same_task=False)
  setup = ShardedTraining(cfg, devices)
  with checkpoints.manager(workdir, cfg.train.checkpoint_every, cfg.train.keep_checkpoints) as mngr:
    return _train(cfg, workdir, task, setup, mngr, stop_after, fallback, answer_accuracy)  # close() waits for saves


def _train(cfg, workdir, task, setup, mngr, stop_after, fallback, answer_accuracy):
  state = resume_state(setup, mngr, workdir, fallback)
  if state is None:
    state = setup.init_state()
    if cfg.train.init_from:
      state["params"] = pretrained_params(setup, cfg.train.init_from)
  run_config.save_config(cfg, workdir)
  start = int(state["step"])
  if start >= cfg.train.steps:
    print(f"{workdir}: already trained to step {start} of {cfg.train.steps}")
    return state, []
  train_step = setup.train_step_fn()
  batches = input_pipeline.Batches(task, cfg.data, cfg.train.batch_size, cfg.seed, setup.batch_sharding,
                                   workdir=workdir, start_step=start)
  if batches.resumed == "replayed":
    print(f"{workdir}: no saved data position for step {start}: replaying {start} batches", flush=True)
  validation = Validation(cfg, task, setup, answer_accuracy) if cfg.eval.get("every") else None
  writer = MetricsWriter(workdir)
  end = cfg.train.steps if stop_after is None else min(cfg.train.steps, start + stop_after)
  progress = Progress(start, cfg.train.steps, desc=f"train {task}")
  schedule = optim.lr_schedule(cfg.train)
  history, pending = [], []  # pending: (step, metrics) since the last log
  last_good = mngr.latest_step()
  last_time = started = time.perf_counter()
  done, tokens = start, 0
  try:
    with Preemption(mngr) as preemption:
      for step in range(start, end):
        state, metrics = train_step(state, next(batches))
        done = step + 1
        pending.append((done, metrics))  # fetched only when logged or saved, so dispatch runs ahead
        preempted = preemption.agreed(done)
        stop = done == end or preempted
        if stop or done % cfg.train.log_every == 0 or mngr.should_save(done):
          check_finite(pending, last_good, mngr.directory)  # never save or log past a NaN
        if done % cfg.train.log_every == 0 or stop:
          pending, last_time, logged_tokens = _log(pending, last_time, done, schedule, history, writer, progress)
          tokens += logged_tokens
        if validation and (done % cfg.eval.every == 0 or done == cfg.train.steps):
          validated = validation(optim.evaluation_params(state))
          writer.write(done, validated)
          progress.note(", ".join(f"{k} {v:.4g}" for k, v in validated.items()))
          if history and history[-1]["step"] == done:
            history[-1].update(validated)
        if checkpoints.save(mngr, done, state, force=stop):
          last_good = done
          batches.save(workdir, done, mngr.all_steps())
        if preempted:
          mngr.wait_until_finished()
          raise errors.Preempted(f"preempted (SIGTERM): saved step {done} of {cfg.train.steps} in {workdir}; "
                          "run the same command to resume")
  finally:
    writer.close()
    progress.close()
    if done > start:
      add_training_record(workdir, done, time.perf_counter() - started, tokens)
  return state, history


def _log(pending, last_time, done, schedule, history, writer, progress):
  """Fetches the pending steps' metrics, averages them, writes them; returns the reset window."""
  pending = jax.device_get([metrics for _, metrics in pending])
  now = time.perf_counter()
  logged = {k: float(np.mean([m[k] for m in pending])) for k in ("loss", "token_accuracy", "grad_norm")}
  tokens = sum(int(m["tokens"]) for m in pending)
  logged["tokens_per_second"] = tokens / (now - last_time)
  logged["learning_rate"] = float(schedule(done))
  history.append({"step": done, **logged})
  writer.write(done, logged)
  progress.update(done, logged["loss"], logged["tokens_per_second"])
  return [], now, tokens

