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
