"""The launch scripts: what they would run (DRY_RUN=1), their one-line usage errors, and a
real local run."""

import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import ROOT

POD_ENV = {"TPU_NAME": "sp-v5e", "ZONE": "us-west4-a", "ACCELERATOR_TYPE": "v5litepod-16", "PROJECT": "proj"}


def launch(script: str, *args: str, **env: str) -> subprocess.CompletedProcess:
  environ = {k: v for k, v in os.environ.items() if k not in ("DRY_RUN", "PROCESSES", "HOST_DEVICES", "BUCKET")}
  return subprocess.run(["bash", str(ROOT / "launch" / script), *args], capture_output=True, text=True,
                        env={**environ, **env}, timeout=300)


def commands(result) -> list[list[str]]:
  assert result.returncode == 0, result.stderr
  return [shlex.split(line) for line in result.stdout.strip().splitlines()]


def test_tpu_pod_creates_installs_and_starts_the_command_on_every_worker():
  sweep = ["sweep", "--config=configs/sweeps/addition_sizes.py:paper", "--workdir=/gcs/b/runs/my sizes"]
  lines = commands(launch("tpu_pod.sh", *sweep, DRY_RUN="1", SPOT="1", BUCKET="b", **POD_ENV))
  gcloud = ["gcloud", "compute", "tpus", "tpu-vm", "--project=proj", "--zone=us-west4-a"]
  assert all(line[:6] == gcloud for line in lines)
  create, mkdir, scp, install, mount, start = lines
  assert create[6:] == ["create", "sp-v5e", "--accelerator-type=v5litepod-16",
                        "--version=tpu-ubuntu2204-base", "--spot"]
  assert scp[6:9] == ["scp", "--worker=all", "--recurse"] and scp[-1] == "sp-v5e:scratchpad/"
  assert {"pyproject.toml", "scratchpad", "configs"} <= set(scp)
  for line in (mkdir, install, mount, start):
    assert line[6:9] == ["ssh", "sp-v5e", "--worker=all"]
  assert "pip install -q -e '.[tpu]'" in install[9]
  assert "gcsfuse --implicit-dirs b /gcs/b" in mount[9]
  # The worker's shell gets the stack's command with every argument intact, and --distributed.
  remote = start[9].removeprefix("--command=")
  assert remote.startswith("cd scratchpad && python3 -m scratchpad ")
  assert shlex.split(remote.split(" -m scratchpad ", 1)[1]) == [*sweep, "--distributed"]


def test_tpu_pod_defaults_and_required_variables():
  lines = commands(launch("tpu_pod.sh", "train", "--config=configs/addition.py", "--workdir=/w",
                          DRY_RUN="1", RUNTIME_VERSION="v2-alpha-tpuv5-lite", **POD_ENV))
  assert "--version=v2-alpha-tpuv5-lite" in lines[0] and "--spot" not in lines[0]
  assert not any("gcsfuse" in " ".join(line) for line in lines), "no BUCKET: no mount"
  for missing in POD_ENV:
    result = launch("tpu_pod.sh", "train", DRY_RUN="1", **{k: v for k, v in POD_ENV.items() if k != missing})
    assert result.returncode != 0 and f"set {missing}" in result.stderr and not result.stdout
  result = launch("tpu_pod.sh", DRY_RUN="1", **POD_ENV)
  assert result.returncode == 2 and "usage: launch/tpu_pod.sh COMMAND" in result.stderr


def test_gpu_host_installs_the_cuda_build_and_runs_the_command():
  install, start = commands(launch("gpu_host.sh", "train", "--config=configs/addition.py:small", "--workdir=r",
                                   DRY_RUN="1"))
  assert install == ["python3", "-m", "pip", "install", "-q", "-e", ".[cuda]"]
  assert start == ["python3", "-m", "scratchpad", "train", "--config=configs/addition.py:small", "--workdir=r"]
  assert len(commands(launch("gpu_host.sh", "train", DRY_RUN="1", SKIP_INSTALL="1"))) == 1


def test_local_starts_one_process_per_jax_process_with_one_coordinator():
  lines = commands(launch("local.sh", "train", "--workdir=r", DRY_RUN="1", PROCESSES="3", PORT="4321"))
  assert len(lines) == 3
  for i, line in enumerate(lines):
    assert line[1:] == ["-m", "scratchpad", "train", "--workdir=r", "--distributed",
                        "--coordinator_address=localhost:4321", "--num_processes=3", f"--process_id={i}"]
  assert commands(launch("local.sh", "train", "--workdir=r", DRY_RUN="1"))[0][1:] == [
      "-m", "scratchpad", "train", "--workdir=r"]


def test_local_runs_a_command_for_real(tmp_path):
  program = tmp_path / "p.py"
  program.write_text("a = 2\noutput = a * 3\n")
  result = launch("local.sh", "trace", str(program), PYTHON=sys.executable)
  assert result.returncode == 0, result.stderr
  assert result.stdout.splitlines()[-1] == 'state: {"a": 2, "output": 6}'


@pytest.mark.parametrize("script", ["tpu_pod.sh", "gpu_host.sh", "local.sh"])
def test_each_script_documents_the_variables_it_reads(script):
  text = (ROOT / "launch" / script).read_text()
  header = text.split("set -euo pipefail")[0]
  body = text.split("set -euo pipefail")[1]
  read = set(re.findall(r"\$\{([A-Z_]+)[:}]", body)) - {"XLA_FLAGS", "USER"}
  assert read, script
  for name in read:
    assert name in header, f"{script} reads ${name} without documenting it"
