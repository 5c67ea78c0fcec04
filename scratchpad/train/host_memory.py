"""Keep a CPU step's memory mapped from one step to the next (Linux, glibc).

XLA's CPU runtime allocates a program's temporary buffers afresh at every run, in one block.
glibc maps a block that large with mmap and unmaps it when it is freed, so at every step the
kernel maps it again and zero-fills it page by page: a fifth of the step on a 2-core machine
(benchmarks/NOTES.md, change 6).

`keep()` makes glibc keep freed memory for reuse instead: no mmap for large blocks, no trimming
of the heap. That governs glibc's main heap, which serves the main thread; a worker thread's
heap maps large blocks all the same. So JAX must also run CPU programs on the calling thread
rather than asynchronously on a worker, which on CPU costs nothing: the host has no other
device to overlap with, and tf.data prefetches in threads of its own.

The price: the process's heap never shrinks below its high-water mark, which a training or
evaluation process reaches within its first steps anyway. `SCRATCHPAD_HOST_MEMORY=default`
keeps glibc's and JAX's defaults.
"""

from __future__ import annotations

import ctypes
import os

import jax

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_MAX = -4
_NEVER = 2 ** 31 - 1  # mallopt takes an int

_kept = False  # whether keep() took effect in this process


def keep() -> bool:
  """Applies both settings; returns whether they hold.

  Call it before JAX starts its backends (the first computation or device query), as the
  command line and the benchmarks do: afterwards JAX's CPU dispatch can no longer change, and
  this returns what an earlier call did and changes nothing. False also where the C library is
  not glibc and where `SCRATCHPAD_HOST_MEMORY=default`."""
  global _kept
  if os.environ.get("SCRATCHPAD_HOST_MEMORY", "") == "default" or not _is_glibc() or _backends_started():
    return _kept
  jax.config.update("jax_cpu_enable_async_dispatch", False)
  libc = ctypes.CDLL(None)
  _kept = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _NEVER))
  return _kept


def _is_glibc() -> bool:
  try:
    return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
  except (ValueError, OSError, AttributeError):  # not a GNU system
    return False


def _backends_started() -> bool:
  from jax._src import xla_bridge  # no public API says whether the backends exist yet
  return getattr(xla_bridge, "backends_are_initialized", lambda: False)()
