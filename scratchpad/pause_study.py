"""The pause-token study (Goyal et al. 2023) at whatever scale the config gives.

One standard and one pause-pretrained model; then the four variants
StdPT_StdFT, StdPT_PauseFT, PausePT_StdFT, PausePT_PauseFT fine-tuned on each
task with several seeds; then the paper's ablations on PausePT_PauseFT: the
number of fine-tuning pauses M_ft, inference with M_inf != M_ft (M_inf = 0
included) and prepending instead of appending. Every run lives in its own
workdir under the study's and is skipped once its results exist, so an
interrupted study resumes where it stopped. `study.json` keeps every run's
headline metric; `report.pause_tables` renders it, so a run at scale fills the
same tables.
"""

from __future__ import annotations

import os
import time

from scratchpad import files
from scratchpad.sweep import execute, Run
from scratchpad.tasks import pause_tasks

STUDY_FILE = "study.json"
# The paper's figure: PausePT_PauseFT against M_ft = M_inf (0 is PausePT_StdFT, 10 the main
# table's PausePT_PauseFT); and evaluations of M_ft = 10 models with other M_inf.
M_FT_ABLATION = (2, 5, 20, 50)
M_INF_ABLATION = (0, 5, 20)


def _run(group: str, task: str, seed: int, spec: str, overrides, workdir: str, inference=()) -> Run:
  """A run of the study, labelled by the table cell it fills: task, group (a variant or an
  ablation's setting) and seed."""
  return Run(spec, tuple(overrides), workdir, (("task", task), ("group", group), ("seed", str(seed))),
             tuple(inference))


def pretraining_runs(config_file: str, corpus: str, size: str, workdir: str,
                     overrides=()) -> dict[str, Run]:
  return {pt: _run(pt, corpus, 0, f"{config_file}:{pt},{corpus},{size}", overrides,
                   os.path.join(workdir, "pretrain", pt)) for pt in ("StdPT", "PausePT")}


def finetuning_runs(config_file: str, tasks, size: str, seeds: int, ablation_seeds: int, workdir: str,
                    pretrained: dict[str, Run], m_ft_ablation=M_FT_ABLATION, m_inf_ablation=M_INF_ABLATION,
                    overrides=()) -> list[Run]:
  """The main table's runs (every variant x task x seed), then the ablations' runs.

  Fine-tuning uses the pretraining's vocabulary: SentencePiece after C4.
  """
  runs = []
  vocab = ",spm" if next(iter(pretrained.values())).label("task") == "c4" else ""

  def add(group, variant, task, seed, extra=(), inference=()):
    spec = f"{config_file}:{variant},{task},{size}{vocab}"
    init_from = pretrained[variant.split("_")[0]].workdir
    runs.append(_run(group, task, seed, spec,
                     (("seed", str(seed)), ("train.init_from", init_from), *overrides, *extra),
                     os.path.join(workdir, task, group, f"seed{seed}"), inference))

  for task in tasks:
    for variant in pause_tasks.PAUSE_VARIANTS:
      for seed in range(seeds):
        inference = m_inf_ablation if variant == pause_tasks.ABLATION_VARIANT and seed < ablation_seeds else ()
        add(variant, variant, task, seed, inference=inference)
    for seed in range(ablation_seeds):
      for m in m_ft_ablation:
        add(f"M_ft={m}", pause_tasks.ABLATION_VARIANT, task, seed, (("pauses.finetune", str(m)),))
      add("prepend", pause_tasks.ABLATION_VARIANT, task, seed, (("pauses.prepend", "true"),))
  return runs


def headline(cfg, results: dict) -> tuple[str, float, dict | None]:
  """The run's headline metric on its first evaluated split, and its accuracy by input
  length where the task has a breakdown (None otherwise)."""
  from scratchpad.tasks import get_task_info
  info = get_task_info(cfg.task)
  split = results[cfg.eval.splits[0]]
  return info.headline_metric, split[info.headline_metric], info.breakdown and split.get(info.breakdown.metric)


def run_study(pretraining: dict[str, Run], finetuning: list[Run], workdir: str, log=print) -> dict:
  """Runs everything not yet done, in order; writes WORKDIR/study.json after every run. Its
  `minutes` add up every call's, so a resumed study reports its whole time."""
  path = os.path.join(workdir, STUDY_FILE)
  earlier = files.read_json(path)["minutes"] if files.exists(path) else 0.0
  t0 = time.perf_counter()
  all_runs = list(pretraining.values()) + finetuning
  records = []
  study = {"records": records, "minutes": earlier}
  for i, run in enumerate(all_runs, 1):
    task, group, seed = (run.label(k) for k in ("task", "group", "seed"))
    log(f"== [{i}/{len(all_runs)}] {group} {task} seed {seed}: {run.workdir}")
    cfg, outputs = execute(run)
    if not outputs:
      continue
    for name, results in outputs.items():
      metric, value, by_length = headline(cfg, results)
      m_inf = int(name.removeprefix("results_minf")) if name != "results" else None
      records.append({"task": task, "group": group, "seed": int(seed), "m_inf": m_inf,
                      "metric": metric, "value": value, "by_length": by_length, "workdir": run.workdir})
    study = {"records": records, "minutes": earlier + (time.perf_counter() - t0) / 60}
    files.write_json(path, study)
  return study
