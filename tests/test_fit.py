"""`compile`: a config's train step compiled ahead of time for N devices, and whether it fits."""

import importlib.util

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


def test_the_command_prints_the_report_and_refuses_bad_targets(capsys):
  assert cli.main(["compile", f"--config={SPEC}", "--devices=2", "--hbm_gib=1",
                   "--config.data.inputs_length=16", "--config.data.targets_length=48"]) == 0
  out = capsys.readouterr().out
  assert "per device: arguments" in out and "fits 1 GiB per device: yes" in out
  assert cli.main(["compile", f"--config={SPEC}", "--devices=64"]) == 2
  assert "--devices=64 but this host has 8 devices" in capsys.readouterr().err
  assert cli.main(["compile", f"--config={SPEC}"]) == 2
  assert "compile needs --devices=N" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("libtpu") is not None, reason="libtpu installed: the topology exists")
def test_a_tpu_topology_without_libtpu_is_a_one_line_error(capsys):
  assert cli.main(["compile", f"--config={SPEC}", "--topology=v5e:2x4"]) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "--topology=v5e:2x4" in err and ".[tpu]" in err
