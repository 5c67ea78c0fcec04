"""The pause variants of a task (Goyal et al. 2023): their names, their registration, and which
one a run trains and is evaluated on.

A variant is the task with `pauses.insert_pauses` (pause-pretraining) or
`pauses.append_pauses` (pause-finetuning and inference) added to its
preprocessors, registered on first use under a name that says so.
"""

from __future__ import annotations

import functools

import ml_collections
import seqio

from scratchpad.tasks import pauses
from scratchpad.tasks.registration import add_task, get_task_info, is_registered, TaskInfo

# The paper's pretraining runs, its four fine-tuning variants (pretraining_finetuning), and
# the variant its ablations vary.
PAUSE_PRETRAINING = ("StdPT", "PausePT")
PAUSE_VARIANTS = ("StdPT_StdFT", "StdPT_PauseFT", "PausePT_StdFT", "PausePT_PauseFT")
ABLATION_VARIANT = "PausePT_PauseFT"
PRETRAIN_FRACTION = 0.1  # the paper's pause-pretraining: pauses as 10% of the sequence length
M_FT = 10  # the paper's pause-finetuning: 10 pauses appended to each input


def pause_task_name(name: str, inserted_fraction: float = 0.0, appended: int = 0, prepend: bool = False) -> str:
  if inserted_fraction:
    return f"{name}_inserted{round(inserted_fraction * 100)}pct"
  return f"{name}_{'prepended' if prepend else 'appended'}{appended}" if appended else name


def with_pauses(name: str, inserted_fraction: float = 0.0, appended: int = 0, prepend: bool = False) -> str:
  """The name of task `name` with pause preprocessing, registered on first use.

  `inserted_fraction`: pause-pretraining (`pauses.insert_pauses` on targets);
  `appended`: pause-finetuning and inference (`pauses.append_pauses` on inputs,
  or before them with `prepend`). Without either, `name` itself.
  """
  derived = pause_task_name(name, inserted_fraction, appended, prepend)
  if is_registered(derived):
    return derived
  base = get_task_info(name)
  task = seqio.TaskRegistry.get(name)
  if inserted_fraction:
    pause_fn = functools.partial(pauses.insert_pauses, fraction=inserted_fraction)
    what, lengths = f"{inserted_fraction:.0%} pauses inserted", (lambda: base.max_lengths)
  else:
    pause_fn = functools.partial(pauses.append_pauses, num_pauses=appended, prepend=prepend)
    what = f"{appended} pauses {'before' if prepend else 'after'} the input"
    lengths = lambda: base.max_lengths and {s: {"inputs": n["inputs"] + appended, "targets": n["targets"]}
                                            for s, n in base.max_lengths.items()}
  add_task(
      TaskInfo(derived, base.alphabet, lengths, base.answer_fn, f"{base.description}, {what}",
               base.headline_metric, appended, prepend, parse_input=base.parse_input, breakdown=base.breakdown),
      source=task.source, preprocessors=[*task.preprocessors, pause_fn],
      output_features=task.output_features, postprocess_fn=task._postprocess_fn,  # noqa: SLF001
      metric_fns=task.metric_fns, shuffle_buffer_size=task.shuffle_buffer_size)
  return derived


def train_task(cfg: ml_collections.ConfigDict) -> str:
  """The seqio task a run trains on: `cfg.task` with the config's pauses."""
  p = cfg.pauses
  return with_pauses(cfg.task, p.pretrain_fraction, p.finetune, p.prepend)


def eval_task(cfg: ml_collections.ConfigDict, num_pauses: int | None = None) -> str:
  """The seqio task a run is evaluated on: `cfg.task` with M_inf pauses (default: the config's,
  whose unset M_inf is M_ft)."""
  p = cfg.pauses
  if num_pauses is None:
    num_pauses = p.finetune if p.inference is None else p.inference
  return with_pauses(cfg.task, appended=num_pauses, prepend=p.prepend)
