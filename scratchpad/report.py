"""Results as tables: `{split: {metric: value}}` per run, rendered for people."""

from __future__ import annotations

# Metrics shown in tables, in this order, when some run has them (all in %).
METRICS = ("answer_accuracy", "sequence_accuracy", "trace_line_accuracy")


def shown_metrics(results_by_run) -> list[str]:
  present = {m for results in results_by_run.values() for metrics in results.values() for m in metrics}
  return [m for m in METRICS if m in present]


def results_rows(results_by_run: dict[str, dict[str, dict[str, float]]]) -> list[list[str]]:
  shown, rows = shown_metrics(results_by_run), []
  for run, results in results_by_run.items():
    for split, metrics in results.items():
      rows.append([run, split] + [f"{metrics[m]:.1f}" if m in metrics else "-" for m in shown]
                  + [str(metrics.get("num_examples", ""))])
  return rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
  widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
  line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
  return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])


def results_table(results_by_run: dict[str, dict[str, dict[str, float]]]) -> str:
  """One row per run and split: answer and sequence accuracy (and trace-line accuracy
  for program traces), in %, and the example count."""
  header = ["run", "split"] + [f"{m} %" for m in shown_metrics(results_by_run)] + ["examples"]
  return markdown_table(header, results_rows(results_by_run))


def task_summary(task_name: str) -> str:
  """A task's splits: examples, longest input and target, and what its build dropped."""
  import seqio
  from scratchpad.tasks import get_task_info
  from scratchpad.tasks.registry import PROGRAM_REPORTS
  info = get_task_info(task_name)
  lengths = info.max_lengths  # builds every split
  rows = []
  for split, longest in lengths.items():
    n = sum(1 for _ in seqio.get_mixture_or_task(task_name).source.get_dataset(split, shuffle=False))
    built = PROGRAM_REPORTS.get((task_name.rsplit("_", 1)[0], split))  # programs_large_direct -> programs_large
    rows.append([split, str(n), str(longest["inputs"]), str(longest["targets"]), str(built) if built else "-"])
  return f"{task_name}: {info.description}\n\n" + markdown_table(
      ["split", "examples", "longest input", "longest target", "build"], rows)
