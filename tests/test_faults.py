"""The fault-injection suite (`pytest -m faults`): each fault provoked for real.

Preemption (SIGTERM), a crash (SIGKILL) while a checkpoint is written, damaged
and foreign checkpoints, a diverging run, bad input, and determinism. Each test
checks that nothing already written is lost and records a row of the fault table
printed at the end of the run.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from conftest import ROOT, TRAIN_CONFIG, TRAIN_TINY, snapshot, train_cli_config
from scratchpad import cli
from scratchpad.evaluation import evaluator  # noqa: F401  (its decoders are jit-wrapped at import, which
                                            # is no compilation: the bad-input tests count jax.jit calls)
from scratchpad.train import checkpoints, input_pipeline, run_config, trainer

pytestmark = pytest.mark.faults

def train_argv(workdir, *overrides: str) -> list[str]:
  return ["train", TRAIN_CONFIG, *TRAIN_TINY, *overrides, f"--workdir={workdir}"]


def saved_params(workdir, cfg):
  state = checkpoints.restore_latest(str(workdir), trainer.ShardedTraining(cfg).abstract_state)
  return int(state["step"]), jax.device_get(state["params"])


def assert_same_params(a, b):
  jax.tree.map(np.testing.assert_array_equal, a, b)


def test_sigterm_saves_and_the_rerun_ends_where_an_uninterrupted_run_does(tmp_path, fault_table):
  """A real SIGTERM to a training process: it saves its step, exits 0, and the rerun resumes
  to parameters bit-for-bit equal to an uninterrupted run's."""
  steps = 400  # long enough that the signal lands mid-run
  overrides = [f"--config.train.steps={steps}", "--config.train.checkpoint_every=1000"]
  argv = [sys.executable, "-m", "scratchpad", *train_argv(tmp_path / "preempted", *overrides)]
  proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  metrics = tmp_path / "preempted" / "metrics.jsonl"
  while not (metrics.exists() and metrics.read_text().count("\n") >= 5):
    assert proc.poll() is None, proc.stdout.read()
    time.sleep(0.2)
  proc.send_signal(signal.SIGTERM)
  out, _ = proc.communicate(timeout=120)
  assert proc.returncode == 0, out
  saved = int(out.split("preempted (SIGTERM): saved step ")[1].split()[0])
  assert 5 <= saved < steps
  mngr = checkpoints.manager(str(tmp_path / "preempted"))
  assert mngr.latest_step() == saved
  mngr.close()
  rerun = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
  assert rerun.returncode == 0 and f"resuming from step {saved}" in rerun.stdout, rerun.stdout + rerun.stderr

  cfg = train_cli_config(*overrides)
  uninterrupted, _ = trainer.train(cfg, str(tmp_path / "uninterrupted"))
  step, resumed = saved_params(tmp_path / "preempted", cfg)
  assert step == steps
  assert_same_params(resumed, jax.device_get(uninterrupted["params"]))
  # The resumed run's per-step losses continue the interrupted ones exactly.
  logged = [json.loads(line) for line in metrics.read_text().splitlines()]
  reference = [json.loads(line) for line in (tmp_path / "uninterrupted" / "metrics.jsonl").read_text().splitlines()]
  assert [r["loss"] for r in logged] == [r["loss"] for r in reference]
  fault_table(f"SIGTERM at step {saved} of {steps}",
              f"finished step {saved}, saved it, exit 0; the rerun resumed from step {saved}",
              f"nothing: all {steps} losses and the final parameters equal an uninterrupted run's bit for bit")


# Run by a subprocess: training whose process SIGKILLs itself as soon as the save of
# step KILL_AT has started, while Orbax is still writing it in the background.
KILL_WHILE_SAVING = """
import os, signal, sys
from scratchpad import cli
from scratchpad.train import checkpoints
kill_at, save = int(sys.argv[1]), checkpoints.save
def save_then_die(mngr, step, state, force=False):
  started = save(mngr, step, state, force)
  if started and step == kill_at:
    os.kill(os.getpid(), signal.SIGKILL)
  return started
checkpoints.save = save_then_die
sys.exit(cli.main(sys.argv[2:]))
"""


def test_sigkill_while_saving_leaves_the_previous_checkpoint_and_the_rerun_says_so(tmp_path, fault_table):
  overrides = ["--config.train.steps=8", "--config.train.checkpoint_every=2"]
  workdir = tmp_path / "killed"
  killed = subprocess.run([sys.executable, "-c", KILL_WHILE_SAVING, "6", *train_argv(workdir, *overrides)],
                          cwd=ROOT, capture_output=True, text=True)
  assert killed.returncode == -signal.SIGKILL, killed.stderr
  assert checkpoints.unfinished_steps(str(workdir)) == [6], "the kill should land while step 6 is written"
  mngr = checkpoints.manager(str(workdir))
  assert mngr.all_steps() == [2, 4]
  mngr.close()

  rerun = subprocess.run([sys.executable, "-m", "scratchpad", *train_argv(workdir, *overrides)],
                         cwd=ROOT, capture_output=True, text=True)
  assert rerun.returncode == 0, rerun.stderr
  assert "the checkpoint of step 6 was never finished" in rerun.stdout
  assert "resuming from step 4" in rerun.stdout
  cfg = train_cli_config(*overrides)
  uninterrupted, _ = trainer.train(cfg, str(tmp_path / "uninterrupted"))
  step, resumed = saved_params(workdir, cfg)
  assert step == 8
  assert_same_params(resumed, jax.device_get(uninterrupted["params"]))
  fault_table("SIGKILL while the step-6 checkpoint is written",
              "step 6 stayed a temporary directory Orbax never lists; the rerun said so, resumed from step 4 "
              "and trained to step 8",
              "steps 5-6 recomputed; final parameters equal an uninterrupted run's bit for bit")


@pytest.fixture(scope="module")
def four_steps(tmp_path_factory):
  """A run saved at steps 2 and 4, and the parameters an uninterrupted 6-step run ends with."""
  root = tmp_path_factory.mktemp("four_steps")
  assert cli.main(train_argv(root / "run", "--config.train.steps=4", "--config.train.checkpoint_every=2")) == 0
  assert cli.main(train_argv(root / "six", "--config.train.steps=6", "--config.train.checkpoint_every=2")) == 0
  return root / "run", saved_params(root / "six", train_cli_config("--config.train.steps=6"))[1]


def _truncate_data(step_dir):
  for root, _, files in os.walk(step_dir):
    for name in files:
      if os.path.basename(root) == "d":  # the array data files
        with open(os.path.join(root, name), "r+b") as f:
          f.truncate(8)


def _scramble_metadata(step_dir):
  with open(os.path.join(step_dir, "state", "_METADATA"), "wb") as f:
    f.write(b"\x00garbage\xff" * 10)


DAMAGE = {"truncated": _truncate_data, "scrambled": _scramble_metadata}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_checkpoint_is_named_and_fallback_resumes_from_the_step_before(
    four_steps, damage, tmp_path, capsys, fault_table):
  workdir = tmp_path / "run"
  shutil.copytree(four_steps[0], workdir)
  DAMAGE[damage](workdir / "checkpoints" / "4")
  before = snapshot(workdir)
  argv = train_argv(workdir, "--config.train.steps=6", "--config.train.checkpoint_every=2")
  # A real process: its whole stderr is the one line (no traceback from the failed reads).
  refused = subprocess.run([sys.executable, "-m", "scratchpad", *argv], cwd=ROOT, capture_output=True, text=True)
  err = refused.stderr.strip().splitlines()
  assert refused.returncode == 2 and len(err) == 1, refused.stderr[-3000:]
  assert "error: checkpoint step 4" in err[0] and "is damaged" in err[0] and "--fallback" in err[0], err
  assert snapshot(workdir) == before

  assert cli.main([*argv, "--fallback"]) == 0
  out = capsys.readouterr().out
  assert f"moved to {workdir / 'damaged_checkpoints' / '4'}" in out and "resuming from step 2" in out
  damaged, kept = str(workdir / "checkpoints" / "4"), str(workdir / "damaged_checkpoints" / "4")
  moved = {p.replace(damaged, kept): b for p, b in before.items() if p.startswith(damaged + os.sep)}
  after = snapshot(workdir)
  assert moved and all(after.get(p) == b for p, b in moved.items())  # every damaged file kept as it was
  step, params = saved_params(workdir, train_cli_config("--config.train.steps=6"))
  assert step == 6
  assert_same_params(params, four_steps[1])
  fault_table(f"checkpoint step 4 {'data files truncated' if damage == 'truncated' else 'metadata scrambled'}",
              "refused at restore, naming step 4 (exit 2, nothing written); with --fallback: moved to "
              "damaged_checkpoints/4, resumed from step 2",
              "nothing: the damaged files are kept; steps 3-4 recomputed, final parameters equal an "
              "uninterrupted run's bit for bit")


FOREIGN = {  # how the run differs from the checkpoint -> what the error must name
    "d_model": "params/blocks/0/attention/q_DxHxK is (64, 2, 32) float32 here but (32, 2, 16) float32",
    "vocabulary": "params/embed_VxD is (272, 32) float32 here but (48, 32) float32 in the checkpoint",
}


@pytest.mark.parametrize("differs", FOREIGN)
def test_checkpoint_of_another_model_is_refused_naming_what_differs(
    four_steps, differs, tmp_path, capsys, monkeypatch, fault_table):
  workdir = tmp_path / "run"
  shutil.copytree(four_steps[0], workdir)
  os.remove(workdir / "config.json")  # checkpoints copied in without their config
  before = snapshot(workdir)
  overrides = ["--config.train.steps=6"]
  if differs == "d_model":
    overrides.append("--config.model.d_model=64")
  else:  # a vocabulary with 8 more ids than the bytes
    monkeypatch.setattr(run_config, "padded_vocab_size", lambda vocabulary=None, multiple=8: 272)
  assert cli.main(train_argv(workdir, *overrides)) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "checkpoint step 4" in err[0] and "from another model" in err[0], err
  assert FOREIGN[differs] in err[0]
  assert snapshot(workdir) == before
  what = "width (d_model 32, run with 64)" if differs == "d_model" else "vocabulary (264 ids, run with 272)"
  fault_table(f"checkpoint of another {what}, no config.json beside it",
              f"refused at restore, exit 2: `...{FOREIGN[differs][:80]}...`", "nothing: the workdir is unchanged")


def test_diverging_run_stops_naming_the_step_and_never_saves_past_it(four_steps, tmp_path, capsys, fault_table):
  workdir = tmp_path / "run"
  shutil.copytree(four_steps[0], workdir)
  good = snapshot(workdir / "checkpoints")
  argv = train_argv(workdir, "--config.train.steps=12", "--config.train.checkpoint_every=2",
                    "--config.train.learning_rate=1e30", "--config.train.warmup_steps=0")
  assert cli.main(argv) == 3
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "training diverged at step" in err[0], err
  assert "=nan" in err[0] or "=inf" in err[0]
  assert f"the last good checkpoint is step 4 in {workdir / 'checkpoints'}" in err[0]
  diverged_at = int(err[0].split("diverged at step ")[1].split(":")[0])
  assert snapshot(workdir / "checkpoints") == good  # no step after 4 was written
  logged = [json.loads(line)["step"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert max(logged) < diverged_at  # nor logged
  fault_table("learning rate 1e30 from step 4 (the loss or gradient turns NaN)",
              f"stopped at step {diverged_at}, exit 3: `{err[0].split(': ', 1)[1].split(';')[0]}`, "
              "naming the last good checkpoint (step 4)",
              "nothing: no checkpoint or metric past the last finite step was written")


BAD_INPUT = [
    ("--config.train.steps=-5", "config key train.steps=-5 is out of range: it must be > 0"),
    ("--config.train.batch_size=0", "config key train.batch_size=0 is out of range: it must be > 0"),
    ("--config.train.learning_rate=-0.1", "train.learning_rate=-0.1 is out of range: it must be >= 0"),
    ("--config.pauses.pretrain_fraction=1.5", "pauses.pretrain_fraction=1.5 is out of range: it must be in [0, 1)"),
    ("--config.model.dtype=float16", "model.dtype='float16' is out of range: it must be one of 'float32', 'bfloat16'"),
    ("--config.model.d_model=33", "model.d_model=33 must be divisible by model.num_heads=2"),
    ("--config.model.d_model=30", "model.d_model=30 must give an even head width (d_model / num_heads = 15)"),
    ("--config.mesh.shape=(3,1,1)", "mesh.shape=(3, 1, 1) does not fit the 8 devices"),
    ("--config.mesh.shape=(2,4)", "mesh.shape=(2, 4) must have 3 entries (data, fsdp, tensor)"),
    ("--config.train.batch_size=12", "train.batch_size=12 must be a multiple of 8"),
    ("--config.data.targets_length=3", "data.targets_length=3 is shorter than the longest targets of task "
                                       "addition_direct_symbols split train: it must be >= 10"),
    ("--config.eval.splits=('validation',)",
     "eval.splits has 'validation', which task addition_direct_symbols lacks"),
    ("--config.train.init_from=/nowhere", "train.init_from='/nowhere' must be the workdir of a training run"),
    ("--config.task=addition_multiply", "unknown task 'addition_multiply'; registered tasks: "),
    ("--config.train.stepz=3", "unknown config key 'train.stepz'; config.train has: b1, b2, batch_size"),
    ("--config.train.steps=1e4", "bad value for config key 'train.steps': expected int, got '1e4'"),
    ("--config=configs/nowhere.py", "config file 'configs/nowhere.py' does not exist"),
    ("bad_file:steps=1e4", "sets a value of the wrong type: Could not override field 'steps'"),
    ("bad_file:unknown_key", "unknown config key 'train.step'; train has: b1, b2, batch_size"),
]

BAD_CONFIG_FILE = """
from scratchpad import config as config_lib
def get_config(arg):
  cfg = config_lib.load_config_file("{base}")
  if arg == "steps=1e4":
    cfg.train.steps = 1e4
  else:
    cfg.train.step = 10
  return cfg
"""


@pytest.mark.parametrize("arg, expected", BAD_INPUT, ids=[a for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_naming_the_key_before_any_compilation_or_write(
    arg, expected, tmp_path, capsys, monkeypatch, fault_table):
  if arg.startswith("bad_file:"):
    path = tmp_path / "bad_config.py"
    path.write_text(BAD_CONFIG_FILE.format(base=TRAIN_CONFIG.split("=", 1)[1]))
    argv = ["train", f"--config={path}:{arg.split(':')[1]}", *TRAIN_TINY]
  elif arg.startswith("--config="):
    argv = ["train", arg]
  else:
    argv = ["train", TRAIN_CONFIG, *TRAIN_TINY, arg]
  compiled = []
  jit = jax.jit
  monkeypatch.setattr(jax, "jit", lambda *a, **k: compiled.append(a) or jit(*a, **k))
  workdir = tmp_path / "new"
  assert cli.main([*argv, f"--workdir={workdir}"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0], err
  assert not workdir.exists() and not compiled
  fault_table(f"`{arg}`", f"`{err[0][:110]}{'...' if len(err[0]) > 110 else ''}` (exit 2)",
              "nothing: no compilation, no workdir")


def test_same_config_and_seed_give_the_same_data_order_and_losses(tmp_path, fault_table):
  cfg = train_cli_config("--config.train.steps=6", "--config.train.checkpoint_every=6")
  input_pipeline.resolve_lengths(trainer.get_task_info(cfg.task), cfg.data)

  def first_batches(seed):
    it = input_pipeline.host_dataset(cfg.task, cfg.data, 8, seed).as_numpy_iterator()
    return [next(it)["decoder_target_tokens"] for _ in range(3)]

  np.testing.assert_array_equal(first_batches(0), first_batches(0))
  assert not np.array_equal(first_batches(0), first_batches(1))
  runs = [trainer.train(cfg, str(tmp_path / name)) for name in ("a", "b")]
  (state_a, history_a), (state_b, history_b) = runs
  assert [h["loss"] for h in history_a] == [h["loss"] for h in history_b]
  assert_same_params(jax.device_get(state_a["params"]), jax.device_get(state_b["params"]))
  fault_table("the same config and seed run twice", "the same batches in the same order, the same losses",
              "nothing differs: losses and parameters equal bit for bit (a different seed reorders the data)")


def test_sigterm_during_a_sweep_leaves_the_run_unfinished_and_the_rerun_completes_it(tmp_path, fault_table):
  """A preempted run must not be evaluated (its model is unfinished) nor count as done."""
  sweep = tmp_path / "sweep.py"
  sweep.write_text(f"def get_sweep(arg=None):\n  return dict(config={str(ROOT / 'configs' / 'addition.py')!r}, "
                   "args='direct', axes=dict(seed=[0, 1]))\n")
  argv = [sys.executable, "-m", "scratchpad", "sweep", f"--config={sweep}", f"--workdir={tmp_path / 'w'}",
          *TRAIN_TINY, "--config.train.steps=400", "--config.train.checkpoint_every=1000",
          "--config.eval.max_examples=8"]
  proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  metrics = tmp_path / "w" / "seed0" / "metrics.jsonl"
  while not (metrics.exists() and metrics.read_text().count("\n") >= 5):
    assert proc.poll() is None, proc.stdout.read()
    time.sleep(0.2)
  proc.send_signal(signal.SIGTERM)
  out, _ = proc.communicate(timeout=120)
  assert proc.returncode == 0 and "preempted (SIGTERM): saved step" in out, out[-2000:]
  assert not (tmp_path / "w" / "seed0" / "results.json").exists(), "an unfinished model is not evaluated"
  assert not (tmp_path / "w" / "seed1").exists(), "the next run does not start"
  saved = int(out.split("preempted (SIGTERM): saved step ")[1].split()[0])
  rerun = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
  assert f"resuming from step {saved}" in rerun.stdout
  for seed in (0, 1):
    assert set(json.loads((tmp_path / "w" / f"seed{seed}" / "results.json").read_text())) == {"test", "ood", "run"}
  fault_table(f"SIGTERM to a sweep at step {saved} of its first run's 400",
              "saved the step and exited 0 without evaluating the unfinished model or starting the next run; "
              f"the rerun resumed from step {saved}, then evaluated it and ran the second",
              "nothing: no results were written for an unfinished model")
