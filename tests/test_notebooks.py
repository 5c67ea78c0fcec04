"""The Colab notebooks, executed end to end with tiny settings so they cannot rot
(`pytest -m notebooks`; part of .ci/run)."""

import json
import pathlib
import re

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import ROOT
from scratchpad.tasks.vocabulary import EOS_ID, PAUSE_ID

pytestmark = pytest.mark.notebooks

TINY_MODEL = ("--config.model.num_layers=1 --config.model.d_model=32 --config.model.num_heads=2 "
              "--config.model.mlp_dim=64 --config.train.batch_size=8 --config.train.warmup_steps=1 "
              "--config.train.log_every=1")
SETTINGS = {
    "quickstart.ipynb": dict(SIZE="nano", STEPS=3, EVAL_EXAMPLES=8, EXTRA=TINY_MODEL),
    "pause_tokens.ipynb": dict(SIZE="nano", PRETRAIN_STEPS=2, FINETUNE_STEPS=2, SEEDS=1, EVAL_EXAMPLES=8,
                               EXTRA=TINY_MODEL + " --config.train.checkpoint_every=2"),
}


def test_every_notebook_has_tiny_settings():
  assert sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")) == sorted(SETTINGS)


def execute(name: str, workdir: pathlib.Path) -> nbformat.NotebookNode:
  """Runs the notebook from its folder, as Colab would from a checkout, with the settings
  cell (tagged `parameters`, as papermill does) followed by a cell of tiny settings."""
  nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
  index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
  settings = {**SETTINGS[name], "WORKDIR": str(workdir)}
  nb.cells.insert(index + 1, nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in settings.items())))
  NotebookClient(nb, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
  return nb


def outputs(nb, kind: str) -> list:
  return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == kind or
          kind in o.get("data", {})]


def text_of(nb) -> str:
  return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_quickstart_trains_both_formats_and_shows_scratchpads(tmp_path):
  nb = execute("quickstart.ipynb", tmp_path)
  text = text_of(nb)
  assert (tmp_path / "results.json").exists() and (tmp_path / "scratchpad" / "predictions" / "test.jsonl").exists()
  # A line per format and split: results.json's answer accuracy over the EVAL_EXAMPLES decoded.
  results = json.loads((tmp_path / "results.json").read_text())
  printed = re.findall(r"^(\w+) +(\w+) +answer accuracy +([\d.]+)% +\((\d+) examples\)$", text, re.M)
  assert printed == [(fmt, split, f"{results[fmt][split]['answer_accuracy']:.1f}", "8")
                     for fmt in ("direct", "scratchpad") for split in ("test", "ood")], printed
  # The first three test predictions, then how many of them all differ from their targets.
  records = [json.loads(line) for line in open(tmp_path / "scratchpad" / "predictions" / "test.jsonl")]
  assert re.findall(r"^input: (.*)$", text, re.M) == [r["input"] for r in records[:3]]
  wrong = sum(r["prediction"] != r["target"] for r in records)
  assert f"\n{wrong} of {len(records)} scratchpads differ from the target\n" in text and len(records) == 8
  assert outputs(nb, "image/png"), "the loss plot"


def test_pause_notebook_runs_the_study_and_plots_the_variants(tmp_path):
  nb = execute("pause_tokens.ipynb", tmp_path)
  text = text_of(nb)
  # A digit_sum input with its 10 pauses: the last 10 ids, after the eos.
  ids = json.loads(re.search(r"^input ids: (\[.*\])$", text, re.M).group(1))
  at = re.search(r"^pauses at: (\[.*\]) \(id (\d+)\)$", text, re.M)
  assert at and int(at.group(2)) == PAUSE_ID and json.loads(at.group(1)) == list(range(len(ids) - 10, len(ids)))
  assert ids[-11] == EOS_ID and PAUSE_ID not in ids[:-10]
  # The study's own tables (study.md), printed by the command (through a terminal: \r\n), then the
  # report's sections as Markdown.
  study = (tmp_path / "study.md").read_text()
  assert study.startswith("Pause-token study") and study in text.replace("\r\n", "\n")
  (markdown,) = [o["data"]["text/markdown"] for o in outputs(nb, "text/markdown")]
  assert markdown == (tmp_path / "report.md").read_text().split("## Every run")[0]
  assert (tmp_path / "study.json").exists() and (tmp_path / "pause_variants.png").exists()
  assert outputs(nb, "image/png") and outputs(nb, "text/markdown"), "the bars and the tables"
