"""The package's import graph: arrows one way, and `import scratchpad.tasks` registers every task."""

import ast
import pathlib
import subprocess
import sys

import pytest
import seqio

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "scratchpad"


def module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: pathlib.Path, modules: set[str]) -> set[str]:
  """The `scratchpad` modules a file imports anywhere: at the top, in functions, under `if`.

  `from P import n` counts as importing P.n where that is a module, else P. A
  package's own parents are not counted: importing P.n runs P first, and P
  importing its submodules is no circle.
  """
  name = module_name(path)
  package = name if path.name == "__init__.py" else name.rpartition(".")[0]
  found = set()
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      found.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:  # relative: from the package, up level - 1 packages
        anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
        base = ".".join(anchor + ([base] if base else []))
      for alias in node.names:
        found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
  return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
  paths = sorted(PACKAGE.rglob("*.py"))
  modules = {module_name(p) for p in paths}
  return {module_name(p): imported_modules(p, modules) for p in paths}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """A cycle of the graph as [a, b, ..., a], or None: depth-first, the path kept on a stack."""
  done, stack, on_stack = set(), [], set()

  def visit(node):
    stack.append(node)
    on_stack.add(node)
    for nxt in sorted(graph[node]):
      if nxt in on_stack:
        return stack[stack.index(nxt):] + [nxt]
      if nxt not in done and (cycle := visit(nxt)):
        return cycle
    on_stack.discard(stack.pop())
    done.add(node)
    return None

  for node in sorted(graph):
    if node not in done and (cycle := visit(node)):
      return cycle
  return None


def test_find_cycle_names_the_circle():
  assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
  assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_package_imports_in_no_circle():
  graph = import_graph()
  assert "scratchpad.tasks" in graph and graph["scratchpad.config"], "the walk found the package"
  cycle = find_cycle(graph)
  assert cycle is None, "import circle: " + " -> ".join(cycle)


# The layers, bottom first: a module imports from its own layer or those below it.
LAYERS = ("scratchpad.errors scratchpad.files scratchpad.host scratchpad.markdown scratchpad.tracing", "scratchpad.model",
          "scratchpad.config", "scratchpad.tasks", "scratchpad.train", "scratchpad.evaluation",
          "scratchpad.report scratchpad.sweep scratchpad.pause_study", "scratchpad.commands",
          "scratchpad.cli scratchpad.__main__ scratchpad")


def layer(module: str) -> int:
  """The index in LAYERS of the longest prefix that names `module` or a package above it."""
  prefixes = [(len(p), i) for i, names in enumerate(LAYERS) for p in names.split()
              if module == p or module.startswith(p + ".")]
  return max(prefixes)[1]


def test_layer_reads_the_most_specific_prefix():
  assert layer("scratchpad") == 8 and layer("scratchpad.train.trainer") == 4 and layer("scratchpad.tracing.tracer") == 0


def test_imports_point_down_the_layers():
  upward = [f"{m} -> {d}" for m, deps in import_graph().items() for d in deps if layer(d) > layer(m)]
  assert not upward, "imports against the layers: " + "; ".join(sorted(upward))


def test_config_imports_nothing_of_ours_but_errors_and_the_model():
  deps = import_graph()["scratchpad.config"]
  assert deps and all(d == "scratchpad.errors" or d.startswith("scratchpad.model.") for d in deps), deps


def test_importing_scratchpad_tasks_registers_every_task_in_a_fresh_process():
  code = ("import scratchpad.tasks, seqio; "
          "seqio.get_mixture_or_task('addition_scratchpad'); seqio.get_mixture_or_task('pretrain_text'); "
          "from scratchpad.tasks import get_task_info, task_names; "
          "assert get_task_info('parity').answer_fn(' 1 ') == '1'; "
          "assert {'programs_direct', 'polynomial_direct', 'gsm8k_spm', 'c4_std_inserted10pct'} <= set(task_names())")
  run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert run.returncode == 0, run.stderr[-2000:]


def test_a_task_registered_with_seqio_alone_is_a_clear_error():
  from scratchpad.tasks import get_task_info, registration
  name = "test_imports_plain_seqio_task"
  seqio.TaskRegistry.add(name, source=seqio.FunctionDataSource(lambda split, shuffle_files: None, splits=["train"]),
                         output_features=registration.output_features())
  try:
    with pytest.raises(ValueError, match="registered with seqio directly"):
      get_task_info(name)
    assert name not in registration.task_names()
  finally:
    seqio.TaskRegistry.remove(name)
