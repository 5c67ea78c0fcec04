"""The README's experiments, end to end (slow: 10 to 30 minutes each on 2 cores)."""

import json

import pytest

from conftest import ROOT, check_results_table
from scratchpad import cli


def compare(tmp_path, config: str) -> dict:
  assert cli.main(["compare", f"--config={ROOT / 'configs' / config}", f"--workdir={tmp_path}"]) == 0
  return json.load(open(tmp_path / "results.json"))


@pytest.mark.slow
def test_main_job_scratchpad_adds_longer_numbers_than_it_trained_on_and_direct_does_not(tmp_path, capsys):
  """Measured (seed 0, with the parameter average): scratchpad 99.5% test, 97.6% / 93.8% on 9 / 10
  digits; direct 0% there. Out of distribution the scratchpad swings with the seed (25.5-93.8% at 10
  digits in nine runs, with and without the average), so the bound here is what every run reached."""
  results = compare(tmp_path, "addition.py:tiny,laptop")
  scratchpad, direct = results["scratchpad"], results["direct"]
  assert scratchpad["test"]["answer_accuracy"] >= 90.0, results
  assert min(scratchpad["ood"]["answer_accuracy_by_length"].values()) >= 20.0, results  # 9 and 10 digits
  assert direct["ood"]["answer_accuracy"] == 0.0, results
  table = capsys.readouterr().out
  assert all(word in table for word in ("direct", "scratchpad", "test", "ood", "answer_accuracy"))
  assert [(row["run"], row["split"]) for row in check_results_table(table, results)] == [
      ("direct", "test"), ("direct", "ood"), ("scratchpad", "test"), ("scratchpad", "ood")]


@pytest.mark.slow
def test_polynomial_scratchpad_gets_every_term_right_and_beats_direct(tmp_path):
  results = compare(tmp_path, "polynomial.py:tiny")
  assert results["scratchpad"]["test"]["answer_accuracy"] > results["direct"]["test"]["answer_accuracy"]
  rows = [json.loads(line) for line in open(tmp_path / "scratchpad" / "predictions" / "test.jsonl")]
  terms = lambda text: text.split("</scratch>")[0]
  assert sum(terms(r["target"]) == terms(r["prediction"]) for r in rows) >= 0.95 * len(rows)


@pytest.mark.slow
def test_program_traces_beat_direct_outputs(tmp_path):
  results = compare(tmp_path, "programs.py:tiny,laptop")
  assert results["scratchpad"]["test"]["answer_accuracy"] > results["direct"]["test"]["answer_accuracy"]
  assert results["scratchpad"]["test"]["trace_line_accuracy"] > 25.0


@pytest.mark.slow
def test_pauses_help_digit_sum_and_are_needed_at_inference(tmp_path):
  """The README's pause study on digit sum, 2 seeds (about 6 minutes): what it measured there."""
  assert cli.main(["pause-study", f"--config={ROOT / 'configs' / 'pause.py'}:nano", f"--workdir={tmp_path}",
                   "--tasks=digit_sum", "--seeds=2", "--ablation_seeds=1"]) == 0
  records = json.load(open(tmp_path / "study.json"))["records"]

  def mean(group, m_inf=None):
    values = [r["value"] for r in records if r["group"] == group and r["m_inf"] == m_inf]
    return sum(values) / len(values)

  assert mean("PausePT_PauseFT") > mean("StdPT_StdFT") + 20.0
  assert mean("StdPT_PauseFT") > mean("StdPT_StdFT") + 20.0
  assert mean("PausePT_PauseFT", m_inf=0) < mean("PausePT_PauseFT")
