"""Files from process 0 only, written whole."""

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from scratchpad import files  # noqa: E402


def test_process_0_writes_each_file_whole_and_the_others_write_nothing(tmp_path, monkeypatch):
  fig = plt.figure()
  files.write_json(tmp_path / "a" / "results.json", {"x": 1})
  files.write_text(tmp_path / "a" / "results.md", "| x |\n")
  files.write_figure(tmp_path / "a" / "plot.png", fig)
  assert files.read_json(tmp_path / "a" / "results.json") == {"x": 1}
  assert (tmp_path / "a" / "plot.png").read_bytes().startswith(b"\x89PNG")
  assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["plot.png", "results.json", "results.md"]
  monkeypatch.setattr(jax, "process_index", lambda: 1)
  files.write_json(tmp_path / "b" / "results.json", {"x": 1})
  files.write_text(tmp_path / "a" / "results.md", "overwritten")
  files.write_figure(tmp_path / "b" / "plot.png", fig)
  assert not (tmp_path / "b").exists() and (tmp_path / "a" / "results.md").read_text() == "| x |\n"
  plt.close(fig)


def test_each_operation_works_on_a_non_local_filesystem(tmp_path):
  """TensorFlow's in-memory ram:// stands in for gs://: both go through gfile."""
  root = f"ram://{tmp_path.name}"
  files.write_json(f"{root}/run/results.json", {"x": 1})
  files.append_text(f"{root}/run/metrics.jsonl", "1\n")
  files.append_text(f"{root}/run/metrics.jsonl", "2\n")
  files.makedirs(f"{root}/run/data_state/5")
  assert files.read_json(f"{root}/run/results.json") == {"x": 1}
  assert files.read_text(f"{root}/run/metrics.jsonl") == "1\n2\n"
  assert files.listdir(f"{root}/run") == ["data_state", "metrics.jsonl", "results.json"]
  assert files.isdir(f"{root}/run/data_state") and not files.isdir(f"{root}/run/results.json")
  assert files.listdir(f"{root}/missing") == [] and not files.exists(f"{root}/missing")
  assert files.absolute(f"{root}/run") == f"{root}/run" and files.relative(f"{root}/run/a", root) == "run/a"
  files.rename(f"{root}/run/results.json", f"{root}/run/old.json")
  assert files.listdir(f"{root}/run") == ["data_state", "metrics.jsonl", "old.json"]
  files.remove_tree(f"{root}/run/data_state")
  files.remove_tree(f"{root}/run/data_state")  # gone already: nothing to do
  assert files.listdir(f"{root}/run") == ["metrics.jsonl", "old.json"]
  files.remove_tree(root)
  assert not files.exists(f"{root}/run/old.json")
