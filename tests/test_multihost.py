"""Several JAX processes on this machine (loopback, CPU devices, gloo collectives) train as one.

Each of 2 processes has 4 CPU devices and reads its own seqio shard; together they
form the 8-device mesh that the test process (8 devices, conftest.py) has alone.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from conftest import ROOT, TRAIN_CONFIG, TRAIN_TINY, train_cli_config
from scratchpad import files
from scratchpad.evaluation import evaluator
from scratchpad.train import checkpoints, input_pipeline, optim, trainer



def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def start_processes(workdir, *overrides: str, num_processes: int = 2, command: str = "train") -> list[subprocess.Popen]:
  """`python -m scratchpad train --distributed` (or `command`: `evaluate`) as `num_processes`
  processes of 8/num_processes devices."""
  env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={8 // num_processes}"}
  port = free_port()
  config = [TRAIN_CONFIG, *TRAIN_TINY] if command == "train" else []
  return [subprocess.Popen(
      [sys.executable, "-m", "scratchpad", command, *config, *overrides,
       f"--workdir={workdir}", "--distributed", f"--coordinator_address=localhost:{port}",
       f"--num_processes={num_processes}", f"--process_id={i}"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
      for i in range(num_processes)]


def finish(processes, timeout=300) -> list[str]:
  outs = [p.communicate(timeout=timeout)[0] for p in processes]
  for p, out in zip(processes, outs):
    assert p.returncode == 0, out[-3000:]
  return outs


@pytest.mark.e2e
def test_two_processes_train_and_evaluate_like_one_and_one_restores_their_checkpoint(tmp_path):
  overrides = ["--config.train.steps=6", "--config.train.checkpoint_every=3"]
  t0 = time.perf_counter()
  finish(start_processes(tmp_path / "two", *overrides))
  print(f"2-process run: {time.perf_counter() - t0:.1f} s")
  logged = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]

  # One process, the same 8-device mesh, fed the global batch the two built: shard 0's rows, then shard 1's.
  cfg = train_cli_config(*overrides)
  input_pipeline.resolve_lengths(trainer.get_task_info(cfg.task), cfg.data)
  shards = [input_pipeline.host_dataset(cfg.task, cfg.data, 4, cfg.seed, shard=(i, 2)).as_numpy_iterator()
            for i in range(2)]
  setup = trainer.ShardedTraining(cfg)
  step, state, losses = setup.train_step_fn(), setup.init_state(), []
  for _ in range(6):
    parts = [input_pipeline.with_packing_features(next(s)) for s in shards]
    batch = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    state, metrics = step(state, jax.device_put(batch, setup.batch_sharding))
    losses.append(float(metrics["loss"]))
  np.testing.assert_allclose([r["loss"] for r in logged], losses, rtol=1e-5)

  restored = checkpoints.restore_latest(str(tmp_path / "two"), setup.abstract_state)  # written by 2, read by 1
  assert int(restored["step"]) == 6
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
               jax.device_get(restored["params"]), jax.device_get(state["params"]))

  # The two processes evaluate their checkpoint together; one process decodes the same text.
  outs = finish(start_processes(tmp_path / "two", "--config.eval.max_examples=16", command="evaluate"))
  for i, out in enumerate(outs):  # each process decoded half of each split
    assert out.count(f"process {i}: decoding 8 of 16 examples") == 2, out[-2000:]
  two = {split: (tmp_path / "two" / "predictions" / f"{split}.jsonl").read_text() for split in ("test", "ood")}
  cfg.eval.max_examples = 16
  evaluator.evaluate(cfg, str(tmp_path / "one"), setup.graphdef, optim.evaluation_params(restored))
  one = files.read_json(evaluator.results_path(str(tmp_path / "one")))
  for split, text in two.items():
    assert text.count("\n") == 16 and text == (tmp_path / "one" / "predictions" / f"{split}.jsonl").read_text()
    two_metrics = files.read_json(evaluator.results_path(str(tmp_path / "two")))[split]
    assert {k: v for k, v in two_metrics.items() if k != "decode_seconds"} == {
        k: v for k, v in one[split].items() if k != "decode_seconds"}


@pytest.mark.faults
def test_sigterm_to_one_process_stops_both_at_the_same_saved_step(tmp_path, fault_table):
  processes = start_processes(tmp_path / "run", "--config.train.steps=400", "--config.train.checkpoint_every=1000")
  metrics = tmp_path / "run" / "metrics.jsonl"
  while not (metrics.exists() and metrics.read_text().count("\n") >= 5):
    assert all(p.poll() is None for p in processes)
    time.sleep(0.2)
  processes[1].send_signal(signal.SIGTERM)  # the scheduler preempts one worker
  outs = finish(processes, timeout=120)
  saved = {int(out.split("preempted (SIGTERM): saved step ")[1].split()[0])
           for out in outs if "preempted (SIGTERM)" in out}
  assert len(saved) == 1 and "preempted (SIGTERM)" in outs[0], outs[0][-2000:]
  mngr = checkpoints.manager(str(tmp_path / "run"))
  assert mngr.latest_step() == saved.pop() < 400
  fault_table(f"SIGTERM to process 1 of 2 at step {mngr.latest_step()}",
              "both processes stopped after the same step, saved it together and exited 0",
              f"nothing: step {mngr.latest_step()} is the latest checkpoint, where the same command resumes")
  mngr.close()
