"""The files a run writes: from process 0 only, whole or not at all, through `etils.epath`.

Every result, report, config and record goes through here, so that with several processes
one of them writes (the others return), and a crash never leaves half a file: each is
written beside its path and then renamed over it. epath serves local paths and the
filesystems TensorFlow's gfile knows (`gs://`); checkpoints go through Orbax and data
positions through tf.data, which take the same paths.
"""

from __future__ import annotations

import io
import json

import jax
from etils import epath


def is_writer() -> bool:
  """Whether this process writes the run's files: process 0."""
  return jax.process_index() == 0


def write_bytes(path, data: bytes) -> None:
  """Writes `data` beside `path`, then renames it over `path` (process 0 only)."""
  if not is_writer():
    return
  path = epath.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_bytes(data)
  tmp.replace(path)


def write_text(path, text: str) -> None:
  write_bytes(path, text.encode())


def write_json(path, obj, indent: int | None = 2) -> None:
  write_text(path, json.dumps(obj, indent=indent))


def write_figure(path, fig, dpi: int = 120) -> None:
  """A matplotlib figure as a PNG (rendered by process 0 only)."""
  if not is_writer():
    return
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=dpi)
  write_bytes(path, buffer.getvalue())


def read_json(path):
  return json.loads(epath.Path(path).read_text())
