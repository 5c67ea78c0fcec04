"""Results for people: tables of `{split: {metric: value}}` per run, and the reports of
sweeps and pause studies (Markdown with PNG plots shaped like the papers' figures)."""

from __future__ import annotations

import dataclasses
import os
import statistics

from scratchpad import config as config_lib
from scratchpad import errors
from scratchpad import files
from scratchpad.evaluation import run_record
from scratchpad.markdown import markdown_table
from scratchpad.model import transformer
from scratchpad.tasks import pause_tasks
from scratchpad.train import run_config

REPORT_FILE = "report.md"
RUN_FILE = "run.json"  # a run's labels: {"labels": {axis: value}} (sweeps, the pause study)
SCALING_PLOT = "accuracy_vs_params.png"
LENGTH_PLOT = "accuracy_by_length.png"  # beside results.md: accuracy against operand length
PAUSE_PLOT = "pause_variants.png"
PAUSE_COUNT_PLOT = "pause_counts.png"
# Metrics shown in tables, in this order, when some run has them (all in %).
METRICS = ("answer_accuracy", "sequence_accuracy", "trace_line_accuracy")


def shown_metrics(results_by_run) -> list[str]:
  present = {m for results in results_by_run.values() for metrics in run_record.splits(results).values()
             for m in metrics}
  return [m for m in METRICS if m in present]


def results_rows(results_by_run: dict[str, dict[str, dict[str, float]]]) -> list[list[str]]:
  shown, rows = shown_metrics(results_by_run), []
  for run, results in results_by_run.items():
    for split, metrics in run_record.splits(results).items():
      rows.append([run, split] + [f"{metrics[m]:.1f}" if m in metrics else "-" for m in shown]
                  + [str(metrics.get("num_examples", ""))])
  return rows


def results_table(results_by_run: dict[str, dict[str, dict[str, float]]]) -> str:
  """One row per run and split: answer and sequence accuracy (and trace-line accuracy
  for program traces), in %, and the example count."""
  header = ["run", "split"] + [f"{m} %" for m in shown_metrics(results_by_run)] + ["examples"]
  return markdown_table(header, results_rows(results_by_run))


def by_count(results: dict, metric: str) -> dict[int, float]:
  """One run's accuracy per count (operand digits, terms) over all its splits; where two splits
  share a count, the first split's (in distribution before ood)."""
  merged = {}
  for metrics in run_record.splits(results).values():
    for count, value in metrics.get(metric, {}).items():
      merged.setdefault(int(count), value)
  return dict(sorted(merged.items()))


def by_count_table(results_by_run: dict, breakdown) -> str:
  """Answer accuracy (%) per count, a row per run, trained counts marked."""
  counts = sorted({n for results in results_by_run.values() for n in by_count(results, breakdown.metric)})
  lo, hi = breakdown.trained
  header = ["run"] + [f"{n}{'' if lo <= n <= hi else ' (ood)'}" for n in counts]
  rows = [[run] + [f"{by_count(results, breakdown.metric)[n]:.1f}" if n in by_count(results, breakdown.metric)
                   else "-" for n in counts] for run, results in results_by_run.items()]
  return f"answer accuracy % by {breakdown.unit}\n\n" + markdown_table(header, rows)


def plot_by_count(results_by_run: dict, breakdown, path: str, title: str = "") -> None:
  """The scratchpad paper's figure 3 shape: answer accuracy against operand length (or terms),
  a line per run (direct, scratchpad), the trained range shaded."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(6.5, 4))
  lo, hi = breakdown.trained
  ax.axvspan(lo - 0.5, hi + 0.5, color="0.9", label="trained range")
  for i, (run, results) in enumerate(results_by_run.items()):
    values = by_count(results, breakdown.metric)
    ax.plot(list(values), list(values.values()), marker="o", color=f"C{i}", label=run)
  ax.set_ylim(-3, 103)
  ax.set_xlabel(f"{breakdown.unit} (the longer operand's)" if breakdown.unit == "digits" else breakdown.unit)
  ax.set_ylabel("answer accuracy %")
  ax.set_title(title, fontsize="small")
  ax.grid(alpha=0.3)
  ax.legend(fontsize="small")
  fig.tight_layout()
  files.write_figure(path, fig)
  plt.close(fig)


def task_summary(task_name: str) -> str:
  """A task's splits: examples, longest input and target, and what its build dropped."""
  import seqio
  from scratchpad.tasks import get_task_info
  from scratchpad.tasks.programs import PROGRAM_REPORTS
  info = get_task_info(task_name)
  lengths = info.max_lengths  # builds every split
  rows = []
  for split, longest in lengths.items():
    n = sum(1 for _ in seqio.get_mixture_or_task(task_name).source.get_dataset(split, shuffle=False))
    built = PROGRAM_REPORTS.get((task_name.rsplit("_", 1)[0], split))  # programs_large_direct -> programs_large
    rows.append([split, str(n), str(longest["inputs"]), str(longest["targets"]), str(built) if built else "-"])
  return f"{task_name}: {info.description}\n\n" + markdown_table(
      ["split", "examples", "longest input", "longest target", "build"], rows)


def step_memory_bytes(compiled) -> int:
  """What a compiled step holds at once: its arguments, its outputs not aliased to
  (donated) arguments, and its temporaries."""
  m = compiled.memory_analysis()
  return m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes


def sizes_table(compile_step: bool = False, batch_size: int = 8, length: int = 256) -> str:
  """The size presets: shapes and parameters (byte and 32k vocabularies); with `compile_step`,
  each preset's training step (AdamW, float32, `batch_size` rows of `length`) compiled for one
  device of this machine, with the memory it needs against the machine's."""
  import time
  import jax
  from scratchpad.train import trainer
  physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  header = ["size", "layers", "d_model", "heads", "mlp", "parameters (bytes)", "parameters (32k vocab)"]
  if compile_step:
    header += [f"step memory (batch {batch_size} x {length})", "compile s", f"fits {physical / 2**30:.0f} GiB"]
  rows = []
  for name, (layers, d_model, heads, mlp) in transformer.SIZES.items():
    cfg = config_lib.base_config("pretrain_text", name, {})
    model_cfg = run_config.model_config(cfg)
    row = [name, str(layers), str(d_model), str(heads), str(mlp), f"{transformer.param_count(model_cfg):,}",
           f"{transformer.param_count(dataclasses.replace(model_cfg, vocab_size=32_000)):,}"]
    if compile_step:
      t0 = time.perf_counter()
      compiled = trainer.ShardedTraining(cfg, jax.devices()[:1]).compile_train_step(batch_size, length)
      need = step_memory_bytes(compiled)
      row += [f"{need / 2**30:.2f} GiB", f"{time.perf_counter() - t0:.0f}", "yes" if need < physical else "no"]
    rows.append(row)
  return markdown_table(header, rows)


def mean_std(values: list[float]) -> tuple[float, float]:
  return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def cell(values: list[float]) -> str:
  """`mean ± std (n=N)` over seeds (one seed: no std)."""
  if not values:
    return "-"
  mean, std = mean_std(values)
  return f"{mean:.1f} (n=1)" if len(values) == 1 else f"{mean:.1f} ± {std:.1f} (n={len(values)})"


# --- The pause study: mean ± std over seeds per variant and task, and the ablations.

def _values(records, task, group, m_inf=None) -> list[float]:
  return [r["value"] for r in records if r["task"] == task and r["group"] == group and r["m_inf"] == m_inf]


def pause_gap(records, task) -> str:
  """PausePT_PauseFT's mean minus StdPT_StdFT's, and whether it exceeds twice the larger of
  their standard deviations (the issue's rule for a separation)."""
  stats = _gap_stats(records, task)
  if stats is None:
    return "-"
  m1, s1, m0, s0 = stats
  separated = abs(m1 - m0) > 2 * max(s1, s0)
  verdict = ("PausePT_PauseFT better" if m1 > m0 else "StdPT_StdFT better") if separated else "not separated"
  return f"{m1 - m0:+.1f} ({verdict}: 2σ = {2 * max(s1, s0):.1f})"


def _gap_stats(records, task) -> tuple[float, float, float, float] | None:
  """PausePT_PauseFT's mean and std, then StdPT_StdFT's; None where either has no runs."""
  pause, std = _values(records, task, "PausePT_PauseFT"), _values(records, task, "StdPT_StdFT")
  return (*mean_std(pause), *mean_std(std)) if pause and std else None


def pause_counts(records, task, m_ft: int = pause_tasks.M_FT) -> dict[int, list[float]]:
  """PausePT_PauseFT's values by its number of pauses M_ft = M_inf: 0 is PausePT_StdFT,
  `m_ft` the main table's PausePT_PauseFT, the rest the `M_ft=M` ablation runs."""
  counts = {0: _values(records, task, "PausePT_StdFT"), m_ft: _values(records, task, pause_tasks.ABLATION_VARIANT)}
  for group in {r["group"] for r in records if r["task"] == task and r["group"].startswith("M_ft=")}:
    counts[int(group.split("=")[1])] = _values(records, task, group)
  return {m: v for m, v in sorted(counts.items()) if v}


def by_length_rows(records, task, groups=("StdPT_StdFT", "PausePT_PauseFT")) -> list[list[str]]:
  """Accuracy by input length, mean ± std over seeds, for `groups`, and their difference."""
  by_group = {g: [r["by_length"] for r in records if r["task"] == task and r["group"] == g
                  and r["m_inf"] is None and r.get("by_length")] for g in groups}
  lengths = sorted({int(n) for runs in by_group.values() for run in runs for n in run})
  rows = []
  for n in lengths:
    values = [[run[str(n)] for run in by_group[g] if str(n) in run] for g in groups]
    means = [mean_std(v)[0] if v else float("nan") for v in values]
    rows.append([str(n)] + [cell(v) for v in values] + [f"{means[-1] - means[0]:+.1f}"])
  return rows


def pause_tables(records: list[dict], minutes: float | None = None, m_ft: int = pause_tasks.M_FT) -> str:
  """The study as the paper reports it: mean ± std per variant and task, then the ablations,
  then accuracy by input length on the task where pauses gain the most.

  `records`: {task, group (a variant or an ablation's setting), seed, m_inf (None: M_ft),
  metric, value, by_length (optional)}, one per evaluation, as in a study's study.json.
  """
  variants = pause_tasks.PAUSE_VARIANTS
  tasks = list(dict.fromkeys(r["task"] for r in records))
  metric = {r["task"]: r["metric"] for r in records}
  main = markdown_table(
      ["task (metric %)"] + list(variants) + ["PausePT_PauseFT - StdPT_StdFT (verdict)"],
      [[f"{t} ({metric[t]})"] + [cell(_values(records, t, v)) for v in variants] + [pause_gap(records, t)]
       for t in tasks])
  counts = {t: pause_counts(records, t, m_ft) for t in tasks}
  ms = sorted({m for c in counts.values() for m in c})
  ft = markdown_table(["task"] + [f"M={m}" for m in ms],
                      [[t] + [cell(counts[t].get(m, [])) for m in ms] for t in tasks])
  m_infs = sorted({r["m_inf"] for r in records if r["m_inf"] is not None} | {m_ft})
  inf = markdown_table(
      ["task"] + [f"M_inf={m}" for m in m_infs],
      [[t] + [cell(_values(records, t, pause_tasks.ABLATION_VARIANT, None if m == m_ft else m)) for m in m_infs]
       for t in tasks])
  where = markdown_table(
      ["task", f"appended (M={m_ft})", f"prepended (M={m_ft})"],
      [[t, cell(_values(records, t, pause_tasks.ABLATION_VARIANT)), cell(_values(records, t, "prepend"))] for t in tasks])
  took = f", {minutes:.1f} min" if minutes is not None else ""
  sections = [
      f"Pause-token study: {len(records)} evaluations{took}. Verdict: separated when the gap exceeds "
      f"twice the larger standard deviation.\n\n{main}",
      f"Ablation: the number of pauses, M_ft = M_inf (PausePT; M=0 is PausePT_StdFT)\n\n{ft}",
      f"Ablation: pauses at inference (PausePT_PauseFT, M_ft={m_ft})\n\n{inf}",
      f"Ablation: where the pauses go (PausePT_PauseFT)\n\n{where}"]
  # Where the extra computation goes: by input length, on the task where pauses gain the most.
  rows = {t: by_length_rows(records, t) for t in tasks}
  stats = {t: _gap_stats(records, t) for t in tasks}
  gains = {t: stats[t][0] - stats[t][2] if stats[t] else float("-inf") for t in tasks if rows[t]}
  if gains:
    t = max(gains, key=gains.get)
    sections.append(f"Where the extra computation goes: {t} (the largest gain), accuracy by input length\n\n"
                    + markdown_table(["length", "StdPT_StdFT", "PausePT_PauseFT", "difference"], rows[t]))
  return "\n\n".join(sections)


# --- Reports of a directory of runs (a sweep, a pause study).

def gather(workdir: str) -> list[dict]:
  """One record per evaluation and split of every run under WORKDIR (a directory with
  config.json and results*.json): the run's labels (run.json, written by sweeps and the
  pause study; else its task, variant and seed), parameters, headline metric and value."""
  from scratchpad.tasks import get_task_info
  records = []
  for root, dirs, names in files.walk(workdir):
    dirs[:] = sorted(d for d in dirs if d not in ("checkpoints", "damaged_checkpoints", "predictions", "tensorboard",
                                                 "data_state"))
    results_files = sorted(f for f in names if f.startswith("results") and f.endswith(".json"))
    if run_config.CONFIG_FILE not in names or not results_files:
      continue
    cfg = run_config.load_config(root)
    labels = {"task": cfg.task, "variant": cfg.variant, "seed": str(cfg.seed)}
    if RUN_FILE in names:
      labels = files.read_json(os.path.join(root, RUN_FILE))["labels"]
    params = transformer.param_count(run_config.model_config(cfg))
    metric = get_task_info(cfg.task).headline_metric
    for name in results_files:
      suffix = name[len("results"):-len(".json")]
      m_inf = int(suffix.removeprefix("_minf")) if suffix.startswith("_minf") else None
      for split, metrics in run_record.splits(files.read_json(os.path.join(root, name))).items():
        records.append({"labels": labels, "run": files.relative(root, workdir), "params": params, "task": cfg.task,
                        "split": split, "m_inf": m_inf, "metric": metric, "value": metrics.get(metric),
                        "metrics": metrics})
  return sorted(records, key=lambda r: (r["params"], r["run"]))


def _pyplot():
  import matplotlib
  matplotlib.use("Agg")  # files only: no display on pods and CI
  import matplotlib.pyplot as plt
  return plt


def scaling_table(records: list[dict]) -> str:
  """Accuracy against model size: a row per size, a column per format and split, mean ± std
  over seeds (the scratchpad paper's figure 3 as a table)."""
  sizes = sorted({(r["params"], r["labels"]["size"]) for r in records})
  columns = list(dict.fromkeys((r["labels"]["format"], r["split"]) for r in records))
  metric = records[0]["metric"]
  value = lambda size, fmt, split: [r["value"] for r in records if r["labels"]["size"] == size
                                    and (r["labels"]["format"], r["split"]) == (fmt, split)]
  return markdown_table(
      ["size", "parameters"] + [f"{fmt} {split} ({metric} %)" for fmt, split in columns],
      [[size, f"{params / 1e6:.2f}M"] + [cell(value(size, fmt, split)) for fmt, split in columns]
       for params, size in sizes])


def plot_scaling(facets: dict[str, list[dict]], path: str) -> None:
  """Accuracy against parameters (log scale): a line per format and split (solid: in
  distribution, dashed: the others), error bars over seeds; a panel per facet (task ...)."""
  plt = _pyplot()
  fig, axes = plt.subplots(1, len(facets), figsize=(7.5 * len(facets), 4), squeeze=False)
  for ax, (title, records) in zip(axes[0], facets.items()):
    splits = list(dict.fromkeys(r["split"] for r in records))
    formats = list(dict.fromkeys(r["labels"]["format"] for r in records))
    for i, fmt in enumerate(formats):
      for split in splits:
        by_params = {}
        for r in records:
          if r["labels"]["format"] == fmt and r["split"] == split:
            by_params.setdefault(r["params"], []).append(r["value"])
        xs = sorted(by_params)
        stats = [mean_std(by_params[x]) for x in xs]
        ax.errorbar(xs, [m for m, _ in stats], yerr=[s for _, s in stats], marker="o", capsize=3,
                    color=f"C{i}", linestyle="-" if split == splits[0] else "--", label=f"{fmt} ({split})")
    ax.set_xscale("log")
    sizes = sorted({(r["params"], r["labels"]["size"]) for r in records})
    ax.set_xticks([p for p, _ in sizes], [f"{p / 1e6:.2g}M\n{name}" for p, name in sizes])
    ax.minorticks_off()
    ax.set_ylim(-3, 103)
    ax.set_xlabel("parameters")
    ax.set_ylabel(f"{records[0]['metric']} %")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
  fig.tight_layout()
  files.write_figure(path, fig)
  plt.close(fig)


def plot_pause_variants(records: list[dict], path: str) -> None:
  """The pause study's main result as bars: per task, a bar per variant, mean ± std over seeds."""
  plt = _pyplot()
  variants = pause_tasks.PAUSE_VARIANTS
  tasks = list(dict.fromkeys(r["task"] for r in records))
  fig, ax = plt.subplots(figsize=(max(5.0, 2.2 * len(tasks)), 4))
  width = 0.8 / len(variants)
  for i, variant in enumerate(variants):
    stats = [mean_std(_values(records, t, variant) or [0.0]) for t in tasks]
    ax.bar([t + (i - (len(variants) - 1) / 2) * width for t in range(len(tasks))], [m for m, _ in stats],
           width, yerr=[s for _, s in stats], capsize=3, label=variant, color=f"C{i}")
  ax.set_xticks(range(len(tasks)), tasks)
  ax.set_ylabel(f"{records[0]['metric']} % (mean ± std over seeds)")
  ax.legend(fontsize="small")
  ax.grid(axis="y", alpha=0.3)
  fig.tight_layout()
  files.write_figure(path, fig)
  plt.close(fig)


def plot_pause_counts(records: list[dict], path: str, m_ft: int = pause_tasks.M_FT) -> None:
  """The paper's pause-count figure: PausePT_PauseFT against M_ft = M_inf, a line per task,
  mean ± std over seeds."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(5.5, 4))
  for i, task in enumerate(dict.fromkeys(r["task"] for r in records)):
    counts = pause_counts(records, task, m_ft)
    stats = [mean_std(v) for v in counts.values()]
    ax.errorbar(list(counts), [m for m, _ in stats], yerr=[s for _, s in stats], marker="o", capsize=3,
                label=task, color=f"C{i}")
  ax.set_xscale("symlog", linthresh=2)
  ax.set_xticks(sorted({m for t in {r["task"] for r in records} for m in pause_counts(records, t, m_ft)}))
  ax.get_xaxis().set_major_formatter(plt.matplotlib.ticker.ScalarFormatter())
  ax.set_xlabel("pauses M_ft = M_inf (PausePT)")
  ax.set_ylabel(f"{records[0]['metric']} % (mean ± std over seeds)")
  ax.legend(fontsize="small")
  ax.grid(alpha=0.3)
  fig.tight_layout()
  files.write_figure(path, fig)
  plt.close(fig)


def pause_study_report(records: list[dict], workdir: str, minutes: float | None = None) -> str:
  """The study's tables with its two figures (variants as bars, accuracy against the pause
  count), the PNGs written to `workdir`; returns the Markdown."""
  plot_pause_variants(records, os.path.join(workdir, PAUSE_PLOT))
  plot_pause_counts(records, os.path.join(workdir, PAUSE_COUNT_PLOT))
  return (f"{pause_tables(records, minutes)}\n\n![pause variants]({PAUSE_PLOT})\n\n"
          f"![accuracy against the number of pauses]({PAUSE_COUNT_PLOT})")


def _study_record(r: dict) -> dict:
  labels = r["labels"]
  return {"task": labels["task"], "group": labels["group"], "seed": int(labels["seed"]), "m_inf": r["m_inf"],
          "metric": r["metric"], "value": r["value"], "by_length": r["metrics"].get("answer_accuracy_by_length")}


def _by_count_sections(by_task: dict[str, dict], workdir: str) -> list[str]:
  """Accuracy by operand length (or terms): a table and a plot per breakdown and trained range,
  so the direct and scratchpad runs of one range share a plot."""
  from scratchpad.tasks import get_task_info
  groups = {}
  for task, results_by_run in by_task.items():
    breakdown = get_task_info(task).breakdown
    if breakdown is not None:
      key = (breakdown.unit, breakdown.trained)
      groups.setdefault(key, (breakdown, {}))[1].update(results_by_run)
  sections = []
  for (unit, (lo, hi)), (breakdown, results_by_run) in groups.items():
    plot = LENGTH_PLOT if len(groups) == 1 else f"accuracy_by_{unit}_{lo}to{hi}.png"
    plot_by_count(results_by_run, breakdown, os.path.join(workdir, plot), f"trained on {lo}-{hi} {unit}")
    sections.append(f"## Accuracy by {unit}, trained on {lo}-{hi}\n\n{by_count_table(results_by_run, breakdown)}"
                    f"\n\n![accuracy by {unit}]({plot})")
  return sections


def write_report(workdir: str) -> str:
  """Gathers the runs under WORKDIR into WORKDIR/report.md with its PNG plots; returns the text.

  Runs labelled by size and format (a scaling sweep) give accuracy against parameters;
  runs labelled by pause variant (the pause study) give bars per task and variant and the
  ablation tables; every run is listed at the end.
  """
  records = gather(workdir)
  if not records:
    raise errors.InputError(f"{workdir} holds no finished run (a directory with config.json and results.json)")
  sections = []
  scaling = [r for r in records if {"size", "format"} <= set(r["labels"]) and r["value"] is not None]
  if scaling:
    facets = {}
    for r in scaling:
      rest = ", ".join(f"{k}={v}" for k, v in r["labels"].items() if k not in ("size", "format", "seed"))
      facets.setdefault(rest or "accuracy against parameters", []).append(r)
    plot_scaling(facets, os.path.join(workdir, SCALING_PLOT))
    tables = "\n\n".join((f"{title}\n\n" if len(facets) > 1 else "") + scaling_table(rs)
                         for title, rs in facets.items())
    sections.append(f"## Accuracy against parameters\n\n{tables}\n\n![accuracy against parameters]({SCALING_PLOT})")
  pause = [_study_record(r) for r in records if "group" in r["labels"]]
  if pause:
    sections.append(f"## Pause tokens\n\n{pause_study_report(pause, workdir)}")
  by_run, by_task = {}, {}
  for r in records:
    name = r["run"] + ("" if r["m_inf"] is None else f" (M_inf={r['m_inf']})")
    by_run.setdefault(name, {})[r["split"]] = r["metrics"]
    by_task.setdefault(r["task"], {}).setdefault(name, {})[r["split"]] = r["metrics"]
  sections += _by_count_sections(by_task, workdir)
  sections.append(f"## Every run\n\n{results_table(by_run)}")
  text = f"# Report: {workdir}\n\n" + "\n\n".join(sections) + "\n"
  files.write_text(os.path.join(workdir, REPORT_FILE), text)
  return text
