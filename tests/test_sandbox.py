"""The sandbox under attack: escapes and poisoning, each with the audit hook switched off first.

Every attack runs as an untrusted program would, then the test checks the world outside its
process: no file made or changed, no signal, priority, affinity or rlimit of this process
touched, no connection to a listener, and a benign program traced after it gives exactly the
trace it gives from a fresh start. `pytest -m sandbox`.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import stat
import sys
import time

import pytest

from scratchpad.tracing import sandbox, tracer

pytestmark = pytest.mark.sandbox

# Switches the tracer's audit hook off from inside, as a program can: the boundary must hold alone.
HOOK_OFF = ("import sys as _s\n_f = _s._getframe()\nwhile '_audit' not in _f.f_globals:\n    _f = _f.f_back\n"
            "_f.f_globals['_OWN_CALLS'] = True\n")
# Binds `output` to what became of a statement: 'done', or the exception and its errno.
ATTEMPT = "try:\n{body}\n    output = 'done'\nexcept BaseException as e:\n    output = type(e).__name__ + ' ' + str(getattr(e, 'errno', ''))\n"
# What poisoning would change: decimal context, random, json, builtins, imports.
BENIGN = ("import decimal, random, json, math, collections\n"
          "d = str(decimal.Decimal(1) / decimal.Decimal(7))\n"
          "r = random.random()\n"
          "j = json.dumps({'a': [1, 2]})\n"
          "c = collections.Counter('abca').most_common(1)\n"
          "output = [d, r, j, len('abc'), math.floor(math.pi), str(c), sorted({'x', 'y'})]\n")
FAST = tracer.Limits(seconds=1.0, memory_mb=256)
LIBC = "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"


def attempt(*lines: str) -> str:
  return ATTEMPT.format(body="\n".join("    " + line for line in lines))


ATTACKS = {
    # Processes and executables.
    "os.system": attempt("assert os.system('touch {mark}') == 0"),
    "os.fork": attempt("os.fork()"),
    "fork bomb": attempt("while True:", "    os.fork()"),
    "subprocess": attempt("import subprocess", "subprocess.run(['/bin/touch', '{mark}'])"),
    "os.execv": attempt("os.execv('/bin/sh', ['sh', '-c', 'touch {mark}'])"),
    "posix_spawn": attempt("os.posix_spawn('/bin/touch', ['touch', '{mark}'], {{}})"),
    "ctypes fork": LIBC + attempt("assert libc.fork() == 0, ctypes.get_errno()"),
    "a thread": attempt("import _thread", "_thread.start_new_thread(print, ())"),
    # Files, directories, links, devices.
    "open for writing": attempt("open('{mark}', 'w').write('x')"),
    "os.open O_CREAT": attempt("os.open('{mark}', os.O_CREAT | os.O_WRONLY)"),
    "append to a file": attempt("open('{existing}', 'a').write('x')"),
    "truncate a file": attempt("os.truncate('{existing}', 0)"),
    "unlink a file": attempt("os.unlink('{existing}')"),
    "rename a file": attempt("os.rename('{existing}', '{mark}')"),
    "chmod a file": attempt("os.chmod('{existing}', 0o777)"),
    "mkdir": attempt("os.mkdir('{mark}')"),
    "mkfifo": attempt("os.mkfifo('{mark}')"),
    "symlink": attempt("os.symlink('{existing}', '{mark}')"),
    "memfd_create": attempt("os.memfd_create('x')"),
    # Network.
    "tcp connect": attempt("import socket", "socket.create_connection(('127.0.0.1', {port}), timeout=0.2)"),
    "unix socket": attempt("import socket", "s = socket.socket(socket.AF_UNIX)", "s.connect('{unix}')"),
    "udp send": attempt("import socket", "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', {port}))"),
    # Other processes: signals, priorities, affinity, limits, tracing, environment.
    "kill the parent": attempt("import signal", "os.kill({pid}, signal.SIGUSR1)"),
    "kill every process": attempt("os.kill(-1, 0)"),
    "killpg the parent": attempt("os.killpg({pgid}, 10)"),
    "ctypes tgkill": LIBC + attempt("assert libc.tgkill({pid}, {pid}, 10) == 0, ctypes.get_errno()"),
    "renice the parent": attempt("os.setpriority(os.PRIO_PROCESS, {pid}, 19)"),
    "pin the parent": attempt("os.sched_setaffinity({pid}, {{0}})"),
    "prlimit the parent": attempt("import resource", "resource.prlimit({pid}, resource.RLIMIT_NOFILE, (3, 3))"),
    "ptrace the template": LIBC + attempt("assert libc.ptrace(16, 1, 0, 0) == 0, ctypes.get_errno()"),
    "read the parent's environ": attempt("open('/proc/{pid}/environ').read()"),
    "read the template's memory": attempt("open('/proc/1/mem', 'rb').read(1)"),
    "environment secrets": "import os\noutput = dict(os.environ)\n",
    # The boundary itself.
    "raise the memory limit": attempt("import resource", "resource.setrlimit(resource.RLIMIT_AS, (-1, -1))"),
    "undo PR_SET_PDEATHSIG": LIBC + attempt("assert libc.prctl(1, 0, 0, 0, 0) == 0, ctypes.get_errno()"),
    "unshare": LIBC + attempt("assert libc.unshare(0x10000000) == 0, ctypes.get_errno()"),
    "io_uring": LIBC + attempt("assert libc.syscall(425, 8, ctypes.create_string_buffer(120)) >= 0, ctypes.get_errno()"),
    "TIOCSTI": "import fcntl, termios\n" + attempt("fcntl.ioctl(0, termios.TIOCSTI, b'x')"),
    "mount": LIBC + attempt("assert libc.mount(b'none', b'/tmp', b'tmpfs', 0, None) == 0, ctypes.get_errno()"),
    # The reply pipe.
    "forge replies": ("for fd in range(3, 64):\n    try:\n        os.write(fd, b'{{\"status\": \"ok\", \"steps\": [], "
                      "\"output\": \"1\", \"error\": null}}\\n')\n    except OSError:\n        pass\noutput = 2\n"),
    "oversized reply": "for fd in range(3, 64):\n    try:\n        os.write(fd, b'x' * (9 << 20))\n    except OSError:\n        pass\n",
    "garbage reply": "for fd in range(3, 64):\n    try:\n        os.write(fd, b'{{not json\\n')\n    except OSError:\n        pass\noutput = 1\n",
    "close the pipe and hang": "os.closerange(3, 64)\noutput = sum(range(10 ** 12))\n",
    "ignore SIGALRM, loop in C": "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\noutput = sum(range(10 ** 12))\n",
    # Interpreter state that would survive into the next program of a shared worker.
    "decimal precision": "import decimal\ndecimal.getcontext().prec = 3\noutput = 1\n",
    "replace random.seed": "import random\nrandom.seed = lambda *a: None\nrandom.random = lambda: 0.5\noutput = 1\n",
    "replace json.dumps": "import json\njson.dumps = lambda *a, **k: 'forged'\noutput = 1\n",
    "replace a builtin": "import builtins\nbuiltins.len = lambda x: 42\noutput = 1\n",
    "poison sys.modules": "import sys, types\nsys.modules['math'] = types.SimpleNamespace(pi=3, floor=lambda x: 0)\noutput = 1\n",
    "self-rearming __del__": ("class A:\n    def __del__(self):\n        global keep\n        keep = A()\n"
                              "        import decimal\n        decimal.getcontext().prec = 2\nkeep = A()\noutput = 1\n"),
    "tamper with the tracer": ("import sys\n_f = sys._getframe()\nwhile 'encode_state' not in _f.f_globals:\n"
                               "    _f = _f.f_back\n_f.f_globals['encode_state'] = lambda m: '{{}}'\noutput = 1\n"),
    "stack overflow in C": "import sys\nsys.setrecursionlimit(10 ** 6)\ndef f(n):\n    return f(n + 1)\noutput = f(0)\n",
    # Resource bombs in C.
    "malloc bomb": LIBC + "p = libc.malloc(8 << 30)\nctypes.memset(p, 1, 8 << 30) if p else None\noutput = 1\n",
    "allocation bomb": "x = bytearray(10 ** 11)\noutput = 1\n",
}


@pytest.fixture(scope="module")
def fresh_benign():
  if not sandbox_available():
    pytest.skip("this machine cannot provide the OS boundary")
  return tracer.trace_programs([BENIGN])[0]


def sandbox_available() -> bool:
  try:
    tracer.trace_programs(["output = 1"], allow_weak_sandbox=False)
    return True
  except sandbox.SandboxUnavailable:
    return False


class World:
  """What an attack must not change, observed before and after it."""

  def __init__(self, tmp_path):
    self.dir = tmp_path
    self.mark = tmp_path / "mark"
    self.existing = tmp_path / "existing"
    self.existing.write_text("untouched")
    self.existing.chmod(0o644)
    self.listener = socket.create_server(("127.0.0.1", 0))
    self.listener.settimeout(0.05)
    self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    self.udp.bind(("127.0.0.1", self.listener.getsockname()[1]))
    self.udp.settimeout(0.05)
    self.unix_path = str(tmp_path / "unix.sock")
    self.unix = socket.socket(socket.AF_UNIX)
    self.unix.bind(self.unix_path)
    self.unix.listen()
    self.unix.settimeout(0.05)
    self.signals = []
    self.old_handler = signal.signal(signal.SIGUSR1, lambda *a: self.signals.append(a))
    self.before = self.observe()

  def values(self) -> dict:
    return {"mark": self.mark, "existing": self.existing, "port": self.listener.getsockname()[1],
            "unix": self.unix_path, "pid": os.getpid(), "pgid": os.getpgid(0)}

  def observe(self) -> dict:
    return {"files": sorted(p.name for p in self.dir.iterdir()), "existing": self.existing.read_text(),
            "mode": stat.S_IMODE(self.existing.stat().st_mode), "nice": os.getpriority(os.PRIO_PROCESS, 0),
            "affinity": os.sched_getaffinity(0), "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)}

  def assert_unchanged(self) -> None:
    assert self.observe() == self.before
    time.sleep(0.01)
    assert not self.signals, "a signal reached this process"
    for listener in (self.listener, self.unix):
      with pytest.raises((socket.timeout, BlockingIOError)):
        listener.accept()[0].close()
    with pytest.raises((socket.timeout, BlockingIOError)):
      self.udp.recv(10)

  def close(self) -> None:
    signal.signal(signal.SIGUSR1, self.old_handler)
    for s in (self.listener, self.udp, self.unix):
      s.close()


@pytest.fixture
def world(tmp_path):
  w = World(tmp_path)
  yield w
  w.close()


@pytest.mark.parametrize("name", list(ATTACKS))
def test_an_attack_changes_nothing_outside_and_the_next_program_starts_fresh(name, world, fresh_benign):
  source = HOOK_OFF + "import os\n" + ATTACKS[name].format(**world.values())
  attacked, after = tracer.trace_programs([source, BENIGN], FAST)
  world.assert_unchanged()
  assert after == fresh_benign
  if attacked.output and attacked.output.startswith('"'):
    assert attacked.output != '"done"', f"{name}: the OS let it through"
  if name == "environment secrets":
    assert attacked.output == '{"PYTHONHASHSEED": "0"}'


def test_the_attack_suite_is_large(fresh_benign):
  assert len(ATTACKS) >= 30


@pytest.mark.parametrize("name", ["forge replies", "oversized reply", "garbage reply"])
def test_a_forged_or_broken_reply_is_that_programs_crash_with_the_reason(name, world, fresh_benign):
  source = HOOK_OFF + "import os\n" + ATTACKS[name].format(**world.values())
  attacked, after = tracer.trace_programs([source, BENIGN], FAST)
  assert attacked.status == "crashed" and attacked.error.startswith("stopped: the program's process sent")
  assert after == fresh_benign


def test_a_child_that_stops_answering_is_killed_and_timed_out(fresh_benign, world):
  t0 = time.monotonic()
  attacked, after = tracer.trace_programs([HOOK_OFF + "import os\n" + ATTACKS["close the pipe and hang"], BENIGN],
                                          FAST)
  assert attacked.status == "timeout" and time.monotonic() - t0 < FAST.seconds + sandbox.GRACE_S + 1.5
  assert after == fresh_benign


def test_programs_see_no_network_and_no_process_outside_the_sandbox(fresh_benign):
  source = HOOK_OFF + ("import os\nprocs = [p for p in os.listdir('/proc') if p.isdigit()]\n"
                       "inside = all(b'--template' in open(f'/proc/{p}/cmdline', 'rb').read() for p in procs)\n"
                       "nets = [line.split(':')[0].strip() for line in open('/proc/net/dev').read().splitlines()[2:]]\n"
                       "output = [inside, '1' in procs, nets]\n")
  trace = tracer.trace_programs([source])[0]
  assert trace.output == '[true, true, ["lo"]]'
