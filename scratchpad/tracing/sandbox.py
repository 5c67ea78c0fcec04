"""Untrusted Python behind an operating-system boundary: one throwaway process per program.

The parent (`ForkServer`) starts a template process once: a fresh interpreter
(`-S -P -B`, an environment of PYTHONHASHSEED alone, cwd /) that enters new
user, network, mount, PID, IPC and UTS namespaces, mounts its own /proc and
remounts every file system read-only, imports what programs use, and then only
forks. Each program runs in a child forked from that pristine template and
thrown away after it, so nothing a program does reaches the next one. Before the
program runs, the child

  * starts a session of its own and dies with the template (PR_SET_PDEATHSIG);
  * is not dumpable (no other program reads its memory through /proc);
  * keeps no file descriptor but /dev/null and its reply pipe;
  * is limited by rlimits: address space, CPU seconds, no file writes (FSIZE 0),
    no processes (NPROC 0), few descriptors, no core dumps or locked memory;
  * loads a seccomp filter (libseccomp builds it once, in the template) that
    refuses, with EPERM, creating processes and running executables (fork,
    clone, execve ...), opening anything for writing or creating files, devices,
    directories and links, sockets, signals (kill, tgkill ...), changing
    priorities, affinities and other processes' rlimits, ptrace and reading
    other processes' memory, namespaces and mounts, io_uring, bpf, keys, prctl,
    and injecting terminal input (TIOCSTI).

In its namespaces the child sees no network interface but a loopback that is
down, and no process but the template and its children. Reading world-readable files
stays possible at this level (imports need the standard library): the tracer's
audit hook refuses it, for a readable record.

The protocol: length-prefixed frames. The parent writes `ID LENGTH\n` and the
request's JSON to the template, with a deadline; the template reads a request
while fewer than CONCURRENT children run, forks its child (which inherits the
request: nothing is ever written to a child), reads the child's reply pipe until
it closes, the wall-time deadline (`seconds` + GRACE_S) passes or REPLY_BYTES
overflow, kills the child, and answers `ID EXIT TIMED_OUT OVERFLOW LENGTH\n` and
the reply's bytes. The parent matches answers to its requests by id, and
`parse_reply` says whether a reply is exactly one JSON object; what is in it is
the caller's to check.

Where the machine lacks a mechanism (no user namespaces, no libseccomp, not
Linux) the template says which, and `ForkServer` refuses to start with a one-line
`SandboxUnavailable`, unless `allow_weak` accepts the weaker guard: programs then
still run in throwaway forks, with what the machine has, and `Outcome.sandbox`
names what was missing, for every record to carry.

The caller's script runs the template (`serve`), loading this file by path: standard library only.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import gc
import json
import math
import os
import resource
import select
import signal
import sys
import time
from collections.abc import Sequence

GRACE_S = 0.5  # the template kills a child this long after its time limit
START_S = 30.0  # the template's start-up (namespaces, imports)
REPLY_BYTES = 8 << 20  # a longer reply is cut and the program's record is `crashed`
SECCOMP_LIBRARY = "libseccomp.so.2"
FULL = "os"  # Outcome.sandbox when every mechanism is in place
EXIT_RUN_FAILED = 6  # a child's exit status when `run` itself raised
HEADROOM_BYTES = 16 << 20  # address space a child out of memory gets back, to write its report
CONCURRENT = max(1, min(4, os.cpu_count() or 1))  # children a template runs at once
_NOFILE = 64  # descriptors a child may hold (imports open files one at a time)

# Syscalls a child may not make at all (names missing on an architecture are skipped).
DENIED_SYSCALLS = (
    # processes and executables
    "fork", "vfork", "clone", "clone3", "execve", "execveat",
    # files, directories, links and devices
    "creat", "openat2", "mknod", "mknodat", "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat",
    "rename", "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat", "truncate",
    "ftruncate", "fallocate", "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown",
    "fchownat", "utime", "utimes", "utimensat", "futimesat", "setxattr", "lsetxattr", "fsetxattr",
    "removexattr", "lremovexattr", "fremovexattr", "memfd_create", "memfd_secret",
    "name_to_handle_at", "open_by_handle_at",
    # network
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4",
    # other processes: signals, priorities, tracing, their memory
    "kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_open", "pidfd_send_signal",
    "pidfd_getfd", "setpriority", "sched_setscheduler", "sched_setparam", "sched_setattr",
    "sched_setaffinity", "ioprio_set", "ptrace", "process_vm_readv",
    "process_vm_writev", "kcmp", "process_madvise", "migrate_pages", "move_pages",
    # the boundary itself: sessions, namespaces, mounts, credentials, prctl
    "setsid", "setpgid", "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "mount_setattr",
    "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "setuid", "setgid",
    "setreuid", "setregid", "setresuid", "setresgid", "setfsuid", "setfsgid", "setgroups", "capset",
    "prctl", "personality",
    # kernel interfaces a program has no use for
    "io_uring_setup", "io_uring_enter", "io_uring_register", "bpf", "perf_event_open", "userfaultfd",
    "keyctl", "add_key", "request_key", "init_module", "finit_module", "delete_module", "kexec_load",
    "kexec_file_load", "reboot", "swapon", "swapoff", "acct", "quotactl", "syslog", "sethostname",
    "setdomainname", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "iopl", "ioperm",
    "vhangup", "fanotify_init", "lookup_dcookie", "mbind", "set_mempolicy",
)
# open/openat with any of these flags: writing, creating, truncating (O_TMPFILE's own bit too).
_WRITE_OPEN_FLAGS = (os.O_WRONLY, os.O_RDWR, os.O_CREAT, os.O_TRUNC, os.O_APPEND, 0o20000000)
_TIOCSTI, _TIOCLINUX = 0x5412, 0x541C  # ioctls that type into a terminal

_CLONE_NEWNS, _CLONE_NEWUTS, _CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
_CLONE_NEWUSER, _CLONE_NEWPID, _CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 0x4000, 1 << 18
_MOUNT_FLAGS = {"nosuid": _MS_NOSUID, "nodev": _MS_NODEV, "noexec": _MS_NOEXEC, "noatime": 1024,
                "nodiratime": 2048, "relatime": 1 << 21}  # kept on remount: a namespace may not clear them
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE, _PR_SET_SECCOMP, _PR_SET_NO_NEW_PRIVS = 1, 4, 22, 38
_SECCOMP_MODE_FILTER = 2
_SCMP_ACT_ALLOW, _SCMP_ACT_ERRNO = 0x7FFF0000, 0x00050000
_SCMP_CMP_NE, _SCMP_CMP_MASKED_EQ = 1, 7


class SandboxUnavailable(RuntimeError):
  """The machine cannot provide the boundary, and the weaker guard was not accepted."""


# The template: namespaces, the seccomp filter, and the fork loop.

def _libc():
  return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
  if result != 0:
    code = ctypes.get_errno()
    raise OSError(code, f"{what}: {os.strerror(code)}")


def _die_with_parent(libc) -> None:
  _check(libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")


def _read_only_mounts(libc) -> None:
  """Remounts every mount of this (new, private) namespace read-only, keeping its locked flags."""
  with open("/proc/self/mountinfo") as f:
    mounts = [line.split() for line in f]
  for fields in mounts:
    point = fields[4].encode().decode("unicode_escape").encode()  # mountinfo escapes spaces as \040
    flags = _MS_BIND | _MS_REMOUNT | _MS_RDONLY
    for option in fields[5].split(","):
      flags |= _MOUNT_FLAGS.get(option, 0)
    libc.mount(None, point, None, flags, None)  # a mount that refuses stays writable: seccomp still holds


def _enter_namespaces(libc) -> None:
  """New namespaces for the template and its children; returns in the PID namespace's first
  process (this process waits for it and exits with it)."""
  _check(libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET | _CLONE_NEWNS | _CLONE_NEWPID | _CLONE_NEWIPC
                      | _CLONE_NEWUTS), "unshare")
  pid = os.fork()  # the first child of a new PID namespace is its init
  if pid:
    _, status = os.waitpid(pid, 0)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
  _die_with_parent(libc)
  _check(libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "mount(MS_PRIVATE)")
  _check(libc.mount(b"proc", b"/proc", b"proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None), "mount(/proc)")
  _read_only_mounts(libc)
  # Not dumpable, nor then its children: no program reads another's memory through /proc.
  _check(libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(PR_SET_DUMPABLE)")


class _Arg(ctypes.Structure):
  _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
              ("datum_b", ctypes.c_uint64)]


def seccomp_filter(library: str = SECCOMP_LIBRARY) -> bytes:
  """The child's seccomp program (classic BPF) for this machine's architecture, built by libseccomp."""
  try:
    lib = ctypes.CDLL(library, use_errno=True)
  except OSError:
    raise OSError(errno.ENOENT, f"libseccomp ({library}) not found: install libseccomp2") from None
  lib.seccomp_init.restype = ctypes.c_void_p
  lib.seccomp_init.argtypes = [ctypes.c_uint32]
  lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
  lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                         ctypes.POINTER(_Arg)]
  lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
  lib.seccomp_release.argtypes = [ctypes.c_void_p]
  ctx = lib.seccomp_init(_SCMP_ACT_ALLOW)
  if not ctx:
    raise OSError(errno.ENOMEM, "seccomp_init failed")
  deny = _SCMP_ACT_ERRNO | errno.EPERM

  def rule(name: str, *args: _Arg) -> None:
    number = lib.seccomp_syscall_resolve_name(name.encode())
    if number == -1:  # not a syscall of this architecture
      return
    result = lib.seccomp_rule_add_array(ctx, deny, number, len(args), (_Arg * len(args))(*args) if args else None)
    if result != 0:
      raise OSError(-result, f"seccomp_rule_add({name}) failed")

  try:
    for name in DENIED_SYSCALLS:
      rule(name)
    for name, flags_arg in (("open", 1), ("openat", 2)):
      for bit in _WRITE_OPEN_FLAGS:
        rule(name, _Arg(flags_arg, _SCMP_CMP_MASKED_EQ, bit, bit))
    for request in (_TIOCSTI, _TIOCLINUX):
      rule("ioctl", _Arg(1, _SCMP_CMP_MASKED_EQ, 0xFFFFFFFF, request))
    rule("prlimit64", _Arg(0, _SCMP_CMP_NE, 0, 0))  # its own limits only (a hard one it cannot raise)
    read_fd, write_fd = os.pipe()
    try:
      if lib.seccomp_export_bpf(ctx, write_fd) != 0:
        raise OSError(errno.EINVAL, "seccomp_export_bpf failed")
      os.close(write_fd)
      write_fd = -1
      program = b""
      while chunk := os.read(read_fd, 1 << 16):
        program += chunk
    finally:
      os.close(read_fd)
      if write_fd >= 0:
        os.close(write_fd)
  finally:
    lib.seccomp_release(ctx)
  return program


class _SockFprog(ctypes.Structure):
  _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _virtual_memory_bytes() -> int:
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmSize:"):
        return int(line.split()[1]) * 1024
  return 0


@dataclasses.dataclass
class _Template:
  """What every child inherits: the boundary's pieces, built once."""
  libc: object
  seccomp: object  # a _SockFprog, or None without libseccomp
  seccomp_buffer: object
  devnull: int
  base_bytes: int  # the template's address space: a child's memory limit adds to it


def _close_all_but(*keep: int) -> None:
  low = 3
  for fd in sorted(keep):
    os.closerange(low, fd)
    low = fd + 1
  os.closerange(low, 1 << 16)


def _child(template: _Template, request: dict, reply_fd: int, run) -> None:
  """In a forked child (its program inherited in memory): close the boundary around this
  process, run the program, reply, exit."""
  global _REPLY_FD
  _REPLY_FD = reply_fd
  try:
    os.setsid()
    if template.libc is not None:
      _die_with_parent(template.libc)
    for fd in (0, 1, 2):
      os.dup2(template.devnull, fd)
    _close_all_but(reply_fd)
    _limit(request, template.base_bytes)
    if template.seccomp is not None:
      _check(template.libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
      _check(template.libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(template.seccomp), 0, 0),
             "prctl(PR_SET_SECCOMP)")
  except BaseException as e:
    _refuse(e)
  try:
    message = run(request)  # `run` replies and exits itself when it stops a program
  except BaseException:
    os._exit(EXIT_RUN_FAILED)
  reply(message)
  os._exit(0)  # (`reply` closed the pipe: the template reads on while this process is torn down)


def _refuse(e: BaseException) -> None:
  """The boundary did not close: say so, and never run the program."""
  try:
    reply({"sandbox_error": f"{type(e).__name__}: {e}"})
  finally:
    os._exit(5)


# Limits every child has; `_limit` adds its program's time and memory.
_FIXED_LIMITS = {resource.RLIMIT_FSIZE: (0, 0), resource.RLIMIT_NPROC: (0, 0), resource.RLIMIT_NOFILE: (_NOFILE, _NOFILE),
                 resource.RLIMIT_CORE: (0, 0), resource.RLIMIT_MEMLOCK: (0, 0), resource.RLIMIT_MSGQUEUE: (0, 0)}


def _limit(request: dict, base_bytes: int) -> None:
  """No file writes or processes, few descriptors; the program's CPU time and address space."""
  for which, value in _FIXED_LIMITS.items():
    resource.setrlimit(which, value)
  seconds = math.ceil(request.get("seconds", 2.0))
  resource.setrlimit(resource.RLIMIT_CPU, (seconds + 1, seconds + 2))
  memory_mb = request.get("memory_mb", 0)
  if memory_mb > 0 and base_bytes:
    limit = base_bytes + (memory_mb << 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit + HEADROOM_BYTES))


def release_headroom() -> None:
  """In a child out of memory: raises its address-space limit by HEADROOM_BYTES, so that its
  report can be written (the soft limit up to the hard one, which it cannot pass)."""
  _, hard = resource.getrlimit(resource.RLIMIT_AS)
  if hard != resource.RLIM_INFINITY:
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))


_REPLY_FD = -1


def reply(message: dict) -> None:
  """In a child: writes its one reply (a JSON line, ASCII) to the template, and closes the pipe."""
  data = memoryview((json.dumps(message) + "\n").encode())
  while data:
    data = data[os.write(_REPLY_FD, data):]
  os.close(_REPLY_FD)


@dataclasses.dataclass
class _Child:
  """A child running one program, and what it has written so far."""
  pid: int
  reply_fd: int
  request_id: int
  deadline: float
  reply: bytearray = dataclasses.field(default_factory=bytearray)

  @classmethod
  def fork(cls, template: _Template, run, request_id: int, request: dict) -> "_Child":
    """Forks the child for `request`, which it inherits; its wall-time deadline starts now."""
    reply_read, reply_write = os.pipe()
    pid = os.fork()
    if pid == 0:
      _child(template, request, reply_write, run)
    os.close(reply_write)
    os.set_blocking(reply_read, False)
    return cls(pid, reply_read, request_id, time.monotonic() + request.get("seconds", 2.0) + GRACE_S)

  def read(self) -> bool:
    """Takes what the child wrote; True when its reply is over (the pipe closed, or too long)."""
    try:
      chunk = os.read(self.reply_fd, 1 << 16)
    except BlockingIOError:
      return False
    self.reply += chunk
    return not chunk or len(self.reply) > REPLY_BYTES

  def kill(self) -> None:
    for kill in (os.killpg, os.kill):  # its group, should it have made one; it cannot fork
      try:
        kill(self.pid, signal.SIGKILL)
      except (ProcessLookupError, PermissionError):
        pass

  def exit_code(self, block: bool) -> int | None:
    pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
    return os.waitstatus_to_exitcode(status) if pid else None

  def answer(self, timed_out: bool, code: int | None) -> bytes:
    """The frame for the parent: `ID EXIT TIMED_OUT OVERFLOW LENGTH\n` and the reply's bytes."""
    reply = bytes(self.reply[:REPLY_BYTES + 1])
    exit_code = "-" if code is None else str(code)
    return (f"{self.request_id} {exit_code} {int(timed_out)} {int(len(self.reply) > REPLY_BYTES)} "
            f"{len(reply)}\n").encode() + reply


def _write_all(fd: int, data: bytes, deadline: float) -> bool:
  """Writes `data` to a pipe before `deadline`; False when the reader does not take it in time."""
  os.set_blocking(fd, False)
  poller = select.poll()
  poller.register(fd, select.POLLOUT)
  view = memoryview(data)
  while view:
    remaining = deadline - time.monotonic()
    if remaining <= 0 or not poller.poll(remaining * 1000):
      return False
    try:
      view = view[os.write(fd, view):]
    except BlockingIOError:
      continue
    except BrokenPipeError:
      return False
  return True


def serve(setup, run, seccomp_library: str = SECCOMP_LIBRARY) -> None:
  """The template's main loop: `setup()` once, then one forked child a request, running `run(request)`.

  Requests come as JSON lines on stdin, answers go to stdout."""
  requests, answers = os.dup(0), os.dup(1)
  missing, libc = [], None
  if not sys.platform.startswith("linux"):
    missing.append(f"namespaces and seccomp (Linux only; this is {sys.platform})")
  else:
    libc = _libc()
    try:
      _die_with_parent(libc)
      _enter_namespaces(libc)
    except OSError as e:
      missing.append(f"namespaces ({e.strerror}; user namespaces may be switched off: "
                     "sysctl kernel.unprivileged_userns_clone / user.max_user_namespaces)")
  devnull = os.open(os.devnull, os.O_RDWR)
  for fd in (0, 1, 2):
    os.dup2(devnull, fd)
  seccomp = buffer = None
  if libc is not None:
    try:
      program = seccomp_filter(seccomp_library)
      buffer = ctypes.create_string_buffer(program, len(program))
      seccomp = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    except OSError as e:
      missing.append(f"seccomp ({e.strerror})")
  for name in [name for name in os.environ if name != "PYTHONHASHSEED"]:
    del os.environ[name]  # (the interpreter's own, such as LC_CTYPE from locale coercion)
  setup()
  template = _Template(libc, seccomp, buffer, devnull, _virtual_memory_bytes())
  gc.collect()
  gc.freeze()  # children share the template's objects without copying their pages

  def answer(frame: bytes) -> None:
    data = memoryview(frame)
    while data:
      data = data[os.write(answers, data):]

  answer((json.dumps({"ready": True, "missing": missing}) + "\n").encode())
  _serve_requests(requests, answer, lambda request_id, request: _Child.fork(template, run, request_id, request))
  os._exit(0)


def _serve_requests(requests_fd: int, answer, fork) -> None:
  """Runs up to CONCURRENT children at once: reads a request while a slot is free and forks its
  child, and answers for each child as it ends: its reply over
  (it is killed, and reaped later: its exit says nothing more), its pipe closed without a reply
  (its exit says why), or its deadline past (killed)."""
  unreaped, pending, more = [], b"", True
  running: dict[int, _Child] = {}  # reply pipe -> child
  silent: list[_Child] = []  # closed their pipe without a reply: waited for until their deadline
  while more or running or silent:
    while len(running) + len(silent) < CONCURRENT and (frame := _take_frame(pending)) is not None:
      (request_id,), request, pending = frame
      child = fork(int(request_id), json.loads(request))
      running[child.reply_fd] = child
    poller = select.poll()
    if more and len(running) + len(silent) < CONCURRENT:
      poller.register(requests_fd, select.POLLIN)
    for fd in running:
      poller.register(fd, select.POLLIN)
    now = time.monotonic()
    wait_s = min([c.deadline for c in (*running.values(), *silent)] + [now + 60]) - now
    for fd, _ in poller.poll(max(min(wait_s, 0.005 if silent else wait_s), 0) * 1000):
      if fd == requests_fd:
        chunk = os.read(requests_fd, 1 << 20)
        more, pending = bool(chunk), pending + chunk
      elif running[fd].read():
        child = running.pop(fd)
        os.close(fd)
        if child.reply:
          child.kill()
          unreaped.append(child)
          answer(child.answer(False, None))
        else:
          silent.append(child)
    now = time.monotonic()
    for child in list(silent):
      code = child.exit_code(block=False)
      if code is None and child.deadline <= now:
        child.kill()
        code = child.exit_code(block=True)
        answer(child.answer(True, code))
        silent.remove(child)
      elif code is not None:
        answer(child.answer(False, code))
        silent.remove(child)
    for fd in [fd for fd, c in running.items() if c.deadline <= now]:
      child = running.pop(fd)
      os.close(fd)
      child.kill()
      answer(child.answer(True, child.exit_code(block=True)))
    unreaped[:] = [c for c in unreaped if c.exit_code(block=False) is None]


def _take_frame(buffer: bytes):
  """((header fields but the length), body, rest) of the first whole `FIELDS... LENGTH\n BODY`
  frame in `buffer`, or None while it is incomplete."""
  header, newline, rest = buffer.partition(b"\n")
  if not newline:
    return None
  *fields, length = header.split()
  if len(rest) < int(length):
    return None
  return fields, rest[:int(length)], rest[int(length):]


# The parent: one template process, restarted when it fails.

@dataclasses.dataclass(frozen=True)
class Outcome:
  """What became of one program: its reply (None when there was none, or it was not one JSON
  object: `problem` says why), how its process ended, and under which guard it ran."""
  message: dict | None
  problem: str | None
  exit: int | None  # the exit status, or -signal
  timed_out: bool
  sandbox: str


class ForkServer:
  """A started template (`argv`: its script and arguments, the last the libseccomp it loads);
  `run_all(requests)` runs programs, each in a fresh child of it."""

  def __init__(self, argv: list[str], allow_weak: bool):
    self.owner = os.getpid()
    self.seccomp_library = argv[-1]
    self.next_id = 0
    import subprocess  # here: the template, which imports this file too, never needs it
    self.process = subprocess.Popen(
        [sys.executable, "-S", "-P", "-B", *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, env={"PYTHONHASHSEED": "0"}, cwd="/", start_new_session=True)
    self.buffer = b""
    try:
      line, = self._read(time.monotonic() + START_S, _take_line) or (None,)
      ready = json.loads(line) if line is not None else None
    except (EOFError, ValueError):
      ready = None
    if not ready or not ready.get("ready"):
      self.close()
      raise RuntimeError(f"the sandbox's template process did not start ({sys.executable} {' '.join(argv)})")
    missing = ready.get("missing") or []
    if missing and not allow_weak:
      self.close()
      raise SandboxUnavailable(f"cannot isolate untrusted programs here: no {'; no '.join(missing)}. Pass "
                               "--allow_weak_sandbox (or set SCRATCHPAD_ALLOW_WEAK_SANDBOX=1) to accept "
                               "the weaker guard, which every record then names")
    self.sandbox = FULL if not missing else "weak: no " + "; no ".join(missing)

  def usable(self) -> bool:
    return self.owner == os.getpid() and self.process.poll() is None

  def _read(self, deadline: float, complete):
    """The template's next message (`complete(buffer)` says when one is whole, and splits it
    off); None at the deadline; EOFError when it is gone."""
    fd = self.process.stdout.fileno()
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while (message := complete(self.buffer)) is None:
      remaining = deadline - time.monotonic()
      if remaining <= 0 or not poller.poll(remaining * 1000):
        return None
      chunk = os.read(fd, 1 << 20)
      if not chunk:
        raise EOFError
      self.buffer += chunk
    *message, self.buffer = message
    return message

  def run_all(self, requests: Sequence[dict]) -> list[Outcome | None]:
    """Runs the programs, CONCURRENT at a time, each in a fresh child; their outcomes in order.

    A template that fails or stops answering is killed: the programs it held get an outcome
    that says so, and those it never got are left None, for a fresh template."""
    outcomes: list[Outcome | None] = [None] * len(requests)
    waiting: dict[int, int] = {}  # request id -> index
    sent = 0
    while sent < len(requests) or waiting:
      while sent < len(requests) and len(waiting) <= CONCURRENT:  # one more than runs: no slot idles
        self.next_id += 1
        body = (json.dumps(requests[sent]) + "\n").encode()
        frame = f"{self.next_id} {len(body)}\n".encode() + body
        deadline = time.monotonic() + 5.0  # the template reads as soon as a child slot is free
        if not _write_all(self.process.stdin.fileno(), frame, deadline):
          return self._fail(outcomes, waiting, "the sandbox's template did not take the program in time")
        waiting[self.next_id] = sent
        sent += 1
      longest = max(requests[i].get("seconds", 2.0) for i in waiting.values())
      try:
        answer = self._read(time.monotonic() + longest + GRACE_S + 5.0, _take_frame)  # its own fork and reap
        (request_id, code, timed_out, overflow), reply = answer if answer else ((None,) * 4, b"")
      except (EOFError, ValueError):
        return self._fail(outcomes, waiting, "the sandbox's template process died")
      if answer is None:
        return self._fail(outcomes, waiting, "the sandbox's template stopped answering")
      if int(request_id) not in waiting:
        return self._fail(outcomes, waiting, f"the sandbox's template answered a request ({request_id}) "
                                             "it was not running")
      message, problem = parse_reply(reply, overflow == b"1")
      if message is not None and "sandbox_error" in message:
        message, problem = None, f"the sandbox could not be closed around the program: {message['sandbox_error']}"
      outcomes[waiting.pop(int(request_id))] = Outcome(message, problem, None if code == b"-" else int(code),
                                                       timed_out == b"1", self.sandbox)
    return outcomes

  def _fail(self, outcomes: list, waiting: dict, problem: str) -> list:
    self.close()
    for index in waiting.values():
      outcomes[index] = Outcome(None, problem, None, False, self.sandbox)
    return outcomes

  def close(self) -> None:
    if self.owner == os.getpid():
      try:
        os.killpg(self.process.pid, signal.SIGKILL)  # the template; its children die with it
      except (ProcessLookupError, PermissionError):
        pass
    self.process.wait()
    for stream in (self.process.stdin, self.process.stdout):
      try:
        stream.close()
      except OSError:
        pass


def _take_line(buffer: bytes):
  line, newline, rest = buffer.partition(b"\n")
  return (line, rest) if newline else None


def parse_reply(raw: bytes, overflow: bool) -> tuple[dict | None, str | None]:
  """The child's reply as one JSON object, or None and what is wrong with it."""
  if overflow:
    return None, f"the program's process sent a reply longer than {REPLY_BYTES} bytes"
  if not raw:
    return None, None  # no reply: how the process ended says why
  lines = raw.split(b"\n")
  if lines[-1]:
    return None, "the program's process sent a reply that does not end its line"
  if len(lines) > 2:
    return None, f"the program's process sent {len(lines) - 1} replies, not one"
  try:
    message = json.loads(lines[0])
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    return None, f"the program's process sent a reply that is not JSON ({e})"
  if not isinstance(message, dict):
    return None, "the program's process sent a reply that is not a JSON object"
  return message, None
