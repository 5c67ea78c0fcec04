"""The launch scripts: what they would run (DRY_RUN=1), their one-line usage errors, a real
local run, and real runs against stubs of python and gcloud: what each variable they read does."""

import functools
import json
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


SCRIPTS = ["tpu_pod.sh", "gpu_host.sh", "local.sh"]


def header_and_body(script: str) -> tuple[str, str]:
  """The comments that document a script, and the code after them."""
  header, body = (ROOT / "launch" / script).read_text().split("set -euo pipefail")
  return header, body


def variables_read(script: str) -> set[str]:
  return set(re.findall(r"\$\{([A-Z_]+)[:}]", header_and_body(script)[1])) - {"XLA_FLAGS", "USER"}


# A PATH whose python, python3 and gcloud are stubs: each call is recorded (its argv, and the
# environment the script gave it) in calls.jsonl; `gcloud ... describe` fails (no slice yet)
# unless STUB_SLICE_EXISTS is set, and the process started with --process_id=$STUB_FAILING
# exits 3.
STUB = """#!{python}
import json, os, sys
with open({log!r}, "a") as f:
  f.write(json.dumps({{"argv": [os.path.basename(sys.argv[0])] + sys.argv[1:],
                      "XLA_FLAGS": os.environ.get("XLA_FLAGS"),
                      "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL")}}) + "\\n")
if "describe" in sys.argv:
  sys.exit(0 if os.environ.get("STUB_SLICE_EXISTS") else 1)
sys.exit(3 if os.environ.get("STUB_FAILING") and f"--process_id={{os.environ['STUB_FAILING']}}" in sys.argv else 0)
"""


def run_stubbed(tmp_path, script: str, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
  """`script` run for real (no DRY_RUN unless given) against the stubs, with no launch variable
  set but `env`: what it printed, and the calls it made."""
  bin_dir, log = tmp_path / "bin", tmp_path / "calls.jsonl"
  if not bin_dir.exists():
    bin_dir.mkdir()
    for name in ("python", "python3", "gcloud"):
      (bin_dir / name).write_text(STUB.format(python=sys.executable, log=str(log)))
      (bin_dir / name).chmod(0o755)
  log.unlink(missing_ok=True)
  ours = set().union(*map(variables_read, SCRIPTS)) | {"XLA_FLAGS"}
  environ = {k: v for k, v in os.environ.items() if k not in ours}
  result = subprocess.run(["bash", str(ROOT / "launch" / script), *args], capture_output=True, text=True,
                          env={**environ, "PATH": f"{bin_dir}:{environ['PATH']}", **env}, timeout=60)
  calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
  return result, calls


def argvs(calls: list[dict]) -> list[list[str]]:
  return [call["argv"] for call in calls]


def ok(result_and_calls) -> list[dict]:
  result, calls = result_and_calls
  assert result.returncode == 0, result.stderr
  return calls


TRAIN = ["train", "--config=configs/addition.py", "--workdir=w"]


def check_tpu_slice_variable(tmp_path, name):
  calls = argvs(ok(run_stubbed(tmp_path, "tpu_pod.sh", *TRAIN, **POD_ENV)))
  describe, create, *rest = calls
  assert describe[:7] == ["gcloud", "compute", "tpus", "tpu-vm", "--project=proj", "--zone=us-west4-a", "describe"]
  assert all(call[:6] == describe[:6] for call in calls), "every call in PROJECT and ZONE"
  assert create[6:] == ["create", "sp-v5e", "--accelerator-type=v5litepod-16", "--version=tpu-ubuntu2204-base"]
  assert all(call[6:8] == ["ssh", "sp-v5e"] or call[-1].startswith("sp-v5e:") for call in rest), "TPU_NAME's workers"
  missing = run_stubbed(tmp_path, "tpu_pod.sh", *TRAIN, **{k: v for k, v in POD_ENV.items() if k != name})
  assert missing[0].returncode != 0 and f"set {name}" in missing[0].stderr and not missing[1], "required"


def check_runtime_version(tmp_path, name):
  calls = argvs(ok(run_stubbed(tmp_path, "tpu_pod.sh", *TRAIN, RUNTIME_VERSION="v2-alpha-tpuv5-lite", **POD_ENV)))
  assert calls[1][6:] == ["create", "sp-v5e", "--accelerator-type=v5litepod-16", "--version=v2-alpha-tpuv5-lite"]


def check_repo_dir(tmp_path, name):
  calls = argvs(ok(run_stubbed(tmp_path, "tpu_pod.sh", *TRAIN, REPO_DIR="work/sp", **POD_ENV)))
  mkdir, scp, install, start = calls[2:]
  assert mkdir[-1] == "--command=mkdir -p work/sp" and scp[-1] == "sp-v5e:work/sp/"
  assert install[-1].startswith("--command=cd work/sp && ") and start[-1].startswith("--command=cd work/sp && ")
  default = argvs(ok(run_stubbed(tmp_path, "tpu_pod.sh", *TRAIN, **POD_ENV)))
  assert default[3][-1] == "sp-v5e:scratchpad/", "under ~ by default"


def check_bucket(tmp_path, name):
  calls = argvs(ok(run_stubbed(tmp_path, "tpu_pod.sh", *TRAIN, BUCKET="b", **POD_ENV)))
  mount = calls[-2]
  assert mount[6:9] == ["ssh", "sp-v5e", "--worker=all"] and "gcsfuse --implicit-dirs b /gcs/b" in mount[-1]
  assert not any("gcsfuse" in " ".join(c) for c in argvs(ok(run_stubbed(tmp_path, "tpu_pod.sh", *TRAIN, **POD_ENV))))


def check_spot(tmp_path, name):
  calls = argvs(ok(run_stubbed(tmp_path, "tpu_pod.sh", *TRAIN, SPOT="1", **POD_ENV)))
  assert calls[1][6] == "create" and calls[1][-1] == "--spot"


def check_dry_run(tmp_path, name, script):
  """Prints the commands a real run makes, and runs none of them."""
  env = {"tpu_pod.sh": POD_ENV, "gpu_host.sh": {}, "local.sh": {"PROCESSES": "2"}}[script]
  dry, calls = run_stubbed(tmp_path, script, *TRAIN, DRY_RUN="1", **env)
  assert dry.returncode == 0 and not calls, dry.stderr
  real = argvs(ok(run_stubbed(tmp_path, script, *TRAIN, **env)))
  if script == "tpu_pod.sh":
    real = real[1:]  # a real run first asks whether the slice exists
  assert sorted(map(shlex.split, dry.stdout.strip().splitlines())) == sorted(real)


def check_skip_install(tmp_path, name):
  install, start = ok(run_stubbed(tmp_path, "gpu_host.sh", *TRAIN))
  assert install["argv"] == ["python3", "-m", "pip", "install", "-q", "-e", ".[cuda]"]
  assert start["argv"] == ["python3", "-m", "scratchpad", *TRAIN] and start["TF_CPP_MIN_LOG_LEVEL"] == "3"
  assert argvs(ok(run_stubbed(tmp_path, "gpu_host.sh", *TRAIN, SKIP_INSTALL="1"))) == [start["argv"]]


def check_host_devices(tmp_path, name):
  (call,) = ok(run_stubbed(tmp_path, "local.sh", *TRAIN, HOST_DEVICES="4"))
  assert call["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=4"]
  (call,) = ok(run_stubbed(tmp_path, "local.sh", *TRAIN, HOST_DEVICES="4", XLA_FLAGS="--xla_dump_to=d"))
  assert call["XLA_FLAGS"].split() == ["--xla_dump_to=d", "--xla_force_host_platform_device_count=4"]
  (call,) = ok(run_stubbed(tmp_path, "local.sh", *TRAIN))
  assert call["XLA_FLAGS"] is None


def check_processes(tmp_path, name):
  calls = argvs(ok(run_stubbed(tmp_path, "local.sh", *TRAIN, PROCESSES="3")))
  assert sorted(calls) == [["python", "-m", "scratchpad", *TRAIN, "--distributed",
                            "--coordinator_address=localhost:12355", "--num_processes=3", f"--process_id={i}"]
                           for i in range(3)]
  assert argvs(ok(run_stubbed(tmp_path, "local.sh", *TRAIN))) == [["python", "-m", "scratchpad", *TRAIN]]
  failed, calls = run_stubbed(tmp_path, "local.sh", *TRAIN, PROCESSES="3", STUB_FAILING="1")
  assert failed.returncode == 3 and len(calls) == 3, "the exit status is the first failure's; every process ran"


def check_port(tmp_path, name):
  calls = argvs(ok(run_stubbed(tmp_path, "local.sh", *TRAIN, PROCESSES="2", PORT="4321")))
  assert [c[-3] for c in calls] == ["--coordinator_address=localhost:4321"] * 2


def check_python(tmp_path, name):
  interpreter = tmp_path / "bin" / "python3"
  ok(run_stubbed(tmp_path, "local.sh", *TRAIN))  # makes the stubs
  assert argvs(ok(run_stubbed(tmp_path, "local.sh", *TRAIN, PYTHON=str(interpreter)))) == [
      ["python3", "-m", "scratchpad", *TRAIN]]


EFFECTS = {
    **{("tpu_pod.sh", v): check_tpu_slice_variable for v in POD_ENV},
    ("tpu_pod.sh", "RUNTIME_VERSION"): check_runtime_version, ("tpu_pod.sh", "REPO_DIR"): check_repo_dir,
    ("tpu_pod.sh", "BUCKET"): check_bucket, ("tpu_pod.sh", "SPOT"): check_spot,
    ("gpu_host.sh", "SKIP_INSTALL"): check_skip_install,
    ("local.sh", "HOST_DEVICES"): check_host_devices, ("local.sh", "PROCESSES"): check_processes,
    ("local.sh", "PORT"): check_port, ("local.sh", "PYTHON"): check_python,
    **{(script, "DRY_RUN"): functools.partial(check_dry_run, script=script) for script in SCRIPTS},
}


@pytest.mark.parametrize("script,name", [(s, v) for s in SCRIPTS for v in sorted(variables_read(s))])
def test_each_variable_a_script_reads_is_documented_and_does_what_it_says(tmp_path, script, name):
  """Run for real against stubs of python and gcloud: the variable changes the commands the
  script runs, or their environment, as its header says it does."""
  assert name in header_and_body(script)[0], f"{script} reads ${name} without documenting it"
  assert (script, name) in EFFECTS, f"{script} reads ${name}: add the check of what it does to EFFECTS"
  EFFECTS[(script, name)](tmp_path, name)


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_script_parses_and_starts_a_command_the_cli_accepts(tmp_path, script):
  assert subprocess.run(["bash", "-n", str(ROOT / "launch" / script)], capture_output=True).returncode == 0
  assert variables_read(script), "each script reads variables (and documents them, above)"
  # The command starts with the arguments as given, which the command line's parser accepts
  # (tpu_pod.sh: on a slice that exists, which it reuses).
  from scratchpad import cli
  env = {"tpu_pod.sh": {**POD_ENV, "STUB_SLICE_EXISTS": "1"}, "gpu_host.sh": {}, "local.sh": {"PROCESSES": "2"}}
  result, calls = run_stubbed(tmp_path, script, "compare", "--config=configs/addition.py:tiny", "--workdir=w x",
                              "--config.train.steps=3", **env[script])
  assert result.returncode == 0, result.stderr
  if script == "tpu_pod.sh":
    assert result.stdout == "reusing sp-v5e\n" and [c["argv"][6] for c in calls] == ["describe", "ssh", "scp", "ssh",
                                                                                        "ssh"], "no create"
    starts = [shlex.split(calls[-1]["argv"][-1].removeprefix("--command=").split(" && ", 1)[1])]
  else:
    starts = [c["argv"] for c in calls if c["argv"][1:3] == ["-m", "scratchpad"]]
  assert starts
  for argv in starts:
    args = argv[argv.index("scratchpad") + 1:]
    assert args[:4] == ["compare", "--config=configs/addition.py:tiny", "--workdir=w x", "--config.train.steps=3"]
    rest, overrides = cli.split_overrides(args)
    parsed = cli.parser().parse_args(rest)
    assert (parsed.command, parsed.workdir, overrides) == ("compare", "w x", [("train.steps", "3")])
    assert parsed.distributed == (script != "gpu_host.sh")
