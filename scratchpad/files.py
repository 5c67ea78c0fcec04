"""The files a run writes and reads, on any filesystem, written by process 0 only and whole.

Every workdir path goes through here, and here through `tf.io.gfile`, which serves local
paths, `gs://` and TensorFlow's in-memory `ram://` (the tests' non-local filesystem). With
several processes one of them writes (the others return), and a crash never leaves half a
file: each is written beside its path and then renamed over it. Checkpoints go through Orbax
(TensorStore: local paths and `gs://`) and data positions through tf.data's own checkpoints
(gfile again), which take the same paths.
"""

from __future__ import annotations

import functools
import io
import json
import os

import jax


@functools.cache
def _tf():
  import tensorflow as tf  # on first use: reports and the command line's checks stay light
  return tf


def _gfile():
  return _tf().io.gfile


def is_writer() -> bool:
  """Whether this process writes the run's files: process 0."""
  return jax.process_index() == 0


def is_remote(path) -> bool:
  """Whether `path` names a filesystem by its scheme (`gs://`, `ram://`)."""
  return "://" in str(path)


def absolute(path) -> str:
  """`path` made absolute where it is local; a URL as it is."""
  return str(path) if is_remote(path) else os.path.abspath(path)


def relative(path, start) -> str:
  """`path` below `start`, as `os.path.relpath` says it, for URLs too."""
  if not is_remote(path):
    return os.path.relpath(str(path), str(start))
  return str(path)[len(str(start)):].strip("/") or "."


def write_bytes(path, data: bytes) -> None:
  """Writes `data` beside `path`, then renames it over `path` (process 0 only)."""
  if not is_writer():
    return
  path = str(path)
  makedirs(os.path.dirname(path))
  with _gfile().GFile(path + ".tmp", "wb") as f:
    f.write(data)
  _gfile().rename(path + ".tmp", path, overwrite=True)


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


def append_text(path, text: str) -> None:
  """Appends `text` to `path` (process 0 only): logs of lines. On `gs://` gfile rewrites the
  object each time, which suits a metrics line every few hundred steps."""
  if is_writer():
    with _gfile().GFile(str(path), "a") as f:
      f.write(text)


def read_text(path) -> str:
  with _gfile().GFile(str(path), "r") as f:
    return f.read()


def read_json(path):
  return json.loads(read_text(path))


def exists(path) -> bool:
  return _gfile().exists(str(path))


def isdir(path) -> bool:
  return _gfile().isdir(str(path))


def listdir(path) -> list[str]:
  """The names in directory `path`, sorted; none where it does not exist."""
  return sorted(name.rstrip("/") for name in _gfile().listdir(str(path))) if isdir(path) else []


def walk(path):
  """`os.walk` for any filesystem: (directory, its subdirectories, its files), top down."""
  return _gfile().walk(str(path))


def makedirs(path) -> None:
  """Makes directory `path` and those above it, where they are missing (any process: the
  per-process data positions need their own)."""
  if path:
    _gfile().makedirs(str(path))


def remove_tree(path) -> None:
  """Removes `path` and everything under it, if it exists."""
  try:
    _gfile().rmtree(str(path))
  except _tf().errors.NotFoundError:
    pass


def rename(source, target, overwrite: bool = False) -> None:
  _gfile().rename(str(source), str(target), overwrite=overwrite)
