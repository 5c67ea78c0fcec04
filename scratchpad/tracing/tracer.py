"""Execution traces of Python programs (Nye et al. 2021, section 5), run in a sandbox.

Trace format (the paper's; `format_trace` writes it). A program whose last
statement binds `output` gives

    state: {}
    line: def remove_Occ(s,ch):
    state: {"remove_Occ": "<callable_object remove_Occ>"}
    line: output = remove_Occ("PHP","P")
    state: {"s": "PHP", "ch": "P"}
    line: for i in range(len(s)):
    state: {"s": "PHP", "ch": "P", "i": 0}
    ...
    line: return s
    state: {"remove_Occ": "<callable_object remove_Occ>", "output": "H"}

`state: {}` first, then one `line:` per executed source line (loops unrolled;
the line stripped of surrounding whitespace), each followed by `state:`, the
JSON (`json.dumps(..., ensure_ascii=False)`) of the local variables of the frame
where execution is at the NEXT trace event. So after a call the state is the
callee's at its first line, and after `return s` it is the caller's at its next
line, or the module's at the end, where `output` is bound. Traced frames are
those whose code comes from the program (filename "<program>"): the module,
functions, class bodies, generators and comprehensions; standard library frames
are not. Python 3.12 inlines list/set/dict comprehensions into the enclosing
frame, so its traces of them differ from 3.11's (the worker runs the caller's
interpreter). Names `__like_this__` and `.0` (a comprehension's iterator) are
left out of states. A program that raises ends with the line that raised and
`error: TYPE: message` instead of that line's state (in `Trace.steps`, the
state ""); a stopped program ends with `error: stopped: ...`, after the line
that was running when there is one. When the parent has to kill the worker (a
timeout inside C code, a crash) the steps are lost: the trace is `state: {}`
and the error.

Values (`encode_value`): str, int, bool, None and finite floats as themselves,
`"<float nan>"`, `"<float inf>"`, `"<float -inf>"`; lists as JSON lists, dicts with
only str keys as JSON objects (insertion order); modules as `"<module NAME>"`;
anything else callable (functions, lambdas, builtins, classes, bound methods) as
`"<callable_object NAME>"`; everything else (tuples, sets, bytes, dicts with other
keys, instances, generators, ...) as `"<TYPENAME REPR>"`, e.g. `"<tuple (1, 2)>"`,
with REPR cut after 200 characters (`...`), set items sorted and memory
addresses (` at 0x7f...`) dropped, so that a trace does not depend on the run.
Caps, so a state cannot blow up: a str, list or dict whose JSON would pass about
VALUE_CHARS (2000) characters or nest deeper than MAX_DEPTH (32) is written
`"<TYPENAME len=N>"` (as a whole: `[big]` is `"<list len=1>"`), an int of more
digits `"<int bit_length=N>"`, and a tuple, set or non-str-key dict of more than
MAX_REPR_ITEMS (1000) items `"<TYPENAME len=N>"`.

Sandbox. Programs never run in the caller's process, nor in one another's:
each runs in a fresh child of a template process and dies with it, behind the
operating system's boundary (`sandbox.py`: namespaces, seccomp, rlimits), so
nothing a program does reaches the next one. In the child, the program runs in a
`__main__` module of its own with `random` seeded with 0, its printing thrown
away and its stdin the given text (or empty); the template imports the standard
library alone (`-S -P -B`, PYTHONHASHSEED=0). Limits:
  * time: the child stops a program at `seconds` at its next traced line; the
    template kills it sandbox.GRACE_S later (C-level loops such as
    `sum(range(10**12))`, `time.sleep`, and on 3.11 a one-line `while True: pass`,
    which makes no line events): "timeout";
  * memory: RLIMIT_AS is the template's address space plus `memory_mb`; a
    MemoryError in the program ends it: "memory";
  * steps: more than `max_steps` traced lines, or a trace text longer than
    `max_output_chars`: "too_long";
  * files, network, processes: refused by the boundary; in front of it an audit
    hook (sys.addaudithook) stops opening anything but standard library files for
    reading, and os.*, subprocess, socket, shutil, ctypes, signal, resource, gc,
    sys.settrace ... events and threads, so that an accident is a readable
    record: "forbidden", with the attempt named. A program can switch the hook
    off for itself; the boundary still holds.
A stop never returns to the program: the child writes its report and exits
(os._exit) right in the trace function or audit hook, so no `except:` can swallow
it (CPython unsets a trace function that raises, so a raised stop could not be
made to stick). The parent trusts no reply: a missing, malformed, extra or
oversized one makes that program's record "crashed", with the reason, and the
batch goes on.

Recursion: the tracer's own calls need stack, so programs run with the recursion
limit raised by _RECURSION_HEADROOM (100), and a RecursionError in the tracer is
reported as the program's RecursionError ("error"), also when the program would
have caught it.

Throughput: `python -m benchmarks.tracer` (figures in benchmarks/NOTES.md, "The tracer").
"""

from __future__ import annotations

import _thread
import atexit
import builtins
import dataclasses
import io
import json
import math
import os
import random
import re
import signal
import sys
import threading
import time
import types
from collections.abc import Sequence

if __package__:
  from scratchpad.tracing import sandbox
else:  # the template process: this file run by path, the standard library alone on sys.path
  import importlib.util
  _spec = importlib.util.spec_from_file_location("sandbox", os.path.join(os.path.dirname(__file__), "sandbox.py"))
  sandbox = sys.modules["sandbox"] = importlib.util.module_from_spec(_spec)
  _spec.loader.exec_module(sandbox)

PROGRAM_FILENAME = "<program>"
VALUE_CHARS = 2000  # a str/list/dict whose JSON would be longer is written "<TYPE len=N>"
MAX_DEPTH = 32
REPR_CHARS = 200
MAX_REPR_ITEMS = 1000  # bigger tuples/sets are not even sorted or walked

_THIS_FILE = os.path.abspath(__file__)
_FORBIDDEN_NOTE = "(files, network and processes are not allowed)"


@dataclasses.dataclass(frozen=True)
class Limits:
  seconds: float = 2.0  # wall time per program
  memory_mb: int = 512  # address space the program may add to the worker's
  max_steps: int = 1000  # traced lines; a longer run is stopped
  max_output_chars: int = 100_000  # trace text cap


@dataclasses.dataclass(frozen=True)
class Trace:
  status: str  # ok | error | timeout | memory | too_long | forbidden | syntax | no_output | crashed
  steps: tuple[tuple[str, str], ...]  # (line source, state JSON); "" state: the line that stopped
  output: str | None  # json.dumps(encode_value(output), ensure_ascii=False) if ok: as in the last state
  error: str | None  # "TYPE: message" or the one-line reason for any status but ok
  sandbox: str = "os"  # the guard it ran under: sandbox.FULL, or "weak: no ..." (what the machine lacked)


# Values and states.

class _TooBig(Exception):
  pass


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def encode_value(value):
  """`value` as a JSON-able object (see the module docstring)."""
  budget = [VALUE_CHARS]
  try:
    return _encode(value, budget, 0)
  except _TooBig:
    return _summary(value)


def _spend(budget: list[int], chars: int) -> None:
  budget[0] -= chars
  if budget[0] < 0:
    raise _TooBig


def _encode(value, budget: list[int], depth: int):
  kind = type(value)
  if kind is str:
    _spend(budget, len(value) + 2)
    return value
  if value is None or kind is bool:
    _spend(budget, 5)
    return value
  if kind is int:
    if value.bit_length() > 4 * budget[0]:  # > budget digits; also never hits int->str limits
      raise _TooBig
    _spend(budget, len(repr(value)))
    return value
  if kind is float:
    if math.isfinite(value):
      _spend(budget, len(repr(value)))
      return value
    text = "<float nan>" if value != value else ("<float inf>" if value > 0 else "<float -inf>")
    _spend(budget, len(text) + 2)
    return text
  if kind is list:
    if depth >= MAX_DEPTH:
      raise _TooBig
    _spend(budget, 2)
    items = []
    for item in value:  # stops early through _TooBig, so huge lists cost little
      _spend(budget, 2)
      items.append(_encode(item, budget, depth + 1))
    return items
  if kind is dict:
    if depth >= MAX_DEPTH:
      raise _TooBig
    before = budget[0]
    _spend(budget, 2)
    entries = {}
    for key, item in value.items():
      if type(key) is not str:
        budget[0] = before
        break
      _spend(budget, len(key) + 6)
      entries[key] = _encode(item, budget, depth + 1)
    else:
      return entries
  text = _describe(value)
  _spend(budget, len(text) + 2)
  return text


def _summary(value) -> str:
  if type(value) is int:
    return f"<int bit_length={value.bit_length()}>"
  try:
    return f"<{type(value).__name__} len={len(value)}>"
  except Exception:  # only sized values are ever too big, but stay safe
    return f"<{type(value).__name__}>"


def _describe(value) -> str:
  """The string form of a value that is not plain JSON data."""
  if isinstance(value, types.ModuleType):
    return f"<module {_name_of(value)}>"
  if callable(value):
    return f"<callable_object {_name_of(value)}>"
  kind = type(value)
  if kind in (tuple, set, frozenset, dict) and len(value) > MAX_REPR_ITEMS:
    return f"<{kind.__name__} len={len(value)}>"
  return f"<{kind.__name__} {_short_repr(value)}>"


def _name_of(value) -> str:
  try:
    name = value.__name__
  except Exception:
    name = None
  return name if isinstance(name, str) else type(value).__name__


def _short_repr(value) -> str:
  """repr(value) with set items sorted and addresses dropped, cut after REPR_CHARS."""
  parts, size = [], 0
  for part in _repr_parts(value, 0):  # lazily, so only the shown part is built
    parts.append(part)
    size += len(part)
    if size > REPR_CHARS:
      break
  text = "".join(parts)
  return text if len(text) <= REPR_CHARS else text[:REPR_CHARS] + "..."


def _repr_parts(value, depth: int):
  kind = type(value)
  if kind not in (list, tuple, dict, set, frozenset):
    yield _plain_repr(value)
    return
  if depth > 20:  # self-containing containers
    yield "..."
    return
  if len(value) > MAX_REPR_ITEMS:
    yield f"<{kind.__name__} len={len(value)}>"
    return
  if kind is dict:
    yield "{"
    for i, (key, item) in enumerate(value.items()):
      yield ", " if i else ""
      yield from _repr_parts(key, depth + 1)
      yield ": "
      yield from _repr_parts(item, depth + 1)
    yield "}"
    return
  if kind in (set, frozenset):
    if not value:
      yield f"{kind.__name__}()"
      return
    items, opening, closing = _sorted_items(value), "{", "}"
    if kind is frozenset:
      opening, closing = "frozenset({", "})"
  else:
    items = value
    opening, closing = ("[", "]") if kind is list else ("(", ",)" if len(value) == 1 else ")")
  yield opening
  for i, item in enumerate(items):
    yield ", " if i else ""
    yield from _repr_parts(item, depth + 1)
  yield closing


def _sorted_items(items) -> list:
  # str hashes change from run to run, so set order must not come from the set.
  try:
    return sorted(items)
  except Exception:
    return sorted(items, key=lambda item: (type(item).__name__, _short_repr(item)))


def _plain_repr(value) -> str:
  try:
    text = repr(value)
  except BaseException:  # a program's __repr__ may raise anything
    return f"<{type(value).__name__} object>"
  return _ADDRESS.sub("", text[:10 * REPR_CHARS])


def _shown(name) -> bool:
  return (type(name) is str and not name.startswith(".")
          and not (name.startswith("__") and name.endswith("__")))


def encode_state(mapping) -> str:
  """The JSON text of a frame's variables, dunder names and `.0` left out."""
  return json.dumps({name: encode_value(value) for name, value in mapping.items() if _shown(name)},
                    ensure_ascii=False)


# Trace text.

def format_trace(trace: Trace) -> str:
  """The paper's trace text: `state: {}`, then `line:`/`state:` pairs, then any error."""
  lines = ["state: {}"]
  for line, state in trace.steps:
    lines.append(f"line: {line}")
    if state:
      lines.append(f"state: {state}")
  if trace.status != "ok":
    lines.append(f"error: {trace.error}")
  return "\n".join(lines)


def parse_trace(text: str) -> list:
  """The states of a trace text in order, as dicts; None for a state that is not a JSON object."""
  states = []
  for line in text.split("\n"):
    if not line.startswith("state:"):
      continue
    try:
      state = json.loads(line[len("state:"):])
    except ValueError:
      state = None
    states.append(state if isinstance(state, dict) else None)
  return states


# The child: runs one program under sys.settrace and the audit hook, then exits.

_RUN = None  # the _Run of the program running now, for the audit hook
_OWN_CALLS = False  # the tracer's own audited calls (sys.settrace, its memory headroom) are allowed
_ALLOWED_ROOTS: tuple[str, ...] = ()  # the standard library's directories
_MEMORY_MB = 0
_EXIT_MEMORY = 3  # the child could not even report a memory stop
_RECURSION_HEADROOM = 100  # frames added to the recursion limit for the tracer's own calls
_RECURSION_ERROR = "RecursionError: maximum recursion depth exceeded"
_DENIED_PREFIXES = (
    "os.", "subprocess.", "_posixsubprocess.", "pty.", "socket.", "ssl.", "http.", "urllib.",
    "ftplib.", "smtplib.", "poplib.", "imaplib.", "nntplib.", "telnetlib.", "webbrowser.",
    "shutil.", "tempfile.", "glob.", "sqlite3.", "dbm.", "mmap.", "fcntl.", "syslog.",
    "ctypes.", "_ctypes.", "signal.", "resource.", "_thread.", "gc.", "code.__new__",
    "sys.settrace", "sys.setprofile", "sys.addaudithook", "sys.monitoring", "sys._current_frames",
    "cpython.", "winreg.", "msvcrt.", "_winapi.")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


class _Run:
  """One program in the worker: the trace callbacks and what they collected."""

  def __init__(self, code, source: str, request: dict):
    self.code = code
    self.lines = [line.strip() for line in source.split("\n")]
    self.max_steps = request["max_steps"]
    self.max_chars = request["max_output_chars"]
    self.seconds = request["seconds"]
    self.deadline = time.monotonic() + self.seconds
    self.steps: list[tuple[str, str]] = []
    self.pending = None  # the line whose state comes with the next event
    self.count = 0
    self.chars = len("state: {}")
    self.final_state = None
    self.output = None
    self.done = False

  def on_call(self, frame, event, arg):
    if self.done or frame.f_code.co_filename != PROGRAM_FILENAME:
      return None
    return self.on_event

  def on_event(self, frame, event, arg):
    if self.done:
      return None
    try:
      if event == "line":
        self._line(frame)
      elif event == "return" and frame.f_code is self.code:
        self._finish(frame)
      elif event == "exception" and issubclass(arg[0], MemoryError):
        _stop("memory", None, with_pending=True)
    except MemoryError:
      _stop("memory", None, with_pending=True)
    except RecursionError:  # the program used up the stack: its own frames would have next
      _stop("error", _RECURSION_ERROR, with_pending=True)
    except BaseException as e:  # a tracer bug must not look like the program's error
      _stop("crashed", f"stopped: the tracer failed: {_error_text(e)}", with_pending=True)
    return self.on_event

  def _line(self, frame) -> None:
    if self.pending is not None:
      state = encode_state(frame.f_locals)
      self.steps.append((self.pending, state))
      self.chars += len(self.pending) + len(state) + 15  # "\nline: " and "\nstate: "
      if self.chars > self.max_chars:
        _stop("too_long", f"stopped: trace longer than {self.max_chars} characters", with_pending=False)
    self.count += 1
    if self.count > self.max_steps:
      _stop("too_long", f"stopped: more than {self.max_steps} traced lines", with_pending=False)
    if time.monotonic() > self.deadline:
      _stop("timeout", _timeout_reason(self.seconds), with_pending=False)
    lineno = frame.f_lineno
    self.pending = self.lines[lineno - 1] if lineno and 0 < lineno <= len(self.lines) else ""

  def _finish(self, frame) -> None:
    variables = frame.f_locals
    self.final_state = encode_state(variables)
    if "output" in variables:
      self.output = json.dumps(encode_value(variables["output"]), ensure_ascii=False)
    self.done = True


def _timeout_reason(seconds: float) -> str:
  return f"stopped: time limit of {seconds} s exceeded"


def _memory_reason(memory_mb: int) -> str:
  return f"stopped: memory limit of {memory_mb} MB exceeded"


def _error_text(exc: BaseException) -> str:
  try:
    message = str(exc)
  except BaseException:
    message = ""
  text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
  return " ".join(text.split("\n"))[:1000]


def _stop(status: str, error: str | None, with_pending: bool) -> None:
  """Reports the running program as stopped and ends its process: nothing returns to the program."""
  global _OWN_CALLS
  _OWN_CALLS = True
  if status == "memory":
    try:
      sandbox.release_headroom()  # room to write the report
    except BaseException:
      pass
  try:
    sys.setrecursionlimit(sys.getrecursionlimit() + 1000)  # the report may come from deep down
  except BaseException:
    pass
  if status == "memory":
    error = _memory_reason(_MEMORY_MB)
  run = _RUN
  steps = list(run.steps) if run is not None else []
  if with_pending and run is not None and run.pending is not None:
    steps.append((run.pending, ""))
  code = 0
  try:
    sandbox.reply({"status": status, "steps": steps, "output": None, "error": error})
  except MemoryError:
    code = _EXIT_MEMORY
  except BaseException:
    code = 4
  os._exit(code)


def _under_allowed_root(path) -> bool:
  if isinstance(path, bytes):
    path = os.fsdecode(path)
  if not isinstance(path, str) or not os.path.isabs(path):
    return False  # relative paths, file descriptors (open(0)), ...
  path = os.path.normpath(path)
  return any(path == root or path.startswith(root + os.sep) for root in _ALLOWED_ROOTS)


def _forbidden(event: str, args: tuple) -> str | None:
  """What a program tried, when the audit event is not allowed; None when it is."""
  if event == "open":
    path, mode, flags = (tuple(args) + (None, None, None))[:3]
    writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
        isinstance(flags, int) and flags & _WRITE_FLAGS)
    if not writing and _under_allowed_root(path):
      return None  # the import system reading the standard library
    return f"to open {path!r}" + (" for writing" if writing else "")
  if not event.startswith(_DENIED_PREFIXES):
    return None
  if event in ("os.listdir", "os.scandir") and args and _under_allowed_root(args[0]):
    return None  # the import system's directory caches
  shown = ", ".join(repr(a) for a in args)
  return f"{event}({shown[:100] + '...' if len(shown) > 100 else shown})"


def _audit(event: str, args: tuple) -> None:
  if _OWN_CALLS or (event != "open" and not event.startswith(_DENIED_PREFIXES)):
    return
  attempt = _forbidden(event, args)
  if attempt is None:
    return
  reason = f"stopped: the program tried {attempt} {_FORBIDDEN_NOTE}"
  if _RUN is None:  # after the program (a late __del__): refuse, there is nobody to report to
    raise PermissionError(reason)
  _stop("forbidden", reason, with_pending=True)


def _set_trace(function) -> None:
  global _OWN_CALLS
  _OWN_CALLS = True
  try:
    sys.settrace(function)
  finally:
    _OWN_CALLS = False


class _Sink(io.RawIOBase):
  def writable(self):
    return True

  def write(self, data):
    return len(data)


def _text_streams(stdin_text: str):
  stdin = io.TextIOWrapper(io.BytesIO(stdin_text.encode("utf-8", "surrogatepass")), encoding="utf-8")
  stdout = io.TextIOWrapper(io.BufferedWriter(_Sink()), encoding="utf-8", errors="backslashreplace")
  return stdin, stdout


def _syntax_result(exc: BaseException) -> dict:
  if isinstance(exc, SyntaxError):
    error = f"{type(exc).__name__}: {exc.msg}" + (f" (line {exc.lineno})" if exc.lineno else "")
  else:
    error = f"SyntaxError: {_error_text(exc)}"
  return {"status": "syntax", "steps": [], "output": None, "error": error}


def _run_program(request: dict) -> dict:
  """In a fresh child of the template: the program's result (a stop replies and exits itself)."""
  global _RUN, _MEMORY_MB
  _MEMORY_MB = request["memory_mb"]
  source = request["source"].replace("\r\n", "\n").replace("\r", "\n")
  try:
    code = compile(source, PROGRAM_FILENAME, "exec", dont_inherit=True)
  except (SyntaxError, ValueError, OverflowError, RecursionError, MemoryError) as e:
    return _syntax_result(e)
  run = _Run(code, source, request)
  module = types.ModuleType("__main__")
  namespace = module.__dict__
  namespace["__builtins__"] = builtins
  random.seed(0)
  sys.stdin, sys.stdout = _text_streams(request.get("stdin") or "")
  sys.stderr = sys.stdout
  sys.modules["__main__"] = module
  sys.setrecursionlimit(sys.getrecursionlimit() + _RECURSION_HEADROOM)
  sys.addaudithook(_audit)
  error = None
  signal.setitimer(signal.ITIMER_REAL, run.seconds + 2)  # dies of SIGALRM if the template is gone
  _set_trace(run.on_call)
  _RUN = run
  try:
    exec(code, namespace)
  except SystemExit as e:
    if e.code not in (None, 0):
      error = e
  except MemoryError:
    _stop("memory", None, with_pending=True)
  except BaseException as e:
    error = e
  try:
    # str(exc) may run the program's code: keep the sandbox on for it.
    error = None if error is None else _error_text(error)
  finally:
    _RUN = None
    _set_trace(None)
  if error is None and not run.done:
    # Only a call of the trace function itself past the recursion limit loses the trace
    # (CPython then unsets it), and the program went on after catching that RecursionError.
    error = _RECURSION_ERROR
  steps = list(run.steps)
  if run.pending is not None:
    steps.append((run.pending, "" if error else run.final_state))
  if error:
    status, output = "error", None
  elif run.output is None:
    status, output, error = "no_output", None, "the program ended without binding `output`"
  else:
    status, output = "ok", run.output
  return {"status": status, "steps": steps, "output": output, "error": error}


_PREIMPORTED = (
    "array", "bisect", "calendar", "cmath", "collections", "copy", "dataclasses", "datetime",
    "decimal", "enum", "fractions", "functools", "heapq", "itertools", "json", "math", "numbers",
    "operator", "random", "re", "statistics", "string", "textwrap", "typing", "unicodedata")


def _no_threads(*args, **kwargs):
  # Python 3.12 audits thread starts itself, 3.11 does not: stop them the same way on both.
  _audit("_thread.start_new_thread", args)
  raise RuntimeError("threads are not allowed")


def _setup_template() -> None:
  """Once, in the template: what every program's child starts from."""
  global _ALLOWED_ROOTS
  import importlib
  for name in _PREIMPORTED:
    importlib.import_module(name)
  import _sitebuiltins  # -S leaves out exit() and quit(), which contest programs call
  builtins.exit = _sitebuiltins.Quitter("exit", "Ctrl-D (i.e. EOF)")
  builtins.quit = _sitebuiltins.Quitter("quit", "Ctrl-D (i.e. EOF)")
  _thread.start_new_thread = _thread.start_new = threading._start_new_thread = _no_threads
  _ALLOWED_ROOTS = tuple(os.path.normpath(p) for p in sys.path if p and os.path.isabs(p))


# The parent: a template process, kept for the next call; every program a child of it.

WEAK_SANDBOX_ENV = "SCRATCHPAD_ALLOW_WEAK_SANDBOX"  # =1: accept the weaker guard where the OS has no boundary
_RESULT_KEYS = {"status", "steps", "output", "error"}
_STATUSES = ("ok", "error", "timeout", "memory", "too_long", "forbidden", "syntax", "no_output")


def _result_problem(message: dict) -> str | None:
  """What is wrong with a child's result, if anything: the parent believes nothing unchecked."""
  if set(message) != _RESULT_KEYS:
    return f"a reply with the keys {sorted(message)}"
  if message["status"] not in _STATUSES:
    return f"a reply with the status {str(message['status'])[:40]!r}"
  steps = message["steps"]
  if not isinstance(steps, list) or not all(
      isinstance(step, list) and len(step) == 2 and all(isinstance(x, str) for x in step) for step in steps):
    return "a reply whose steps are not (line, state) pairs of text"
  if not all(x is None or isinstance(x, str) for x in (message["output"], message["error"])):
    return "a reply whose output or error is not text"
  return None


def _trace_of(outcome, limits: Limits) -> Trace:
  """A program's Trace from what became of its child."""
  def stopped(status: str, error: str) -> Trace:
    return Trace(status, (), None, error, outcome.sandbox)

  message, problem = outcome.message, outcome.problem
  if message is not None:
    problem = _result_problem(message)
    if problem is None:
      steps = tuple((line, state) for line, state in message["steps"])
      return Trace(message["status"], steps, message["output"], message["error"], outcome.sandbox)
    problem = f"the program's process sent {problem}"
  if problem is not None:
    return stopped("crashed", f"stopped: {problem}")
  code = outcome.exit
  if outcome.timed_out or code in (-signal.SIGALRM, -signal.SIGXCPU):
    return stopped("timeout", _timeout_reason(limits.seconds))
  if code == _EXIT_MEMORY:
    return stopped("memory", _memory_reason(limits.memory_mb))
  how = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
  return stopped("crashed", f"stopped: the Python process running the program died ({how})")


_IDLE: list = []  # started templates, kept for the next call
_IDLE_LOCK = threading.Lock()


def _take_server(allow_weak: bool):
  with _IDLE_LOCK:
    while _IDLE:
      server = _IDLE.pop()
      if server.usable() and server.seccomp_library == sandbox.SECCOMP_LIBRARY and (
          allow_weak or server.sandbox == sandbox.FULL):
        return server
      _IDLE_LOCK.release()
      try:
        server.close()
      finally:
        _IDLE_LOCK.acquire()
  return _start_server(allow_weak)


def _start_server(allow_weak: bool):
  return sandbox.ForkServer([_THIS_FILE, "--template", sandbox.SECCOMP_LIBRARY], allow_weak)


def _keep_server(server) -> None:
  if server.usable():
    with _IDLE_LOCK:
      _IDLE.append(server)
  elif server.owner == os.getpid():
    server.close()


def _close_idle_servers() -> None:
  with _IDLE_LOCK:
    servers = list(_IDLE)
    _IDLE.clear()
  for server in servers:
    if server.owner == os.getpid():
      server.close()


atexit.register(_close_idle_servers)


def trace_programs(sources: Sequence[str], limits: Limits = Limits(), stdin: Sequence[str] | None = None,
                   allow_weak_sandbox: bool | None = None) -> list[Trace]:
  """The traces of `sources`, each run in a fresh sandboxed process.

  Where the machine cannot provide the OS boundary this raises sandbox.SandboxUnavailable, unless
  `allow_weak_sandbox` (default: $SCRATCHPAD_ALLOW_WEAK_SANDBOX=1) accepts the weaker guard, which
  every Trace's `sandbox` then names."""
  if stdin is not None and len(stdin) != len(sources):
    raise ValueError(f"{len(stdin)} stdin texts for {len(sources)} programs")
  if allow_weak_sandbox is None:
    allow_weak_sandbox = os.environ.get(WEAK_SANDBOX_ENV, "") not in ("", "0")
  requests = [{"source": source, "stdin": None if stdin is None else stdin[i], "seconds": limits.seconds,
               "memory_mb": limits.memory_mb, "max_steps": limits.max_steps,
               "max_output_chars": limits.max_output_chars} for i, source in enumerate(sources)]
  traces: list[Trace] = []
  server = None
  try:
    while len(traces) < len(requests):
      if server is None or not server.usable():
        server = _take_server(allow_weak_sandbox) if server is None else _start_server(allow_weak_sandbox)
      for outcome in server.run_all(requests[len(traces):]):
        if outcome is None:  # the template failed before this program: a fresh one takes it
          break
        traces.append(_trace_of(outcome, limits))
  finally:
    if server is not None:
      _keep_server(server)
  return traces


def trace_program(source: str, limits: Limits = Limits()) -> Trace:
  return trace_programs([source], limits)[0]


def main(argv: list[str]) -> int:
  """`python scratchpad/tracing/tracer.py FILE.py`: prints the trace of FILE.py."""
  if len(argv) != 1:
    print("error: usage: tracer.py FILE.py", file=sys.stderr)
    return 2
  try:
    with open(argv[0], encoding="utf-8") as f:
      source = f.read()
  except (OSError, UnicodeDecodeError) as e:
    print(f"error: cannot read {argv[0]}: {getattr(e, 'strerror', None) or e}", file=sys.stderr)
    return 2
  print(format_trace(trace_program(source)))
  return 0


if __name__ == "__main__":
  if sys.argv[1:2] == ["--template"]:  # --template [LIBSECCOMP]
    sandbox.serve(_setup_template, _run_program, *sys.argv[2:3])
  else:
    sys.exit(main(sys.argv[1:]))
