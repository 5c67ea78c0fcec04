"""Markdown tables (no dependencies: reports and the benchmarks share them)."""


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
  widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
  line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
  return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])
