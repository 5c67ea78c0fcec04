"""`compile`: a config's train step compiled ahead of time for N devices, and whether it fits."""

import importlib.util
import os

import pytest

from conftest import ROOT
from scratchpad import cli
from scratchpad import config as config_lib
from scratchpad.model import transformer
from scratchpad.train import fit, run_config

SPEC = f"{ROOT / 'configs' / 'addition.py'}:direct,nano"


def small(**model):
  cfg = config_lib.load_config_file(SPEC)
  cfg.data.update(inputs_length=16, targets_length=48)
  cfg.model.update(model)
  return cfg


def test_the_report_gives_memory_per_device_and_the_architectures_flops():
  r = fit.compile_report(small(), 8, hbm_gib=16)
  assert r["devices"] == 8 and r["mesh"] == {"data": 8, "fsdp": 1, "tensor": 1} and r["platform"] == "cpu"
  assert r["arguments_gib"] > 0 and r["temporaries_gib"] > 0 and r["fits"]
  assert r["total_gib"] == pytest.approx(r["arguments_gib"] + r["temporaries_gib"] + r["outputs_gib"])
  model_cfg = run_config.model_config(small())
  assert r["tokens_per_step"] == 8 * 64
  assert r["flops_per_step"] == transformer.train_flops_per_token(model_cfg, 64) * 8 * 64
  assert not fit.compile_report(small(), 8, hbm_gib=r["total_gib"] / 2)["fits"]


def test_sharding_the_parameters_lowers_their_memory_per_device():
  replicated = fit.compile_report(small(), 8, hbm_gib=16)
  cfg = small()
  cfg.mesh.shape = (1, 8, 1)  # fsdp: parameters and optimizer state split over the 8 devices
  sharded = fit.compile_report(cfg, 8, hbm_gib=16)
  assert sharded["arguments_gib"] < replicated["arguments_gib"] / 3


def test_the_command_prints_the_report_and_refuses_bad_targets(capsys, monkeypatch):
  import jax
  jax.devices()  # the backends start with conftest's 8 host devices, not the --devices the command adds to XLA_FLAGS
  monkeypatch.setenv("XLA_FLAGS", os.environ["XLA_FLAGS"])  # and what the command adds is undone after the test
  reports, compile_report = [], fit.compile_report
  monkeypatch.setattr(fit, "compile_report", lambda *args: reports.append(compile_report(*args)) or reports[-1])
  assert cli.main(["compile", f"--config={SPEC}", "--devices=2", "--hbm_gib=1",
                   "--config.data.inputs_length=16", "--config.data.targets_length=48"]) == 0
  out = capsys.readouterr().out
  # The report of the config's step compiled for 2 devices, line by line.
  (r,) = reports
  cfg = small()
  model_cfg = run_config.model_config(cfg)
  tokens = cfg.train.batch_size * 64
  assert (r["devices"], r["hbm_gib"], r["parameters"]) == (2, 1.0, transformer.param_count(model_cfg))
  assert r["arguments_gib"] > 0 and r["total_gib"] == pytest.approx(
      r["arguments_gib"] + r["temporaries_gib"] + r["outputs_gib"]) and r["total_gib"] <= 1 and r["fits"]
  model, mesh, memory, step, fits = out.strip().splitlines()
  assert model.startswith(f"{cfg.variant} ({cfg.task}): {r['parameters']:,} parameters, ")
  assert mesh.startswith("mesh {'data': 2, 'fsdp': 1, 'tensor': 1} over 2 cpu devices; memory from cpu compiler")
  assert memory == (f"per device: arguments {r['arguments_gib']:.2f} GiB, temporaries {r['temporaries_gib']:.2f} GiB, "
                    f"outputs {r['outputs_gib']:.2f} GiB, total {r['total_gib']:.2f} GiB")
  assert r["tokens_per_step"] == tokens
  assert r["flops_per_step"] == transformer.train_flops_per_token(model_cfg, 64) * tokens
  assert step.startswith(f"per step: {tokens:,} tokens, {r['flops_per_step'] / 1e12:,.1f} TFLOP (6N + 12 L D T")
  assert fits == "fits 1 GiB per device: yes"
  assert cli.main(["compile", f"--config={SPEC}", "--devices=64"]) == 2
  assert "--devices=64 but this host has 8 devices" in capsys.readouterr().err
  assert cli.main(["compile", f"--config={SPEC}"]) == 2
  assert "compile needs --devices=N" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("libtpu") is not None, reason="libtpu installed: the topology exists")
def test_a_tpu_topology_without_libtpu_is_a_one_line_error(capsys):
  assert cli.main(["compile", f"--config={SPEC}", "--topology=v5e:2x4"]) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "--topology=v5e:2x4" in err and ".[tpu]" in err
