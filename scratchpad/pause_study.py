"""The pause-token study (Goyal et al. 2023; SPEC 2) at whatever scale the config gives.

One standard and one pause-pretrained model; then the four variants
StdPT_StdFT, StdPT_PauseFT, PausePT_StdFT, PausePT_PauseFT fine-tuned on each
task with several seeds; then the paper's ablations on PausePT_PauseFT: the
number of fine-tuning pauses M_ft, inference with M_inf != M_ft (M_inf = 0
included) and prepending instead of appending. Every run lives in its own
workdir under the study's and is skipped once its results exist, so an
interrupted study resumes where it stopped. `study.json` keeps every run's
headline metric; the tables are rendered from it, so a run at scale fills the
same tables.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import time

from scratchpad import config as config_lib
from scratchpad import report
from scratchpad.evaluation import evaluator

VARIANTS = ("StdPT_StdFT", "StdPT_PauseFT", "PausePT_StdFT", "PausePT_PauseFT")
ABLATION_VARIANT = "PausePT_PauseFT"
STUDY_FILE = "study.json"


@dataclasses.dataclass(frozen=True)
class Run:
  """One training run of the study: its config, its workdir and the evaluations it owes."""
  group: str  # the table column it fills: a variant, or an ablation's setting
  task: str   # the config file's task token (addition, polynomial, ...)
  seed: int
  spec: str
  overrides: tuple[tuple[str, str], ...]
  workdir: str
  inference_pauses: tuple[int, ...] = ()  # extra evaluations with these M_inf

  def config(self):
    return config_lib.apply_overrides(config_lib.load_config_file(self.spec), self.overrides)


def pretraining_runs(config_file: str, corpus: str, size: str, workdir: str,
                     overrides=()) -> dict[str, Run]:
  return {pt: Run(pt, corpus, 0, f"{config_file}:{pt},{corpus},{size}", tuple(overrides),
                  os.path.join(workdir, "pretrain", pt)) for pt in ("StdPT", "PausePT")}


def finetuning_runs(config_file: str, tasks, size: str, seeds: int, ablation_seeds: int, workdir: str,
                    pretrained: dict[str, Run], m_ft_ablation=(50,), m_inf_ablation=(0, 5, 20),
                    overrides=()) -> list[Run]:
  """The main table's runs (every variant x task x seed), then the ablations' runs.

  Fine-tuning uses the pretraining's vocabulary: SentencePiece after C4.
  """
  runs = []
  vocab = ",spm" if next(iter(pretrained.values())).task == "c4" else ""

  def add(group, variant, task, seed, extra=(), inference=()):
    spec = f"{config_file}:{variant},{task},{size}{vocab}"
    init_from = pretrained[variant.split("_")[0]].workdir
    runs.append(Run(group, task, seed, spec,
                    (("seed", str(seed)), ("train.init_from", init_from), *overrides, *extra),
                    os.path.join(workdir, task, group, f"seed{seed}"), tuple(inference)))

  for task in tasks:
    for variant in VARIANTS:
      for seed in range(seeds):
        inference = m_inf_ablation if variant == ABLATION_VARIANT and seed < ablation_seeds else ()
        add(variant, variant, task, seed, inference=inference)
    for seed in range(ablation_seeds):
      for m in m_ft_ablation:
        add(f"M_ft={m}", ABLATION_VARIANT, task, seed, (("pauses.finetune", str(m)),))
      add("prepend", ABLATION_VARIANT, task, seed, (("pauses.prepend", "true"),))
  return runs


def _read_json(path: str):
  with open(path) as f:
    return json.load(f)


def execute(run: Run):
  """Trains and evaluates `run` unless its results exist; returns its config and {name: results}."""
  from scratchpad.train import trainer
  cfg = run.config()
  names = {"results": None, **{f"results_minf{m}": m for m in run.inference_pauses}}
  paths = {n: os.path.join(run.workdir, f"{n}.json") for n in names}
  if cfg.eval.splits and all(map(os.path.exists, paths.values())):
    return cfg, {n: _read_json(path) for n, path in paths.items()}
  state, _ = trainer.train(cfg, run.workdir)
  if not cfg.eval.splits:
    return cfg, {}
  graphdef = trainer.Setup(cfg).graphdef
  return cfg, {n: evaluator.evaluate(cfg, run.workdir, graphdef, state["params"], num_pauses=m, name=n)
               for n, m in names.items()}


def headline(cfg, results: dict) -> tuple[str, float]:
  """The run's headline metric on its first evaluated split."""
  from scratchpad.tasks import get_task_info
  metric = get_task_info(cfg.task).headline_metric
  return metric, results[cfg.eval.splits[0]][metric]


def run_study(pretraining: dict[str, Run], finetuning: list[Run], workdir: str, log=print) -> dict:
  """Runs everything not yet done, in order; writes WORKDIR/study.json after every run."""
  os.makedirs(workdir, exist_ok=True)
  t0 = time.perf_counter()
  all_runs = list(pretraining.values()) + finetuning
  records = []
  study = {"records": records, "minutes": 0.0}
  for i, run in enumerate(all_runs, 1):
    log(f"== [{i}/{len(all_runs)}] {run.group} {run.task} seed {run.seed}: {run.workdir}")
    cfg, outputs = execute(run)
    if not outputs:
      continue
    for name, results in outputs.items():
      metric, value = headline(cfg, results)
      m_inf = int(name.removeprefix("results_minf")) if name != "results" else None
      records.append({"task": run.task, "group": run.group, "seed": run.seed, "m_inf": m_inf,
                      "metric": metric, "value": value, "workdir": run.workdir})
    study = {"records": records, "minutes": (time.perf_counter() - t0) / 60}
    evaluator.write_json(os.path.join(workdir, STUDY_FILE), study)
  return study


def mean_std(values: list[float]) -> tuple[float, float]:
  return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def cell(values: list[float]) -> str:
  if not values:
    return "-"
  mean, std = mean_std(values)
  return f"{mean:.1f} ± {std:.1f} (n={len(values)})"


def _values(records, task, group, m_inf=None) -> list[float]:
  return [r["value"] for r in records if r["task"] == task and r["group"] == group and r["m_inf"] == m_inf]


def tables(study: dict, m_ft: int = 10) -> str:
  """The study as the paper reports it: mean ± std per variant and task, then the ablations."""
  records = study["records"]
  tasks = list(dict.fromkeys(r["task"] for r in records))
  metric = {r["task"]: r["metric"] for r in records}
  main = report.markdown_table(
      ["task (metric %)"] + list(VARIANTS) + ["PausePT_PauseFT - StdPT_StdFT"],
      [[f"{t} ({metric[t]})"] + [cell(_values(records, t, v)) for v in VARIANTS] + [gap(records, t)]
       for t in tasks])
  m_ft_groups = sorted({r["group"] for r in records if r["group"].startswith("M_ft=")},
                       key=lambda g: int(g.split("=")[1]))
  ft = report.markdown_table(
      ["task", "M_ft=0 (PausePT_StdFT)", f"M_ft={m_ft} (PausePT_PauseFT)"] + m_ft_groups,
      [[t, cell(_values(records, t, "PausePT_StdFT")), cell(_values(records, t, ABLATION_VARIANT))]
       + [cell(_values(records, t, g)) for g in m_ft_groups] for t in tasks])
  m_infs = sorted({r["m_inf"] for r in records if r["m_inf"] is not None} | {m_ft})
  inf = report.markdown_table(
      ["task"] + [f"M_inf={m}" for m in m_infs],
      [[t] + [cell(_values(records, t, ABLATION_VARIANT, None if m == m_ft else m)) for m in m_infs]
       for t in tasks])
  where = report.markdown_table(
      ["task", f"appended (M={m_ft})", f"prepended (M={m_ft})"],
      [[t, cell(_values(records, t, ABLATION_VARIANT)), cell(_values(records, t, "prepend"))] for t in tasks])
  return "\n\n".join([
      f"Pause-token study: {len(records)} evaluations, {study['minutes']:.1f} min\n\n{main}",
      f"Ablation: pauses in fine-tuning (PausePT; M_inf = M_ft)\n\n{ft}",
      f"Ablation: pauses at inference (PausePT_PauseFT, M_ft={m_ft})\n\n{inf}",
      f"Ablation: where the pauses go (PausePT_PauseFT)\n\n{where}"])


def gap(records, task) -> str:
  """PausePT_PauseFT's mean minus StdPT_StdFT's, and whether it exceeds the seed spread."""
  pause, std = _values(records, task, "PausePT_PauseFT"), _values(records, task, "StdPT_StdFT")
  if not pause or not std:
    return "-"
  (m1, s1), (m0, s0) = mean_std(pause), mean_std(std)
  spread = max(s1, s0)
  verdict = "beyond the seed spread" if abs(m1 - m0) > spread else "within the seed spread"
  return f"{m1 - m0:+.1f} ({verdict})"
