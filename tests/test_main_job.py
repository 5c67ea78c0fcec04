"""The README's main job, end to end (slow: about 10 minutes on 2 cores)."""

import json

import pytest

from conftest import ROOT
from scratchpad import cli


@pytest.mark.slow
def test_main_job_scratchpad_beats_direct_in_distribution(tmp_path, capsys):
  config = f"--config={ROOT / 'configs' / 'addition.py'}:tiny,laptop"
  assert cli.main(["compare", config, f"--workdir={tmp_path}"]) == 0
  results = json.load(open(tmp_path / "results.json"))
  assert results["scratchpad"]["test"]["answer_accuracy"] >= 95.0, results
  assert results["scratchpad"]["test"]["answer_accuracy"] > results["direct"]["test"]["answer_accuracy"]
  table = capsys.readouterr().out
  assert all(word in table for word in ("direct", "scratchpad", "test", "ood", "answer_accuracy"))
