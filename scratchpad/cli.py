"""The command line: `python -m scratchpad COMMAND [--config=FILE.py:ARGS] [--config.KEY=VALUE ...]`.

Each command has its own flags (`python -m scratchpad COMMAND --help`). This module
parses them and turns this project's own errors (`scratchpad.errors`) into one line
`error: ...` with exit status 2 (3 for a diverged run), before anything in the
workdir is written; any other exception keeps its traceback. `trace` runs on the
standard library alone; every other command imports JAX and TensorFlow at one
point, `_start_backends`, and runs from `scratchpad.commands`.

SIGTERM (preemption) saves the current step and exits 0 without evaluating or
starting another run; the same command resumes.
"""

from __future__ import annotations

import argparse
import os
import sys

from scratchpad import errors

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow is only the data pipeline here


class _Parser(argparse.ArgumentParser):
  def error(self, message):
    raise errors.InputError(message)


def _config_flag(p, required=True):
  p.add_argument("--config", required=required, help="FILE.py[:ARGS], e.g. configs/addition.py:scratchpad,tiny")


def _workdir_flag(p):
  p.add_argument("--workdir", required=True, help="where checkpoints, metrics and results live")


def _weak_sandbox_flag(p):
  p.add_argument("--allow_weak_sandbox", action="store_true",
                 help="where the OS cannot isolate traced programs (no user namespaces or libseccomp), "
                      "trace them anyway under the weaker guard, which every record names")


def _training_flags(p):
  _weak_sandbox_flag(p)
  p.add_argument("--distributed", action="store_true",
                 help="call jax.distributed.initialize() first (multi-host): on TPU, SLURM or MPI it finds "
                      "its peers; elsewhere give the three flags below")
  p.add_argument("--coordinator_address", help="--distributed: HOST:PORT of process 0")
  p.add_argument("--num_processes", type=int, help="--distributed: how many processes take part")
  p.add_argument("--process_id", type=int, help="--distributed: this process's index, 0 to num_processes-1")


def _train(p):
  _config_flag(p), _workdir_flag(p), _training_flags(p)
  p.add_argument("--fallback", action="store_true",
                 help="if the latest checkpoint is damaged, move it to WORKDIR/damaged_checkpoints "
                      "and resume from the step before it")


def _evaluate(p):
  _config_flag(p, required=False), _workdir_flag(p), _training_flags(p)


def _predict(p):
  _evaluate(p)
  inputs = p.add_mutually_exclusive_group(required=True)
  inputs.add_argument("--input", help="the input text, e.g. '2 9 + 5 7'")
  inputs.add_argument("--input_file", help="a file of inputs, one a line")
  p.add_argument("--max_new_tokens", type=int, default=1024, help="decoding limit")


def _compare(p):
  _config_flag(p), _workdir_flag(p), _training_flags(p)
  p.add_argument("--formats", default="direct,scratchpad", help="the formats to run")


def _trace(p):
  p.add_argument("program", nargs="?", help="the Python file to trace")
  _weak_sandbox_flag(p)


def _data(p):
  p.add_argument("--task", required=True, help="the task to describe, e.g. programs_scratchpad")
  _weak_sandbox_flag(p)


def _sweep(p):
  _config_flag(p), _workdir_flag(p), _training_flags(p)
  p.add_argument("--commands", action="store_true", help="print each run's own command line, run nothing")
  p.add_argument("--only", default="", help="the runs to run, by name (comma list)")


def _report(p):
  _workdir_flag(p)


def _sizes(p):
  p.add_argument("--compile", action="store_true", help="also compile each preset's training step")


def _compile(p):
  _config_flag(p)
  p.add_argument("--devices", type=int, default=0, help="devices to compile for (default: the topology's)")
  p.add_argument("--hbm_gib", type=float, default=16.0, help="memory per device (default 16: a TPU v5e)")
  p.add_argument("--topology", default="", help="a TPU slice, e.g. v5e:4x4 (needs libtpu: .[tpu])")


def _pause_study(p):
  _config_flag(p), _workdir_flag(p), _training_flags(p)
  p.add_argument("--tasks", default=None, help="fine-tuning tasks (default: direct_tasks.PAUSE_STUDY_TASKS)")
  p.add_argument("--seeds", type=int, default=5, help="fine-tuning seeds per variant and task")
  p.add_argument("--ablation_seeds", type=int, default=3, help="seeds per ablation setting")
  p.add_argument("--pause_counts", default="2,5,20,50",
                 help="M_ft = M_inf values of the pause-count ablation (besides 0 and 10)")
  p.add_argument("--pretrain_steps", type=int, default=0, help="pretraining steps (0: the config's)")
  p.add_argument("--finetune_steps", type=int, default=0, help="fine-tuning steps (0: the config's)")


# name -> (what it does, its flags); each runs as `commands.RUN[name]` (`trace` here).
COMMANDS = {
    "train": ("train (resuming from WORKDIR's latest checkpoint)", _train),
    "evaluate": ("evaluate WORKDIR's latest checkpoint: WORKDIR/results.json and a table", _evaluate),
    "predict": ("print the model's completion of --input, or of each line of --input_file as JSON lines",
                _predict),
    "compare": ("train and evaluate each format of an experiment in WORKDIR/FORMAT, then one table: "
                "the main job", _compare),
    "trace": ("print the execution trace of a Python program", _trace),
    "data": ("build a task's splits and print their sizes, longest examples and what was dropped", _data),
    "sweep": ("run a sweep file's runs in WORKDIR/NAME, skipping finished ones, then write the report",
              _sweep),
    "report": ("gather the results under WORKDIR (a sweep, a pause study) into WORKDIR/report.md", _report),
    "sizes": ("the model size presets: parameters, and with --compile a training step's memory", _sizes),
    "compile": ("will it fit: compile the config's train step for --devices=N or --topology and print "
                "per-device memory against --hbm_gib", _compile),
    "pause-study": ("the pause-token study: pretrainings, the four variants on --tasks, the ablations, "
                    "the tables", _pause_study),
}


def parser() -> argparse.ArgumentParser:
  p = _Parser(prog="python -m scratchpad", description=__doc__.split("\n\n")[0])
  sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
  for name, (summary, add_flags) in COMMANDS.items():
    add_flags(sub.add_parser(name, help=summary, description=summary))
  return p


def split_overrides(argv: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
  """Separates `--config.KEY=VALUE` overrides from the other arguments."""
  rest, overrides = [], []
  for arg in argv:
    if arg.startswith("--config."):
      key, eq, value = arg[len("--config."):].partition("=")
      if not eq:
        raise errors.InputError(f"override {arg!r} needs a value: --config.{key}=VALUE")
      overrides.append((key, value))
    else:
      rest.append(arg)
  return rest, overrides


def trace(args) -> None:
  """The standard library alone: no JAX, no TensorFlow."""
  from scratchpad.tracing import tracer
  if not args.program:
    raise errors.InputError("trace needs a Python file: python -m scratchpad trace FILE.py")
  if not os.path.isfile(args.program):
    raise errors.InputError(f"program file {args.program!r} does not exist")
  with open(args.program) as f:
    result = tracer.trace_program(f.read())
  if result.sandbox != "os":
    print(f"warning: traced under the {result.sandbox}", file=sys.stderr)
  print(tracer.format_trace(result))


def _import_tensorflow_quietly() -> None:
  """TensorFlow (under seqio) prints C++ start-up notes about missing CUDA to fd 2, past
  TF_CPP_MIN_LOG_LEVEL: they are silenced so an error stays one line. TensorFlow only
  feeds data here, so it is kept off the accelerators JAX uses."""
  saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
  os.dup2(devnull, 2)
  try:
    import tensorflow as tf
    tf.config.set_visible_devices([], "GPU")
  finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)


def _start_backends(args):
  """The one point where JAX and TensorFlow come in; returns `scratchpad.commands`."""
  if args.command == "compile" and not args.topology:
    if args.devices < 1:
      raise errors.InputError("compile needs --devices=N (or --topology=NAME)")
    # N host devices stand in for the accelerators; set before JAX starts its backends
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={args.devices}").strip()
  from absl import logging
  logging.set_verbosity(logging.ERROR)  # seqio's advice on caching is not for this scale
  from scratchpad.train import host_memory
  host_memory.keep()  # before JAX starts its backends
  _import_tensorflow_quietly()
  if getattr(args, "distributed", False):
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes (tests, laptops)
    jax.distributed.initialize(args.coordinator_address, args.num_processes, args.process_id)
  from scratchpad import commands
  return commands


def run(argv: list[str]) -> None:
  rest, overrides = split_overrides(argv)
  args = parser().parse_args(rest)
  if getattr(args, "allow_weak_sandbox", False):
    os.environ["SCRATCHPAD_ALLOW_WEAK_SANDBOX"] = "1"  # tracer.WEAK_SANDBOX_ENV, read where programs are traced
  if args.command == "trace":
    if overrides:
      raise errors.InputError("trace takes no --config overrides")
    trace(args)
    return
  commands = _start_backends(args)
  commands.RUN[args.command](args, overrides)


def main(argv=None) -> int:
  from scratchpad.tracing.sandbox import SandboxUnavailable  # the standard library alone
  try:
    run(sys.argv[1:] if argv is None else argv)
  except errors.Preempted as e:
    print(f"\n{e}", flush=True)  # saved: not an error; rerunning the command resumes
    return 0
  except (errors.InputError, errors.Diverged, SandboxUnavailable) as e:
    message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    print(f"error: {message}", file=sys.stderr)
    return 3 if isinstance(e, errors.Diverged) else 2
  return 0
