"""The offline pretraining corpus: real text that needs no download.

Pod runs pretrain on C4 (`scratchpad.tasks.c4`). This machine cannot download
it, so the pause study pretrains on the source of a fixed list of Python
standard-library modules (real, human-written text that ships with every
Python), in pieces of at most `PIECE_BYTES` bytes, mixed with the text of the
small downstream tasks' training splits (`registry.py`, `pretrain_text`). The
modules' text differs a little between Python versions; within one version it
is fixed. The last two modules are the validation split.
"""

from __future__ import annotations

import os
import sysconfig

MODULES = ("bisect", "calendar", "colorsys", "copy", "csv", "fnmatch", "fractions", "functools", "glob",
           "graphlib", "heapq", "numbers", "operator", "pprint", "queue", "random", "reprlib", "sched",
           "secrets", "shlex", "stat", "statistics", "string", "textwrap", "hmac", "quopri")
VALIDATION_MODULES = 2
PIECE_BYTES = 255  # with its eos, a piece fills a 256-token training row


def module_text(name: str) -> str:
  with open(os.path.join(sysconfig.get_paths()["stdlib"], f"{name}.py"), encoding="utf-8") as f:
    return f.read()


def pieces(text: str, size: int = PIECE_BYTES) -> list[str]:
  """`text` cut at line ends into pieces of at most `size` UTF-8 bytes (longer lines are cut too)."""
  out, current = [], ""
  for line in text.splitlines(keepends=True):
    while len(line.encode()) > size:  # a line longer than a piece: cut it at a character boundary
      head = line.encode()[:size].decode("utf-8", errors="ignore")
      line = line[len(head):]
      out.append(head)
    if len((current + line).encode()) > size:
      out.append(current)
      current = ""
    current += line
  return [p for p in out + [current] if p.strip()]


def split_pieces(split: str) -> list[str]:
  names = MODULES[:-VALIDATION_MODULES] if split == "train" else MODULES[-VALIDATION_MODULES:]
  return [p for name in names for p in pieces(module_text(name))]
