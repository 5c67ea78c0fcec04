"""A progress line for long work: step, loss, tokens/s and time left."""

from __future__ import annotations

import sys
import time

import jax


def _duration(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
  """Prints `desc [####----] step/total loss tok/s elapsed left` on process 0.

  On a terminal the line redraws in place; in a log each update is a new line.
  """

  def __init__(self, start: int, total: int, desc: str, width: int = 20, stream=None):
    self.start, self.total, self.desc, self.width = start, total, desc, width
    self.stream = stream or sys.stderr
    self.t0 = time.perf_counter()
    self.active = jax.process_index() == 0
    self.tty = self.stream.isatty()

  def update(self, step: int, loss: float, tokens_per_second: float):
    if not self.active:
      return
    elapsed = time.perf_counter() - self.t0
    rate = (step - self.start) / elapsed if elapsed > 0 else 0.0
    left = (self.total - step) / rate if rate > 0 else float("nan")
    filled = int(self.width * step / max(self.total, 1))
    line = (f"{self.desc} [{'#' * filled}{'-' * (self.width - filled)}] {step}/{self.total} "
            f"loss {loss:.4f} {tokens_per_second / 1000:.1f}k tok/s "
            f"elapsed {_duration(elapsed)} left {_duration(left) if rate > 0 else '?'}")
    self.stream.write(("\r" + line) if self.tty else (line + "\n"))
    self.stream.flush()

  def close(self):
    if self.active and self.tty:
      self.stream.write("\n")
      self.stream.flush()
