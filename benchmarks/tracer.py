"""Tracer throughput: programs traced per second, each in its own sandboxed process.

    python -m benchmarks.tracer                          # this checkout's tracer
    git show REV:scratchpad/tracing/tracer.py > /tmp/old_tracer.py
    python -m benchmarks.tracer --baseline=/tmp/old_tracer.py   # and another's, in the same run

The baseline is a tracer.py of another revision, loaded by path (before the OS sandbox it was
one self-contained file; its shared worker ran every program in one process). Both trace the
same programs in alternating rounds; the table gives the median rate of the rounds. Only the
standard library and `scratchpad.tracing.tracer`: no JAX.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import sys
import time

from scratchpad import host
from scratchpad.tracing import tracer

PROGRAMS = {
    "4-line straight-line": "a = 3\nb = a * 2\nc = a + b\noutput = c\n",
    "function with a loop": ("def f(n):\n    total = 0\n    for i in range(n):\n        total += i\n"
                             "    return total\noutput = f(4)\n"),
}


def load_tracer(path: str):
  spec = importlib.util.spec_from_file_location("baseline_tracer", path)
  module = importlib.util.module_from_spec(spec)
  sys.modules["baseline_tracer"] = module
  spec.loader.exec_module(module)
  return module


def rate(module, source: str, count: int) -> float:
  sources = [source] * count
  start = time.perf_counter()
  traces = module.trace_programs(sources)
  seconds = time.perf_counter() - start
  assert all(t.status == "ok" for t in traces), traces[0]
  return count / seconds


def fork_rate(count: int = 500) -> float:
  """This process forked, its child exiting at once and reaped: the host's ceiling for any
  fork-per-program sandbox (VMs differ by 2x in it)."""
  start = time.perf_counter()
  for _ in range(count):
    pid = os.fork()
    if pid == 0:
      os._exit(0)
    os.waitpid(pid, 0)
  return count / (time.perf_counter() - start)


def cpu_line() -> str:
  return f"{host.cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--programs", type=int, default=2000, help="programs per round")
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument("--baseline", help="a tracer.py of another revision, to time in the same run")
  args = p.parse_args(argv)
  tracers = {"this tracer": tracer}
  if args.baseline:
    tracers[f"baseline ({args.baseline})"] = load_tracer(args.baseline)
  sandbox = tracer.trace_programs(["output = 1"])[0].sandbox  # also starts the template: not timed
  for module in tracers.values():
    module.trace_programs(["output = 1"])
  rows = []
  for kind, source in PROGRAMS.items():
    rates = {name: [] for name in tracers}
    for _ in range(args.rounds):
      for name, module in tracers.items():
        rates[name].append(rate(module, source, args.programs))
    for name in tracers:
      rows.append((kind, name, statistics.median(rates[name]), min(rates[name]), max(rates[name])))
  print(f"Tracer throughput, {args.programs} programs x {args.rounds} rounds; {cpu_line()}; "
        f"this tracer's guard: {sandbox}; a bare fork, exit and wait of this process: "
        f"{fork_rate():,.0f}/s\n")
  print("| programs | tracer | programs/s (median) | range |\n|---|---|---|---|")
  for kind, name, median, low, high in rows:
    print(f"| {kind} | {name} | {median:,.0f} | {low:,.0f}-{high:,.0f} |")


if __name__ == "__main__":
  main()
