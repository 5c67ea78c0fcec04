"""host_memory.keep(): a CPU program's temporary buffers stay mapped from one run to the next."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

# The reference model's training step at batch 8 (~240 MB of temporaries): the page faults of
# one step after the first say whether its memory was mapped afresh.
PROGRAM = """
import json, resource
from scratchpad.train import host_memory
kept = host_memory.keep()
import jax
from benchmarks import common, train
from scratchpad.model import transformer
cfg = transformer.ModelConfig(vocab_size=264, num_layers=4, d_model=256, num_heads=4, mlp_dim=1024)
step, _, _ = train.jax_train_step(cfg, common.TrainHParams(), common.synthetic_batch(8, 256, 264))
jax.block_until_ready(step())
faults = []
for _ in range(3):
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  jax.block_until_ready(step())
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"kept": kept, "again": host_memory.keep(), "faults": min(faults)}))
"""


def run_program(**env):
  out = subprocess.run([sys.executable, "-c", PROGRAM], cwd=ROOT, check=True, capture_output=True, text=True,
                       timeout=300, env={**os.environ, "XLA_FLAGS": "", **env})
  return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_kept_memory_is_not_faulted_in_again_at_every_run():
  default = run_program(SCRATCHPAD_HOST_MEMORY="default")
  kept = run_program()
  assert not default["kept"] and default["faults"] > 20_000  # ~240 MB mapped and zero-filled afresh
  assert kept["kept"] and kept["again"] and kept["faults"] < 2_000


def test_keep_changes_nothing_once_the_backends_have_started():
  code = ("import jax; jax.devices(); from scratchpad.train import host_memory; "
          "print(host_memory.keep(), jax.config.values['jax_cpu_enable_async_dispatch'])")
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True,
                       timeout=120).stdout.split()
  assert out[-2:] == ["False", "True"]
