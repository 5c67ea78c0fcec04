"""Results as tables: `{split: {metric: value}}` per run, rendered for people."""

from __future__ import annotations

METRICS = ("answer_accuracy", "sequence_accuracy")


def results_rows(results_by_run: dict[str, dict[str, dict[str, float]]]) -> list[list[str]]:
  rows = []
  for run, results in results_by_run.items():
    for split, metrics in results.items():
      rows.append([run, split] + [f"{metrics[m]:.1f}" for m in METRICS if m in metrics]
                  + [str(metrics.get("num_examples", ""))])
  return rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
  widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
  line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
  return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])


def results_table(results_by_run: dict[str, dict[str, dict[str, float]]]) -> str:
  """One row per run and split: answer and sequence accuracy (%) and the example count."""
  header = ["run", "split", "answer_accuracy %", "sequence_accuracy %", "examples"]
  return markdown_table(header, results_rows(results_by_run))
