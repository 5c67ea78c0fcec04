"""The offline pretraining corpus: a fixed list of documents that needs no download.

Pod runs pretrain on C4 (`scratchpad.tasks.c4`). This machine cannot download
it, so the pause study pretrains on documents of at most `PIECE_BYTES` bytes,
one to a training row: half are pieces of a fixed list of Python
standard-library modules (real, human-written text that ships with every
Python), half are the train text of a fixed list of small tasks, equally from
each (`CORPUS_TASKS`), so that a 0.8M-parameter model has seen the
tasks' alphabet and line shapes before fine-tuning, as C4 gives the paper's
models their general skills. The list does not depend on which tasks a study
fine-tunes on. One document a row, never packed: a pause-pretrained row is the
same document as the standard row, with pauses inserted and trimmed back to its
length, so both pretrainings draw the same documents in the same order and
PausePT sees about a tenth fewer text tokens, as in the paper. The modules'
text differs a little between Python versions; within one version it is fixed.
The last two modules are the validation split (standard-library text only).
Registered as the Task `pretrain_text`.
"""

from __future__ import annotations

import os
import random
import sysconfig

from scratchpad.tasks.registration import get_task_info, register_text

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


def documents(split: str, task_lines: dict[str, list[str]]) -> list[str]:
  """The corpus's `split`: the standard-library pieces, and in train as many documents of
  the tasks' lines (each task's first lines, whole lines to a document), in a fixed order."""
  source = split_pieces(split)
  if split != "train":
    return source
  per_task = len(source) // len(task_lines)
  task_docs = [doc for lines in task_lines.values() for doc in pieces("".join(lines))[:per_task]]
  docs = source + task_docs
  random.Random(0).shuffle(docs)  # a fixed interleaving; the pipeline shuffles by its seed on top
  return docs


# The tasks whose text the corpus holds: a fixed list, so changing the study's tasks does not
# change pretraining. Read by name when the corpus is built, from the registry.
CORPUS_TASKS = ("parity", "three_sum", "digit_sum", "addition_direct_1to3")


def _corpus_documents(split: str) -> list[str]:
  task_lines = {t: [f"{i}\n{o}\n" for i, o in get_task_info(t).examples_fn("train")] for t in CORPUS_TASKS}
  return documents(split, task_lines)


register_text("pretrain_text", _corpus_documents, {"train": None, "validation": None},
              "pause pretraining corpus: Python standard-library source and the text of "
              f"{', '.join(CORPUS_TASKS)}, in documents of {PIECE_BYTES} bytes")
