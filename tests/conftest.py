"""Tests run on 8 host CPU devices, so sharding is exercised on one machine."""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pathlib  # noqa: E402

import pytest  # noqa: E402

from scratchpad.train import host_memory  # noqa: E402

host_memory.keep()  # as the command line does, before any test starts JAX's backends

ROOT = pathlib.Path(__file__).resolve().parent.parent


def tiny_config(*variant: str, **overrides):
  """configs/addition.py at test size: 2 layers of width 32, short runs.

  `overrides` are `section__key=value` pairs, e.g. train__steps=20.
  """
  from scratchpad import config as config_lib
  cfg = config_lib.load_config_file(f"{ROOT / 'configs' / 'addition.py'}:{','.join(variant)}")
  cfg.model.update(num_layers=2, d_model=32, num_heads=2, mlp_dim=64)
  cfg.data.update(inputs_length=0, targets_length=0)  # rows of the longest example, not the recipe's 512
  cfg.train.update(batch_size=8, steps=10, warmup_steps=2, log_every=5, checkpoint_every=5)
  cfg.eval.update(batch_size=64, max_examples=64)
  for key, value in overrides.items():
    section, name = key.split("__")
    cfg[section][name] = value
  return cfg


def on_task(cfg, task: str):
  """Points `cfg` at `task`, with data lengths that fit its longest training example."""
  from scratchpad.tasks import get_task_info
  from scratchpad.train import input_pipeline
  cfg.task = task
  cfg.data.update(inputs_length=0, targets_length=0)
  input_pipeline.resolve_lengths(get_task_info(task), cfg.data)
  return cfg


@pytest.fixture
def make_config():
  return tiny_config


# `python -m scratchpad train` at test size: configs/addition.py:direct, 2 layers of width 32.
TRAIN_CONFIG = f"--config={ROOT / 'configs' / 'addition.py'}:direct"
TRAIN_TINY = ["--config.model.num_layers=2", "--config.model.d_model=32", "--config.model.num_heads=2",
              "--config.model.mlp_dim=64", "--config.train.batch_size=8", "--config.train.warmup_steps=2",
              "--config.train.log_every=1", "--config.data.inputs_length=0", "--config.data.targets_length=0"]


def train_cli_config(*overrides: str):
  """The config `python -m scratchpad train TRAIN_CONFIG *TRAIN_TINY *overrides` trains."""
  from scratchpad import cli, commands
  return commands.build_config(TRAIN_CONFIG.split("=", 1)[1], cli.split_overrides([*TRAIN_TINY, *overrides])[1])


def snapshot(path) -> dict[str, bytes]:
  """Every file under `path` with its bytes: to show that nothing was written."""
  out = {}
  for root, _, files in os.walk(path):
    for name in files:
      with open(os.path.join(root, name), "rb") as f:
        out[os.path.join(root, name)] = f.read()
  return out


def table_cells(line: str) -> list[str]:
  """The cells of one Markdown table row, stripped: `| a | b  |` -> ["a", "b"]."""
  line = line.strip()
  assert line.startswith("|") and line.endswith("|"), line
  return [cell.strip() for cell in line[1:-1].split("|")]


def table_rows(text: str, first_column: str) -> list[dict[str, str]]:
  """The rows of the Markdown table in `text` whose header starts with the cell `first_column`,
  each as {header cell: its cell}; the table ends at the first line that is not a row. Asserts
  the rule under the header and that every row has the header's cells."""
  lines = text.splitlines()
  start = next((i for i, line in enumerate(lines) if line.startswith("|") and table_cells(line)[0] == first_column),
               None)
  assert start is not None, f"no table headed {first_column!r} in:\n{text}"
  header = table_cells(lines[start])
  rule = table_cells(lines[start + 1])
  assert len(rule) == len(header) and all(c and set(c) <= set("-:") for c in rule), lines[start + 1]
  rows = []
  for line in lines[start + 2:]:
    if not line.startswith("|"):
      break
    cells = table_cells(line)
    assert len(cells) == len(header), (header, line)
    rows.append(dict(zip(header, cells)))
  return rows


def check_results_table(out: str, results_by_run: dict) -> list[dict[str, str]]:
  """Asserts that the results table printed in `out` (`report.results_table`) is `results_by_run`'s
  ({run: results.json}): a row per run and split in that order, each metric to 0.1 and within
  [0, 100] ("-" where a run lacks it), and the example count. Returns the rows."""
  rows = table_rows(out, "run")
  assert [(row["run"], row["split"]) for row in rows] == [
      (run, split) for run, results in results_by_run.items() for split in results if split != "run"]
  metrics_shown = [header[:-2] for header in rows[0] if header.endswith(" %")]
  assert list(rows[0]) == ["run", "split", *(f"{m} %" for m in metrics_shown), "examples"]
  assert metrics_shown[:2] == ["answer_accuracy", "sequence_accuracy"]
  for row in rows:
    metrics = results_by_run[row["run"]][row["split"]]
    for m in metrics_shown:
      if m in metrics:
        assert 0 <= metrics[m] <= 100 and row[f"{m} %"] == f"{metrics[m]:.1f}", (row, metrics)
      else:
        assert row[f"{m} %"] == "-", row
    assert row["examples"] == str(metrics["num_examples"])
  return rows


# The fault-injection suite (`pytest -m faults`) records what each provoked fault
# did and cost; the rows print as one table at the end of the run.
FAULT_ROWS = []


@pytest.fixture
def fault_table():
  def record(fault: str, what_the_stack_did: str, lost: str):
    FAULT_ROWS.append((fault, what_the_stack_did, lost))
  return record


def pytest_terminal_summary(terminalreporter):
  if FAULT_ROWS:
    terminalreporter.write_sep("=", "faults injected")
    terminalreporter.write_line("| fault injected | what the stack did | what was lost |")
    terminalreporter.write_line("|---|---|---|")
    for row in FAULT_ROWS:
      terminalreporter.write_line("| " + " | ".join(row) + " |")
