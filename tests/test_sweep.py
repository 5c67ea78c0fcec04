"""Sweeps (runs over sizes x variants x seeds), their per-run commands, and reports with plots."""

import json
import os
import re
import shlex

import pytest

from conftest import ROOT, check_results_table, snapshot, table_rows
from scratchpad import cli, report
from scratchpad import config as config_lib
from scratchpad import sweep as sweep_lib
from scratchpad.model import transformer
from scratchpad.train import run_config

ADDITION = ROOT / "configs" / "addition.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_sweep(tmp_path, body: str) -> str:
  path = tmp_path / "sweep.py"
  path.write_text(f"def get_sweep(arg=None):\n  return {body}\n")
  return str(path)


TINY_SWEEP = (f"dict(config={str(ADDITION)!r}, args='laptop', "
              "axes=dict(size=['nano', 'tiny'], format=['direct', 'scratchpad']), "
              "overrides={'train.steps': 2, 'train.batch_size': 8, 'train.warmup_steps': 1, "
              "'train.log_every': 1, 'eval.max_examples': 4, 'eval.batch_size': 4, "
              "'data.inputs_length': 0, 'data.targets_length': 0})")  # rows of the longest example: small shapes


def test_runs_are_the_product_of_the_axes_in_order(tmp_path):
  spec = write_sweep(tmp_path, f"dict(config={str(ADDITION)!r}, args='laptop', "
                               "axes=dict(size=['nano', 'tiny'], format=['direct', 'scratchpad'], seed=[0, 3]), "
                               "overrides={'train.steps': 7, 'data.pack': False})")
  runs = sweep_lib.runs(sweep_lib.load_sweep(spec), "W", overrides=[("train.batch_size", "4")])
  assert [r.name for r in runs[:3]] == ["nano-direct-seed0", "nano-direct-seed3", "nano-scratchpad-seed0"]
  assert len(runs) == 8 and len({r.workdir for r in runs}) == 8
  run = runs[1]
  assert run.workdir == os.path.join("W", "nano-direct-seed3")
  assert run.spec == f"{ADDITION}:laptop,nano,direct"
  assert run.overrides == (("train.steps", "7"), ("data.pack", "false"), ("train.batch_size", "4"), ("seed", "3"))
  assert dict(run.labels) == {"size": "nano", "format": "direct", "seed": "3"}
  cfg = run.config()
  assert (cfg.seed, cfg.train.steps, cfg.train.batch_size, cfg.data.pack) == (3, 7, 4, False)
  assert cfg.model.d_model == transformer.SIZES["nano"][1] and cfg.task == "addition_direct_symbols"


def test_the_shipped_sweeps_build_every_config():
  for arg in ("laptop", "paper"):
    runs = sweep_lib.runs(sweep_lib.load_sweep(f"{ROOT}/configs/sweeps/addition_sizes.py:{arg}"), "W")
    assert len(runs) >= 8 and len({r.workdir for r in runs}) == len(runs)
    for run in runs:
      spec_path, _, args = run.spec.partition(":")
      config_lib.validate(config_lib.apply_overrides(
          config_lib.load_config_file(f"{ROOT / spec_path}:{args}"), run.overrides))


@pytest.mark.parametrize("body,message", [
    ("dict(config='c.py', axes={}, sizes=[1])", "unknown key 'sizes'; a sweep has: config, args, axes, overrides"),
    ("dict(config='c.py', axes={})", "must set config (an experiment's config file) and axes"),
    ("dict(config='c.py', axes=dict(size=[]))", "axis 'size' has no values"),
    ("[1, 2]", "get_sweep() must return a dict"),
])
def test_a_bad_sweep_file_is_one_line(tmp_path, capsys, body, message):
  spec = write_sweep(tmp_path, body)
  assert cli.main(["sweep", f"--config={spec}", f"--workdir={tmp_path / 'w'}"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and message in err[0], err
  assert not (tmp_path / "w").exists()


def test_a_bad_run_is_refused_before_any_run_trains(tmp_path, capsys):
  spec = write_sweep(tmp_path, f"dict(config={str(ADDITION)!r}, axes=dict(size=['nano', 'huge']))")
  assert cli.main(["sweep", f"--config={spec}", f"--workdir={tmp_path / 'w'}"]) == 2
  assert "unknown variant 'huge'" in capsys.readouterr().err
  assert cli.main(["sweep", f"--config={spec}", f"--workdir={tmp_path / 'w'}", "--only=nano-medium"]) == 2
  assert "--only names run 'nano-medium', which the sweep lacks; it has: nano, huge" in capsys.readouterr().err
  spec = write_sweep(tmp_path, f"dict(config={str(ADDITION)!r}, axes=dict(size=['nano', 'tiny']))")
  assert cli.main(["sweep", f"--config={spec}", f"--workdir={tmp_path / 'w'}", "--config.train.batch_size=0"]) == 2
  assert "run nano: config key train.batch_size=0 is out of range" in capsys.readouterr().err
  assert not (tmp_path / "w").exists()


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
  """The tiny sweep run once through the command line: 2 sizes x 2 formats."""
  tmp = tmp_path_factory.mktemp("sweep")
  spec, workdir = write_sweep(tmp, TINY_SWEEP), str(tmp / "runs")
  assert cli.main(["sweep", f"--config={spec}", f"--workdir={workdir}"]) == 0
  return spec, workdir


@pytest.mark.e2e
def test_a_sweep_runs_every_run_and_reports_accuracy_against_parameters(swept):
  _, workdir = swept
  names = ["nano-direct", "nano-scratchpad", "tiny-direct", "tiny-scratchpad"]
  results = {}
  for name in names:
    results[name] = json.load(open(os.path.join(workdir, name, "results.json")))
    assert set(results[name]) == {"test", "ood", "run"} and results[name]["test"]["num_examples"] == 4
    assert json.load(open(os.path.join(workdir, name, "run.json")))["labels"] == dict(
        zip(("size", "format"), name.split("-")))
  text = open(os.path.join(workdir, "report.md")).read()
  assert "## Accuracy against parameters" in text and "## Every run" in text
  # A row per size (with the 48-id symbol vocabulary), a column per format and split: each run's accuracy.
  scaling = table_rows(text.split("## Accuracy against parameters")[1], "size")
  assert [(row["size"], row["parameters"]) for row in scaling] == [("nano", "0.10M"), ("tiny", "0.80M")]
  columns = {f"{fmt} {split} (answer_accuracy %)": (fmt, split) for fmt in ("direct", "scratchpad")
             for split in ("test", "ood")}
  assert set(scaling[0]) == {"size", "parameters", *columns}
  for row in scaling:
    for column, (fmt, split) in columns.items():
      run = results[row["size"] + "-" + fmt]
      assert row[column] == f"{run[split]['answer_accuracy']:.1f} (n=1)", (column, row)
  check_results_table(text.split("## Every run")[1], results)  # every run, every split
  assert open(os.path.join(workdir, report.SCALING_PLOT), "rb").read(8) == PNG_MAGIC


@pytest.mark.e2e
def test_a_finished_sweep_is_skipped_and_only_runs_the_runs_named(swept, capsys):
  spec, workdir = swept
  before = snapshot(os.path.join(workdir, "nano-direct"))
  assert cli.main(["sweep", f"--config={spec}", f"--workdir={workdir}"]) == 0
  out = capsys.readouterr().out
  assert out.count("(done: skipped)") == 4
  assert snapshot(os.path.join(workdir, "nano-direct")) == before, "a finished run is not touched"
  # Each printed command is one run of the same sweep; it finds its run done.
  assert cli.main(["sweep", f"--config={spec}", f"--workdir={workdir}", "--commands"]) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  assert len(lines) == 4 and lines[2].endswith("--only=tiny-direct")
  argv = shlex.split(lines[2])
  assert argv[:4] == ["python", "-m", "scratchpad", "sweep"]
  assert cli.main(argv[3:]) == 0
  out = capsys.readouterr().out
  assert "== [1/1] tiny-direct (done: skipped)" in out


@pytest.mark.e2e
def test_a_sweep_refuses_a_workdir_of_another_model(swept, tmp_path, capsys):
  spec, workdir = swept
  other = write_sweep(tmp_path, TINY_SWEEP.replace("'tiny'", "'mini'").replace("'nano'", "'tiny'"))
  os.makedirs(tmp_path / "w")
  os.symlink(os.path.join(workdir, "tiny-direct"), tmp_path / "w" / "mini-direct")
  assert cli.main(["sweep", f"--config={other}", f"--workdir={tmp_path / 'w'}"]) == 2
  assert "run mini-direct: " in capsys.readouterr().err


def _fake_run(root, name, size, fmt, seed, results, group=None):
  """A finished run's files, as a sweep or the pause study leaves them, without training."""
  workdir = os.path.join(root, name)
  cfg = config_lib.load_config_file(f"{ADDITION}:{fmt},{size}")
  run_config.save_config(cfg, workdir)
  labels = {"size": size, "format": fmt, "seed": str(seed)} if group is None else {
      "task": "addition", "group": group, "seed": str(seed)}
  with open(os.path.join(workdir, "run.json"), "w") as f:
    json.dump({"labels": labels}, f)
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump({split: {"answer_accuracy": v, "num_examples": 10} for split, v in results.items()}, f)


def test_the_report_averages_seeds_per_size_format_and_split(tmp_path):
  for seed, (test, ood) in enumerate([(40.0, 0.0), (60.0, 10.0)]):
    _fake_run(tmp_path, f"tiny-scratchpad-seed{seed}", "tiny", "scratchpad", seed, {"test": test, "ood": ood})
  _fake_run(tmp_path, "nano-scratchpad-seed0", "nano", "scratchpad", 0, {"test": 5.0, "ood": 0.0})
  text = report.write_report(str(tmp_path))
  table = re.sub(" +", " ", text.split("## Accuracy against parameters")[1].split("![")[0])
  assert table.index("| nano ") < table.index("| tiny "), "rows by parameter count"
  assert "| tiny | 0.80M | 50.0 ± 14.1 (n=2) | 5.0 ± 7.1 (n=2) |" in table
  assert "| nano | 0.10M | 5.0 (n=1) | 0.0 (n=1) |" in table
  assert open(tmp_path / report.SCALING_PLOT, "rb").read(8) == PNG_MAGIC
  assert text == (tmp_path / report.REPORT_FILE).read_text()


def test_the_report_of_a_pause_study_has_bars_and_the_papers_tables(tmp_path):
  for group, values in (("StdPT_StdFT", (10.0, 12.0)), ("PausePT_PauseFT", (20.0, 22.0))):
    for seed, v in enumerate(values):
      _fake_run(tmp_path, f"{group}-{seed}", "tiny", "direct", seed, {"test": v}, group=group)
  text = report.write_report(str(tmp_path))
  assert "## Pause tokens" in text
  (main,) = table_rows(text.split("## Pause tokens")[1], "task (metric %)")
  assert main == {"task (metric %)": "addition (answer_accuracy)", "StdPT_StdFT": "11.0 ± 1.4 (n=2)",
                  "StdPT_PauseFT": "-", "PausePT_StdFT": "-", "PausePT_PauseFT": "21.0 ± 1.4 (n=2)",
                  "PausePT_PauseFT - StdPT_StdFT (verdict)": "+10.0 (PausePT_PauseFT better: 2σ = 2.8)"}
  assert open(tmp_path / report.PAUSE_PLOT, "rb").read(8) == PNG_MAGIC
  assert "## Accuracy against parameters" not in text


def test_a_directory_without_runs_has_no_report(tmp_path, capsys):
  assert cli.main(["report", f"--workdir={tmp_path}"]) == 2
  assert "holds no finished run" in capsys.readouterr().err
  assert not os.listdir(tmp_path)


def test_a_compiled_step_holds_at_least_the_parameters_and_both_adam_moments(make_config):
  import jax
  from scratchpad.model import transformer
  from scratchpad.train import trainer
  cfg = make_config()
  cfg.data.update(inputs_length=8, targets_length=8)
  setup = trainer.ShardedTraining(cfg, jax.devices()[:1])
  params = transformer.param_count(setup.model_cfg)
  need = report.step_memory_bytes(setup.compile_train_step(batch_size=4, length=16))
  assert 3 * 4 * params <= need < 20 * 4 * params
