"""The execution tracer: the paper's trace format, faithfulness to plain exec, and the sandbox."""

from __future__ import annotations

import builtins
import json
import pathlib
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings, strategies as st

from scratchpad.tracing import sandbox, tracer  # the standard library alone: no TensorFlow

ROOT = pathlib.Path(__file__).resolve().parent.parent
TRACER_FILE = ROOT / "scratchpad" / "tracing" / "tracer.py"

SPEC_PROGRAM = '''def remove_Occ(s,ch):
    for i in range(len(s)):
        if (s[i] == ch):
            s = s[0 : i] + s[i + 1:]
            break
    for i in range(len(s) - 1,-1,-1):
        if (s[i] == ch):
            s = s[0 : i] + s[i + 1:]
            break
    return s
output = remove_Occ("PHP","P")
'''

SPEC_START = '''state: {}
line: def remove_Occ(s,ch):
state: {"remove_Occ": "<callable_object remove_Occ>"}
line: output = remove_Occ("PHP","P")
state: {"s": "PHP", "ch": "P"}
line: for i in range(len(s)):
state: {"s": "PHP", "ch": "P", "i": 0}'''

SPEC_END = '''line: return s
state: {"remove_Occ": "<callable_object remove_Occ>", "output": "H"}'''

FAST = tracer.Limits(seconds=1.0)


def plain_exec(source: str):
  """What a program binds to `output` when run normally, in this process."""
  namespace = {"__name__": "__main__", "__builtins__": builtins}
  exec(compile(source, "<program>", "exec"), namespace)
  return namespace["output"]


def expected_output(source: str) -> str:
  return json.dumps(tracer.encode_value(plain_exec(source)), ensure_ascii=False)


def count_line_events(source: str) -> int:
  """The line events sys.settrace sees in the program's frames, counted independently."""
  count = 0

  def local(frame, event, arg):
    nonlocal count
    count += event == "line"
    return local

  def global_trace(frame, event, arg):
    return local if frame.f_code.co_filename == "<program>" else None

  previous = sys.gettrace()
  sys.settrace(global_trace)
  try:
    plain_exec(source)
  finally:
    sys.settrace(previous)
  return count


# The format.

def test_spec_example_trace():
  trace = tracer.trace_program(SPEC_PROGRAM)
  text = tracer.format_trace(trace)
  assert trace.status == "ok" and trace.error is None
  assert text.startswith(SPEC_START + "\n")
  assert text.endswith("\n" + SPEC_END)
  assert trace.output == '"H"'
  # One line and one state per executed line, and the states parse back.
  assert text.count("\nline: ") == len(trace.steps) == count_line_events(SPEC_PROGRAM)
  states = tracer.parse_trace(text)
  assert states[0] == {} and states[-1] == {"remove_Occ": "<callable_object remove_Occ>", "output": "H"}
  assert len(states) == len(trace.steps) + 1


def test_loop_is_unrolled():
  source = "total = 0\nfor k in range(7):\n    total += k\noutput = total\n"
  trace = tracer.trace_program(source)
  text = tracer.format_trace(trace)
  assert text.count("line: total += k\n") == 7
  assert text.count("line: for k in range(7):\n") == 8  # the last one ends the loop
  assert [state.get("k") for state in tracer.parse_trace(text)][2:5] == [0, 0, 1]
  assert trace.output == "21"


def test_parse_trace_gives_none_for_states_that_are_not_json_objects():
  text = 'state: {}\nline: x = 1\nstate: {"x": 1\nline: y = 2\nstate: [1]\nline: z\nstate: {"z": 3}'
  assert tracer.parse_trace(text) == [{}, None, None, {"z": 3}]


# Values.

class _Opaque:
  pass


@pytest.mark.parametrize("value,encoded", [
    ("s", "s"), (3, 3), (True, True), (None, None), (2.5, 2.5),
    (float("nan"), "<float nan>"), (float("inf"), "<float inf>"), (float("-inf"), "<float -inf>"),
    ([1, [2, "a"]], [1, [2, "a"]]), ({"a": 1, "b": [None]}, {"a": 1, "b": [None]}),
    ((1, 2), "<tuple (1, 2)>"), ((1,), "<tuple (1,)>"), ({2, 1}, "<set {1, 2}>"), (set(), "<set set()>"),
    (frozenset({"b", "a"}), "<frozenset frozenset({'a', 'b'})>"), ({1: "a"}, "<dict {1: 'a'}>"),
    ((1, {"z", "y"}), "<tuple (1, {'y', 'z'})>"), (b"ab", "<bytes b'ab'>"), (1 + 2j, "<complex (1+2j)>"),
    (len, "<callable_object len>"), (lambda: 0, "<callable_object <lambda>>"), (int, "<callable_object int>"),
    ([].append, "<callable_object append>"), (json, "<module json>"),
    (_Opaque(), f"<_Opaque <{__name__}._Opaque object>>"),
])
def test_encode_value(value, encoded):
  assert tracer.encode_value(value) == encoded


def test_encode_value_caps_big_and_deep_values():
  assert tracer.encode_value("x" * 10_000) == "<str len=10000>"
  assert tracer.encode_value(list(range(100_000))) == "<list len=100000>"
  assert tracer.encode_value({str(i): i for i in range(5000)}) == "<dict len=5000>"
  assert tracer.encode_value(2 ** 100_000) == "<int bit_length=100001>"
  assert tracer.encode_value(tuple(range(5000))) == "<tuple len=5000>"
  deep = []
  for _ in range(100):
    deep = [deep]
  assert tracer.encode_value(deep) == "<list len=1>"
  cyclic = [1]
  cyclic.append(cyclic)
  assert tracer.encode_value(cyclic) == "<list len=2>"
  long_repr = tracer.encode_value(tuple(range(1000)))
  assert long_repr.endswith("...>") and len(long_repr) <= len("<tuple >") + 203
  assert len(tracer.encode_state({"a": list(range(10_000)), "b": "y" * 10**6})) < 100


def test_encode_state_leaves_out_dunders_and_comprehension_iterators():
  state = {"__name__": "__main__", "__builtins__": builtins, ".0": iter([]), "x": 1, "_y": "é"}
  assert tracer.encode_state(state) == '{"x": 1, "_y": "é"}'


# Faithfulness: the final state and `output` are what plain exec binds.

CORPUS = [
    's = "Hello, World"\nwords = s.lower().split(", ")\noutput = "-".join(w[::-1] for w in words)\n',
    "xs = [5, 3, 8, 1]\nxs.sort()\nxs.append(10)\noutput = xs[1:]\n",
    'd = {}\nfor ch in "mississippi":\n    d[ch] = d.get(ch, 0) + 1\noutput = d\n',
    "pairs = [(1, 'a'), (2, 'b')]\noutput = tuple(p[1] for p in pairs)\n",
    "output = {3, 1, 2} | {5}\n",
    'output = set("banana")\n',
    "import math\noutput = [math.sqrt(2), 1 / 3, float('inf'), float('nan'), -0.0]\n",
    "output = [True, False, None, 1 == 1]\n",
    "def make_adder(n):\n    def add(x):\n        return x + n\n    return add\nadd3 = make_adder(3)\n"
    "output = [add3(i) for i in range(4)]\n",
    "def counter():\n    count = 0\n    def step():\n        nonlocal count\n        count += 1\n"
    "        return count\n    return step\nc = counter()\nc()\nc()\noutput = c()\n",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\noutput = fib(10)\n",
    "def fact(n):\n    if n <= 1:\n        return 1\n    return n * fact(n - 1)\noutput = fact(25)\n",
    "output = {k: k * k for k in range(5)}\n",
    "def gen(n):\n    for i in range(n):\n        yield i * i\noutput = list(gen(5))\n",
    "output = (i for i in range(3))\n",
    "f = lambda x: x * 2\noutput = list(map(f, [1, 2, 3]))\n",
    "output = lambda: 0\n",
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n"
    "    def norm2(self):\n        return self.x ** 2 + self.y ** 2\np = Point(3, 4)\noutput = p.norm2()\n",
    "class A:\n    pass\noutput = [A(), A]\n",
    "class P:\n    def __init__(self, x):\n        self.x = x\n    def __repr__(self):\n"
    "        return f'P({self.x})'\noutput = P(7)\n",
    "import math\noutput = [math.gcd(12, 18), math.factorial(10), math.comb(5, 2)]\n",
    'from collections import Counter\ncounts = Counter("abracadabra")\n'
    "output = [counts.most_common(2), counts]\n",
    "import itertools\noutput = [''.join(p) for p in itertools.permutations('abc', 2)]\n",
    "from functools import reduce\noutput = reduce(lambda a, b: a * b, range(1, 8))\n",
    'import re\noutput = re.findall(r"\\d+", "a1b22c333")\n',
    'words = ["pear", "fig", "banana"]\noutput = sorted(words, key=lambda w: (len(w), w))\n',
    's = "  Title Case  "\noutput = [s.strip().upper(), s.count("e"), s.replace(" ", "_"), "ab".zfill(5)]\n',
    'import json\noutput = json.loads(json.dumps({"a": [1, 2, {"b": None}]}))\n',
    "import heapq\nh = []\nfor v in [5, 1, 4, 2]:\n    heapq.heappush(h, v)\n"
    "output = [heapq.heappop(h) for _ in range(3)]\n",
    "a, b = 1071, 462\nwhile b:\n    a, b = b, a % b\nelse:\n    done = True\noutput = a\n",
    'try:\n    x = int("abc")\nexcept ValueError as e:\n    x = -1\noutput = x\n',
    "output = [2 ** 10000, list(range(5000))]\n",
    'output = {"a": [1, [2, [3, {"b": (4, 5)}]]], "c": "x" * 10}\n',
    'output = "héllo wörld ✓"\n',
    "import random\nrandom.seed(1)\noutput = [random.randint(1, 100) for _ in range(3)]\n",
    "from fractions import Fraction\nfrom decimal import Decimal\n"
    "output = [Fraction(1, 3) + Fraction(1, 6), Decimal('1.1') + Decimal('2.2')]\n",
    "x = 5\nys = [x * 2 for x in range(3)]\noutput = [x, ys]\n",
    "def g():\n    x = 5\n    ys = [x for x in range(3)]\n    return x, ys\noutput = g()\n",
    'output = [b"ab", 1 + 2j, range(3), None]\n',
    "from dataclasses import dataclass\n@dataclass\nclass Q:\n    x: int\n    y: int = 0\noutput = Q(1)\n",
    'from collections import namedtuple\nPt = namedtuple("Pt", "x y")\noutput = Pt(1, 2)\n',
    'output = list(zip("ab", enumerate([10, 20])))\n',
    "import statistics\noutput = [statistics.mean([1, 2, 4]), statistics.median([3, 1, 2])]\n",
    'print("printed text does not reach the trace")\nimport sys\nsys.stdout.write("x")\noutput = 1\n',
    "total = 0\ndef add(n):\n    global total\n    total += n\n"
    "for i in range(3):\n    add(i)\noutput = total\n",
    "import string\noutput = string.ascii_lowercase[:5] + str(len(string.digits))\n",
]


@pytest.fixture(scope="module")
def corpus_traces():
  return tracer.trace_programs(CORPUS)


@pytest.mark.parametrize("index", range(len(CORPUS)))
def test_traces_are_faithful_to_plain_exec(corpus_traces, index):
  source, trace = CORPUS[index], corpus_traces[index]
  assert (trace.status, trace.error) == ("ok", None)
  assert trace.output == expected_output(source)
  final = tracer.parse_trace(tracer.format_trace(trace))[-1]
  assert final["output"] == json.loads(trace.output)
  assert len(trace.steps) == count_line_events(source)


def test_traces_are_deterministic():
  source = 'import random\nwords = list({"pear", "fig", "kiwi", "plum"})\noutput = [words, random.random()]\n'
  first = tracer.trace_programs([source, source])
  assert first[0] == first[1] == tracer.trace_program(source)


# Random integer programs: straight-line code, branches and while loops.

NAMES = ("a", "b", "c")
operand = st.one_of(st.sampled_from(NAMES), st.integers(-9, 9).map(str))
expression = st.tuples(operand, st.sampled_from("+-*"), operand).map(
    lambda t: f"({t[0]} {t[1]} {t[2]}) % 1000")
assignment = st.tuples(st.sampled_from(NAMES), expression).map(lambda t: [f"{t[0]} = {t[1]}"])
condition = st.tuples(operand, st.sampled_from(["<", ">", "==", "!="]), operand).map(" ".join)


def _indented(lines: list[str]) -> list[str]:
  return ["    " + line for line in lines]


branch = st.tuples(condition, st.lists(assignment, min_size=1, max_size=2),
                   st.lists(assignment, min_size=1, max_size=2)).map(
    lambda t: [f"if {t[0]}:", *_indented(sum(t[1], [])), "else:", *_indented(sum(t[2], []))])


@st.composite
def programs(draw):
  lines = [f"{name} = {draw(st.integers(-20, 20))}" for name in NAMES]
  for loop in range(draw(st.integers(0, 2))):
    lines += draw(st.lists(st.one_of(assignment, branch), max_size=2).map(lambda b: sum(b, [])))
    body = draw(st.lists(st.one_of(assignment, branch), min_size=1, max_size=3).map(lambda b: sum(b, [])))
    counter = f"i{loop}"
    lines += [f"{counter} = 0", f"while {counter} < {draw(st.integers(0, 5))}:", *_indented(body),
              f"    {counter} += 1"]
  lines.append(f"output = {draw(expression)}")
  return "\n".join(lines) + "\n"


@settings(max_examples=60, deadline=None)
@given(programs())
def test_random_integer_programs_match_exec(source):
  trace = tracer.trace_program(source)
  assert trace.status == "ok", tracer.format_trace(trace)
  assert trace.output == expected_output(source)
  assert tracer.parse_trace(tracer.format_trace(trace))[-1]["output"] == plain_exec(source)
  assert tracer.format_trace(trace).count("\nline: ") == len(trace.steps) == count_line_events(source)


# Programs that raise, and other non-ok endings.

def test_error_ends_the_trace_with_the_line_that_raised():
  trace = tracer.trace_program("x = 1\ny = 0\noutput = x / y\n")
  assert (trace.status, trace.output) == ("error", None)
  text = tracer.format_trace(trace)
  assert text.endswith("line: output = x / y\nerror: ZeroDivisionError: division by zero")


def test_error_inside_a_nested_function():
  source = ("def outer(xs):\n    def inner(i):\n        return xs[i]\n    return inner(len(xs))\n"
            "output = outer([1, 2])\n")
  trace = tracer.trace_program(source)
  assert trace.status == "error"
  text = tracer.format_trace(trace)
  assert text.endswith("line: return xs[i]\nerror: IndexError: list index out of range")
  assert '{"i": 2, "xs": [1, 2]}' in text


@pytest.mark.parametrize("source", [
    "def f(n):\n    return f(n + 1)\noutput = f(0)\n",
    "def f(n):\n    x = [[[[n]]]]\n    return f(n + 1)\noutput = f(0)\n",
    # Caught, the RecursionError still ends the trace (see the module docstring).
    "def f(n):\n    try:\n        return f(n + 1)\n    except RecursionError:\n        return n\n"
    "output = f(0)\n",
])
def test_deep_recursion_is_a_recursion_error(source):
  trace, after = tracer.trace_programs([source, GOOD], tracer.Limits(max_steps=100_000, max_output_chars=10**7))
  assert trace.status == "error" and trace.error.startswith("RecursionError: maximum recursion depth exceeded")
  assert trace.steps[-1][1] == "" and len(trace.steps) > 900
  assert after.output == "45"


def test_recursion_within_the_limit_is_traced():
  source = "def depth(n):\n    return 0 if n == 0 else 1 + depth(n - 1)\noutput = depth(800)\n"
  trace = tracer.trace_program(source, tracer.Limits(max_steps=100_000, max_output_chars=10**7))
  assert (trace.status, trace.output) == ("ok", "800")


def test_syntax_error_no_output_and_stdin():
  syntax, silent, reads = tracer.trace_programs(
      ["def f(:\n    pass\n", "x = 1\n", "a = input()\nb = int(input())\noutput = a * b\n"],
      stdin=["", "", "ab\n3\n"])
  assert syntax.status == "syntax" and syntax.error.startswith("SyntaxError: ") and syntax.steps == ()
  assert tracer.format_trace(syntax) == f"state: {{}}\nerror: {syntax.error}"
  assert silent.status == "no_output" and silent.output is None and "output" in silent.error
  assert silent.steps == (("x = 1", '{"x": 1}'),)
  assert (reads.status, reads.output) == ("ok", '"ababab"')
  assert tracer.trace_program("output = input()\n").error == "EOFError: EOF when reading a line"


def test_system_exit_zero_ends_the_program_normally():
  assert tracer.trace_program("output = 3\nexit()\noutput = 4\n").output == "3"
  assert tracer.trace_program("import sys\nsys.exit(2)\n").error == "SystemExit: 2"


# The sandbox: each stop for real, and the batch goes on after it.

GOOD = "output = sum(range(10))\n"
BAD_PROGRAMS = {
    "too_long": "while True:\n    pass\n",
    "forbidden": "output = open('/etc/passwd').read()\n",
    "memory": "output = 'a' * 10**10\n",
    "timeout": "import time\ntime.sleep(100)\n",
    "error": "output = [][1]\n",
    "syntax": "output = (\n",
    "no_output": "pass\n",
    "crashed": "import os\nos._exit(0)\n",
}


def test_every_bad_program_is_followed_by_a_good_trace():
  batch = [program for bad in BAD_PROGRAMS.values() for program in (bad, GOOD)]
  traces = tracer.trace_programs(batch, FAST)
  assert [t.status for t in traces[::2]] == list(BAD_PROGRAMS)
  assert all(t.error for t in traces[::2])
  assert all((t.status, t.output) == ("ok", "45") for t in traces[1::2])


def test_infinite_loop_is_too_long():
  trace = tracer.trace_program("n = 0\nwhile True:\n    n += 1\n", tracer.Limits(max_steps=300))
  assert trace.status == "too_long" and trace.error == "stopped: more than 300 traced lines"
  assert len(trace.steps) == 300
  assert tracer.format_trace(trace).endswith("\nerror: stopped: more than 300 traced lines")


def test_long_trace_text_is_too_long():
  trace = tracer.trace_program("xs = []\nfor i in range(200):\n    xs.append('abcdefghij')\n",
                               tracer.Limits(max_output_chars=5000))
  assert trace.status == "too_long" and "5000 characters" in trace.error
  assert len(tracer.format_trace(trace)) < 5000 + 2500


def test_catching_base_exception_does_not_escape_the_step_limit():
  source = ("while True:\n    try:\n        while True:\n            pass\n"
            "    except BaseException:\n        pass\n")
  trace = tracer.trace_program(source, tracer.Limits(max_steps=200))
  assert trace.status == "too_long"


@pytest.mark.parametrize("source", ["import time\ntime.sleep(100)\n", "output = sum(range(10**12))\n"])
def test_calls_without_line_events_time_out(source):
  tracer.trace_program(GOOD, FAST)  # a started worker, so that only the program is timed
  start = time.monotonic()
  trace = tracer.trace_program(source, FAST)
  assert time.monotonic() - start < FAST.seconds + 1.5
  assert trace.status == "timeout" and trace.error == "stopped: time limit of 1.0 s exceeded"


@pytest.mark.parametrize("source", [
    "x = []\nwhile True:\n    x.append('a' * 10**6)\n",
    "output = 'a' * 10**10\n",
    "try:\n    x = [0] * 10**9\nexcept MemoryError:\n    x = 0\noutput = x\n",
])
def test_unbounded_allocation_is_a_memory_stop(source):
  limits = tracer.Limits(memory_mb=128, max_steps=10_000)
  trace, after = tracer.trace_programs([source, GOOD], limits)
  assert trace.status == "memory" and trace.error == "stopped: memory limit of 128 MB exceeded"
  assert after.output == "45"


def test_reading_files_is_forbidden():
  trace = tracer.trace_program("x = 1\noutput = open('/etc/passwd').read()\n")
  assert trace.status == "forbidden"
  assert trace.error == ("stopped: the program tried to open '/etc/passwd' "
                         "(files, network and processes are not allowed)")
  assert tracer.format_trace(trace).endswith(
      "line: output = open('/etc/passwd').read()\nerror: " + trace.error)


def test_writing_files_is_forbidden_and_nothing_is_written(tmp_path):
  target = tmp_path / "written.txt"
  plain = tracer.trace_program(f"with open({str(target)!r}, 'w') as f:\n    f.write('x')\noutput = 1\n")
  low_level = tracer.trace_program(f"import os\nfd = os.open({str(target)!r}, os.O_WRONLY | os.O_CREAT)\n")
  assert plain.status == low_level.status == "forbidden"
  assert "for writing" in plain.error and not target.exists()


def test_processes_are_forbidden_and_nothing_runs(tmp_path):
  target = tmp_path / "touched"
  for source in [f"import os\nos.system('touch {target}')\noutput = 1\n",
                 f"import subprocess\nsubprocess.run(['touch', {str(target)!r}])\noutput = 1\n"]:
    trace = tracer.trace_program(source)
    assert trace.status == "forbidden", trace
    assert "files, network and processes are not allowed" in trace.error
  assert "os.system" in tracer.trace_program(f"import os\nos.system('touch {target}')\n").error
  assert not target.exists()


def test_network_is_forbidden():
  source = "import socket\ns = socket.socket()\ns.connect(('127.0.0.1', 9))\noutput = 1\n"
  trace = tracer.trace_program(source)
  assert trace.status == "forbidden" and "socket" in trace.error


@pytest.mark.parametrize("source", [
    "try:\n    open('/etc/passwd')\nexcept:\n    pass\noutput = 1\n",
    "try:\n    import os\n    os.listdir('/')\nexcept BaseException:\n    pass\noutput = 1\n",
    "import sys\nsys.settrace(None)\noutput = 1\n",
    "import ctypes\nctypes.CDLL(None)\noutput = 1\n",
    "import shutil\nshutil.rmtree('/tmp/nothing-here')\noutput = 1\n",
    "import threading\nthreading.Thread(target=print).start()\noutput = 1\n",
    "import gc\noutput = len(gc.get_objects())\n",
])
def test_forbidden_actions_cannot_be_caught(source):
  assert tracer.trace_program(source).status == "forbidden"


def test_only_the_standard_library_can_be_imported():
  trace = tracer.trace_program("import pytest\noutput = 1\n")
  assert trace.status == "error" and trace.error.startswith("ModuleNotFoundError")


def test_writing_to_the_real_stdout_does_not_break_the_worker():
  trace, after = tracer.trace_programs(["import os\nos.write(1, b'garbage\\n' * 10000)\noutput = 2\n", GOOD])
  assert (trace.output, after.output) == ("2", "45")


# Entry points.

def test_main_prints_the_trace(tmp_path, capsys):
  program = tmp_path / "program.py"
  program.write_text(SPEC_PROGRAM)
  assert tracer.main([str(program)]) == 0
  out = capsys.readouterr().out
  assert out.startswith(SPEC_START) and out.rstrip("\n").endswith(SPEC_END)


def test_main_with_a_missing_file_is_an_error(capsys):
  assert tracer.main(["missing.py"]) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and "missing.py" in err and err.count("\n") == 1


def test_script_entry(tmp_path):
  program = tmp_path / "program.py"
  program.write_text("x = 2\noutput = x * 21\n")
  result = subprocess.run([sys.executable, str(TRACER_FILE), str(program)], capture_output=True, text=True,
                          timeout=60)
  assert result.returncode == 0
  assert result.stdout == ('state: {}\nline: x = 2\nstate: {"x": 2}\nline: output = x * 21\n'
                           'state: {"x": 2, "output": 42}\n')


# The parent believes no reply unchecked (the attacks themselves: tests/test_sandbox.py, -m sandbox).

@pytest.mark.parametrize("raw,overflow,problem", [
    (b'{"a": 1}\n', False, None),
    (b"", False, None),  # no reply: how the process ended says why
    (b'{"a": 1}\n{"a": 2}\n', False, "sent 2 replies, not one"),
    (b'{"a": 1}', False, "does not end its line"),
    (b"{not json\n", False, "is not JSON"),
    (b"[1, 2]\n", False, "is not a JSON object"),
    (b"x" * 10, True, "longer than"),
])
def test_a_reply_is_one_json_object_or_the_reason_it_is_not(raw, overflow, problem):
  message, found = sandbox.parse_reply(raw, overflow)
  if problem is None:
    assert found is None and message == (json.loads(raw) if raw else None)
  else:
    assert message is None and problem in found


@pytest.mark.parametrize("message", [
    {"status": "ok", "steps": [], "output": "1"},
    {"status": "won", "steps": [], "output": "1", "error": None},
    {"status": "ok", "steps": [["a = 1"]], "output": "1", "error": None},
    {"status": "ok", "steps": [], "output": 1, "error": None},
])
def test_a_well_formed_reply_with_the_wrong_fields_is_a_crash(message):
  outcome = sandbox.Outcome(message, None, 0, False, sandbox.FULL)
  trace = tracer._trace_of(outcome, tracer.Limits())
  assert trace.status == "crashed" and trace.error.startswith("stopped: the program's process sent a reply")


def test_without_the_boundary_tracing_is_refused_unless_the_weaker_guard_is_accepted(monkeypatch):
  monkeypatch.setattr(sandbox, "SECCOMP_LIBRARY", "libseccomp-not-here.so.0")
  with pytest.raises(sandbox.SandboxUnavailable, match=r"no seccomp \(libseccomp \(libseccomp-not-here.so.0\) "
                                                         r"not found: install libseccomp2\).*--allow_weak_sandbox"):
    tracer.trace_programs([GOOD], allow_weak_sandbox=False)
  trace = tracer.trace_programs([GOOD], allow_weak_sandbox=True)[0]
  assert trace.status == "ok" and trace.sandbox.startswith("weak: no seccomp")
  monkeypatch.setenv(tracer.WEAK_SANDBOX_ENV, "1")
  assert tracer.trace_programs([GOOD])[0].sandbox == trace.sandbox


def test_every_program_runs_in_a_fresh_process():
  pids = tracer.trace_programs(["import os\noutput = os.getpid()\n"] * 5)
  assert len({t.output for t in pids}) == 5
