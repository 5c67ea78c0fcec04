"""Where a result came from: the `run` entry of results.json.

Results here move with the host (a kernel that wins on one CPU loses on another),
so every results file says what produced it: package versions, the git commit,
the CPU and its cores, the devices and kernels, and the training's steps and time
(`trainer.TRAINING_FILE`, summed over resumed sessions).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess

import jax

from scratchpad import files, host
from scratchpad.model import cpu_blas
from scratchpad.train import trainer

RUN_KEY = "run"  # results.json: {split: metrics, ..., "run": record}
PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "seqio", "tensorflow", "numpy")


def _version(package: str) -> str | None:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return None


def git_commit() -> str | None:
  """The commit of this checkout, `+dirty` when it has uncommitted changes (None outside git)."""
  here = os.path.dirname(os.path.abspath(__file__))
  try:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                            timeout=10, check=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                           capture_output=True, text=True, timeout=10, check=True).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return None
  return commit + ("+dirty" if dirty else "")


def environment() -> dict:
  """The software and machine of this process."""
  devices = jax.devices()
  return {
      "python": platform.python_version(),
      "packages": {p: _version(p) for p in PACKAGES},
      "git_commit": git_commit(),
      "cpu": host.cpu_model(),
      "cpu_cores": os.cpu_count(),
      "devices": f"{len(devices)} x {devices[0].device_kind}",
      "kernels": cpu_blas.status(),
  }


def record(workdir: str, evaluate_seconds: float) -> dict:
  """The run entry of WORKDIR's results: the environment, the training's record, the evaluation's time."""
  path = os.path.join(workdir, trainer.TRAINING_FILE)
  training = files.read_json(path) if files.exists(path) else None
  return {**environment(), "training": training, "evaluate_seconds": round(evaluate_seconds, 1)}


def splits(results: dict) -> dict:
  """A results file's splits alone, without its run entry."""
  return {k: v for k, v in results.items() if k != RUN_KEY}
