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

  On a terminal the line redraws in place at every update; in a log file a new
  line is written at most every `log_seconds`, and at the last step.
  """

  def __init__(self, start: int, total: int, desc: str, width: int = 20, stream=None, log_seconds: float = 15.0):
    self.start, self.total, self.desc, self.width = start, total, desc, width
    self.stream = stream or sys.stderr
    self.t0 = self.last_line = time.perf_counter()
    self.active = jax.process_index() == 0
    self.tty = self.stream.isatty()
    self.log_seconds = log_seconds

  def update(self, step: int, loss: float, tokens_per_second: float):
    now = time.perf_counter()
    if not self.active or (not self.tty and step < self.total and now - self.last_line < self.log_seconds):
      return
    self.last_line = now
    elapsed = now - self.t0
    rate = (step - self.start) / elapsed if elapsed > 0 else 0.0
    left = (self.total - step) / rate if rate > 0 else float("nan")
    filled = int(self.width * step / max(self.total, 1))
    line = (f"{self.desc} [{'#' * filled}{'-' * (self.width - filled)}] {step}/{self.total} "
            f"loss {loss:.4f} {tokens_per_second / 1000:.1f}k tok/s "
            f"elapsed {_duration(elapsed)} left {_duration(left) if rate > 0 else '?'}")
    self.stream.write(("\r" + line) if self.tty else (line + "\n"))
    self.stream.flush()

  def note(self, text: str):
    """A line of its own (a validation result), on process 0."""
    if self.active:
      self.stream.write(("\n" if self.tty else "") + f"{self.desc}: {text}\n")
      self.stream.flush()

  def close(self):
    if self.active and self.tty:
      self.stream.write("\n")
      self.stream.flush()
