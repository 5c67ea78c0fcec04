"""`python -m scratchpad COMMAND --config=FILE.py:ARGS [--config.KEY=VALUE ...] --workdir=DIR`.

Commands:
  train     train (resuming from WORKDIR's latest checkpoint)
  evaluate  evaluate WORKDIR's latest checkpoint: WORKDIR/results.json and a table
  predict   print the model's completion of --input, or of each line of --input_file
            as JSON lines (input, prediction, answer)
  compare   train and evaluate each format of an experiment (default: direct and
            scratchpad) in WORKDIR/FORMAT, then print one table: the main job
  trace     print the execution trace of a Python program: `trace FILE.py`
  data      build a task's splits and print their sizes, longest examples and
            what was dropped: `data --task=programs_scratchpad`
  sweep     run a sweep file's runs (sizes x variants x seeds x tasks) one after the
            other in WORKDIR/NAME, skipping finished ones, then write the report;
            `--commands` prints each run's own command line instead (pods, clusters),
            `--only=NAME,...` runs some of them
  report    gather the results.json files under WORKDIR (a sweep, a pause study)
            into WORKDIR/report.md with tables and PNG plots
  sizes     the model size presets: parameters, and with --compile the memory
            of a compiled training step on this machine
  compile   will it fit: compile the config's train step ahead of time for
            --devices=N (simulated host devices, or --topology=v5e:4x4 with libtpu)
            and print per-device memory, FLOPs and tokens per step against --hbm_gib
  pause-study
            the pause-token study: pretrain a standard and a pause model, fine-tune
            the four variants on --tasks with --seeds seeds each, run the ablations,
            print the tables (WORKDIR/study.md, WORKDIR/study.json):
            `pause-study --config=configs/pause.py:tiny --workdir=DIR`

Every bad input ends in one line `error: ...` and exit status 2, before anything
in the workdir is written. SIGTERM (preemption) saves the current step and exits 0
without evaluating or starting another run; the same command resumes. A run whose
loss or gradient turns NaN or infinite stops with `error: training diverged at step
N ...` and exit status 3, without saving.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow is only the data pipeline here


class UsageError(ValueError):
  pass


class _Parser(argparse.ArgumentParser):
  def error(self, message):
    raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
  p = _Parser(prog="python -m scratchpad", description=__doc__.split("\n\n")[0],
              formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
  p.add_argument("command", choices=("train", "evaluate", "predict", "compare", "trace", "data", "sweep",
                                     "report", "sizes", "pause-study", "compile"))
  p.add_argument("program", nargs="?", help="trace: the Python file to trace")
  p.add_argument("--config", help="FILE.py[:ARGS], e.g. configs/addition.py:scratchpad,tiny")
  p.add_argument("--workdir", help="where checkpoints, metrics and results live")
  p.add_argument("--task", help="data: the task to describe")
  p.add_argument("--input", help="predict: the input text, e.g. '2 9 + 5 7'")
  p.add_argument("--input_file", help="predict: a file of inputs, one a line")
  p.add_argument("--formats", default="direct,scratchpad", help="compare: the formats to run")
  p.add_argument("--max_new_tokens", type=int, default=1024, help="predict: decoding limit")
  p.add_argument("--tasks", default=None, help="pause-study: fine-tuning tasks (default: direct_tasks.PAUSE_STUDY_TASKS)")
  p.add_argument("--seeds", type=int, default=5, help="pause-study: fine-tuning seeds per variant and task")
  p.add_argument("--ablation_seeds", type=int, default=3, help="pause-study: seeds per ablation setting")
  p.add_argument("--pause_counts", default="2,5,20,50",
                 help="pause-study: M_ft = M_inf values of the pause-count ablation (besides 0 and 10)")
  p.add_argument("--pretrain_steps", type=int, default=0, help="pause-study: pretraining steps (0: config's)")
  p.add_argument("--finetune_steps", type=int, default=0, help="pause-study: fine-tuning steps (0: config's)")
  p.add_argument("--commands", action="store_true", help="sweep: print each run's own command line, run nothing")
  p.add_argument("--only", default="", help="sweep: the runs to run, by name (comma list)")
  p.add_argument("--compile", action="store_true", help="sizes: also compile each preset's training step")
  p.add_argument("--devices", type=int, default=0, help="compile: devices to compile for (default: the topology's)")
  p.add_argument("--hbm_gib", type=float, default=16.0, help="compile: memory per device (default 16: a TPU v5e)")
  p.add_argument("--topology", default="", help="compile: a TPU slice, e.g. v5e:4x4 (needs libtpu: .[tpu])")
  p.add_argument("--allow_weak_sandbox", action="store_true",
                 help="trace, data, train: where the OS cannot isolate programs (no user namespaces or "
                      "libseccomp), trace them anyway under the weaker guard, which every record names")
  p.add_argument("--fallback", action="store_true",
                 help="train: if the latest checkpoint is damaged, move it to WORKDIR/damaged_checkpoints "
                      "and resume from the step before it")
  p.add_argument("--distributed", action="store_true",
                 help="call jax.distributed.initialize() first (multi-host): on TPU, SLURM or MPI it finds "
                      "its peers; elsewhere give the three flags below")
  p.add_argument("--coordinator_address", help="--distributed: HOST:PORT of process 0")
  p.add_argument("--num_processes", type=int, help="--distributed: how many processes take part")
  p.add_argument("--process_id", type=int, help="--distributed: this process's index, 0 to num_processes-1")
  return p


def split_overrides(argv: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
  """Separates `--config.KEY=VALUE` overrides from the other arguments."""
  rest, overrides = [], []
  for arg in argv:
    if arg.startswith("--config."):
      key, eq, value = arg[len("--config."):].partition("=")
      if not eq:
        raise UsageError(f"override {arg!r} needs a value: --config.{key}=VALUE")
      overrides.append((key, value))
    else:
      rest.append(arg)
  return rest, overrides


def build_config(spec: str, overrides):
  """The config of FILE.py[:ARGS] with the overrides, checked against this machine's devices."""
  import jax
  from scratchpad import config as config_lib
  cfg = config_lib.apply_overrides(config_lib.load_config_file(spec), overrides)
  config_lib.validate(cfg, jax.device_count())
  return cfg


def _restore_for_eval(cfg, workdir):
  """The graph and parameters of WORKDIR's latest checkpoint, for `cfg`'s model."""
  from scratchpad.train import checkpoints, optim, trainer
  setup = trainer.Setup(cfg)
  state = checkpoints.restore_latest(workdir, setup.abstract_state)
  if state is None:
    raise ValueError(f"{workdir} has no checkpoint to evaluate")
  return setup.graphdef, optim.evaluation_params(state), int(state["step"])


def _workdir_config(args, overrides):
  """A workdir's own config, or --config checked against it."""
  from scratchpad import config as config_lib
  if args.config:
    cfg = build_config(args.config, overrides)
    config_lib.check_same_model(cfg, args.workdir)
    return cfg
  cfg = config_lib.apply_overrides(config_lib.load_config(args.workdir), overrides)
  config_lib.validate(cfg)
  return cfg


def train(cfg, workdir: str, fallback: bool = False):
  """Trains, with `eval.every_accuracy`'s decoded answers in the validation log."""
  from scratchpad.evaluation import evaluator
  from scratchpad.train import trainer
  accuracy = None
  if cfg.eval.get("every") and cfg.eval.every_accuracy:
    accuracy = evaluator.answer_accuracy_fn(cfg, trainer.Setup(cfg).graphdef, cfg.eval.every_split,
                                            cfg.eval.every_examples)
  return trainer.train(cfg, workdir, fallback=fallback, answer_accuracy=accuracy)


def train_and_evaluate(cfg, workdir: str):
  from scratchpad.evaluation import evaluator
  from scratchpad.train import optim, trainer
  state, _ = train(cfg, workdir)
  setup = trainer.Setup(cfg)
  return evaluator.evaluate(cfg, workdir, setup.graphdef, optim.evaluation_params(state))


def compare(args, overrides) -> None:
  """The main job: each format trained and evaluated, one table at the end."""
  from scratchpad import config as config_lib
  from scratchpad import report
  from scratchpad.files import write_json, write_text
  from scratchpad.tasks import get_task_info
  spec_path, _, spec_args = args.config.partition(":")
  formats = [f for f in args.formats.split(",") if f]
  # Build and check every config before anything trains or writes.
  configs = {fmt: build_config(f"{spec_path}:{','.join([a for a in spec_args.split(',') if a] + [fmt])}",
                               overrides) for fmt in formats}
  for fmt, cfg in configs.items():
    get_task_info(cfg.task)
    config_lib.check_same_model(cfg, os.path.join(args.workdir, fmt))
  t0 = time.perf_counter()
  results = {}
  for fmt, cfg in configs.items():
    print(f"== {fmt}: task {cfg.task}, {cfg.train.steps} steps ==", flush=True)
    results[fmt] = train_and_evaluate(cfg, os.path.join(args.workdir, fmt))
  minutes = (time.perf_counter() - t0) / 60
  tasks = "\n".join(f"{fmt}: {cfg.task}, {get_task_info(cfg.task).description}, {cfg.train.steps} steps "
                    f"of batch {cfg.train.batch_size}{_took(results[fmt])}" for fmt, cfg in configs.items())
  summary = f"{args.config}, wall time {minutes:.1f} min\n{tasks}\n\n{report.results_table(results)}\n"
  breakdown = get_task_info(next(iter(configs.values())).task).breakdown
  if breakdown:
    summary += f"\n{report.by_count_table(results, breakdown)}\n\n![accuracy by length]({report.LENGTH_PLOT})\n"
    report.plot_by_count(results, breakdown, os.path.join(args.workdir, report.LENGTH_PLOT), args.config)
  write_json(os.path.join(args.workdir, "results.json"), results)
  write_text(os.path.join(args.workdir, "results.md"), summary)
  print("\n" + summary)


def _took(results: dict) -> str:
  """`, trained 12.3 min, evaluated 1.2 min` from a results file's run record."""
  from scratchpad.evaluation import run_record
  run = results.get(run_record.RUN_KEY) or {}
  training = run.get("training") or {}
  parts = [f"trained {training['seconds'] / 60:.1f} min" if "seconds" in training else "",
           f"evaluated {run['evaluate_seconds'] / 60:.1f} min" if "evaluate_seconds" in run else ""]
  return "".join(f", {p}" for p in parts if p)


def read_inputs(args, task: str) -> list[str]:
  """The inputs to predict, each checked against the task's format before anything decodes:
  a bad one is an error naming its line; one beyond the trained range, a warning."""
  from scratchpad.evaluation import evaluator
  if args.input is not None:
    texts, where = [args.input], lambda _: "--input"
  else:
    from scratchpad import files
    if not files.exists(args.input_file) or files.isdir(args.input_file):
      raise ValueError(f"--input_file={args.input_file!r} does not exist")
    texts = files.read_text(args.input_file).split("\n")
    if texts and texts[-1] == "":
      texts.pop()  # the file's final newline ends the last line; it starts no new one
    if not texts:
      raise ValueError(f"--input_file={args.input_file!r} holds no input")
    where = lambda i: f"line {i + 1} of {args.input_file}"
  for i, text in enumerate(texts):
    try:
      warning = evaluator.check_input(task, text)
    except ValueError as e:
      raise ValueError(f"{where(i)}: {e}") from None
    if warning:
      print(f"warning: {where(i)}: {warning}", file=sys.stderr)
  return texts


def predict(args, overrides) -> None:
  """--input: the completion as text; --input_file: a JSON line per input."""
  import json
  from scratchpad import config as config_lib
  from scratchpad.evaluation import evaluator
  cfg = _workdir_config(args, overrides)
  task = config_lib.eval_task(cfg)
  texts = read_inputs(args, task)  # before any restoring
  graphdef, params, _ = _restore_for_eval(cfg, args.workdir)
  predictions = evaluator.predict(task, graphdef, params, texts, args.max_new_tokens, cfg.eval.batch_size)
  if args.input is not None:
    print(predictions[0])
    return
  for text, prediction in zip(texts, predictions):
    print(json.dumps({"input": text, "prediction": prediction, "answer": evaluator.answer_text(prediction)}))


def sweep(args, overrides) -> None:
  """A sweep file's runs: run one after the other (then the report), or printed as commands."""
  from scratchpad import report
  from scratchpad import sweep as sweep_lib
  runs = sweep_lib.runs(sweep_lib.load_sweep(args.config), args.workdir, overrides)
  if args.only:
    names = {run.name: run for run in runs}
    wanted = [n for n in args.only.split(",") if n]
    unknown = [n for n in wanted if n not in names]
    if unknown:
      raise ValueError(f"--only names run {unknown[0]!r}, which the sweep lacks; it has: {', '.join(names)}")
    runs = [names[n] for n in wanted]
  if args.commands:
    print("\n".join(sweep_lib.command(args.config, args.workdir, run, overrides) for run in runs))
    return
  sweep_lib.run_all(runs)
  print("\n" + report.write_report(args.workdir))


def _pause_counts(text: str) -> tuple[int, ...]:
  counts = text.split(",") if text else []
  if not all(m.isdigit() for m in counts):
    raise ValueError(f"--pause_counts: want a comma list of pause counts such as 2,5,20,50, got {text!r}")
  return tuple(int(m) for m in counts)


def pause_study(args, overrides) -> None:
  """Plans every run of the study, checks each config, then runs what is not done yet."""
  import jax
  from scratchpad import config as config_lib
  from scratchpad import files
  from scratchpad import pause_study as study_lib
  from scratchpad import report
  from scratchpad.tasks.direct_tasks import PAUSE_STUDY_TASKS
  path, _, arg = args.config.partition(":")
  variant = config_lib.parse_variant(arg, {"size": tuple(config_lib.SIZES), "corpus": ("text", "c4")},
                                     {"size": "tiny", "corpus": "text"}, f"pause-study {path}")
  size, corpus = variant["size"], variant["corpus"]
  steps = lambda n: [("train.steps", str(n))] if n else []
  pretraining = study_lib.pretraining_runs(path, corpus, size, args.workdir,
                                           overrides + steps(args.pretrain_steps))
  tasks = PAUSE_STUDY_TASKS if args.tasks is None else [t for t in args.tasks.split(",") if t]
  finetuning = study_lib.finetuning_runs(
      path, tasks, size, args.seeds, args.ablation_seeds, args.workdir,
      pretraining, m_ft_ablation=_pause_counts(args.pause_counts),
      overrides=overrides + steps(args.finetune_steps))
  for run in [*pretraining.values(), *finetuning]:
    run.config()  # every config is built (and bad input rejected) before anything trains
  # Runs of one task share shapes: compiled steps are reused from disk across seeds.
  jax.config.update("jax_compilation_cache_dir", os.path.join(files.absolute(args.workdir), "jax_cache"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  study = study_lib.run_study(pretraining, finetuning, args.workdir)
  text = report.pause_study_report(study["records"], args.workdir, study["minutes"])
  files.write_text(os.path.join(args.workdir, "study.md"), text + "\n")
  print("\n" + text)


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


def run(argv: list[str]) -> None:
  rest, overrides = split_overrides(argv)
  args = _parser().parse_args(rest)
  if args.command == "compile" and not args.topology:
    if args.devices < 1:
      raise UsageError("compile needs --devices=N (or --topology=NAME)")
    # N host devices stand in for the accelerators; set before JAX starts its backends
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={args.devices}").strip()
  if args.command != "trace":
    from scratchpad.train import host_memory
    host_memory.keep()  # before JAX starts its backends
    _import_tensorflow_quietly()
  if args.distributed:
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes (tests, laptops)
    jax.distributed.initialize(args.coordinator_address, args.num_processes, args.process_id)
  if args.allow_weak_sandbox:
    os.environ["SCRATCHPAD_ALLOW_WEAK_SANDBOX"] = "1"  # tracer.WEAK_SANDBOX_ENV, read where programs are traced
  if args.command == "trace":
    from scratchpad.tracing import tracer  # the standard library alone: no TensorFlow
    if not args.program:
      raise UsageError("trace needs a Python file: python -m scratchpad trace FILE.py")
    if not os.path.isfile(args.program):
      raise ValueError(f"program file {args.program!r} does not exist")
    with open(args.program) as f:
      trace = tracer.trace_program(f.read())
    if trace.sandbox != "os":
      print(f"warning: traced under the {trace.sandbox}", file=sys.stderr)
    print(tracer.format_trace(trace))
    return
  if args.command == "data":
    if not args.task:
      raise UsageError("data needs --task=NAME")
    from scratchpad import report
    print(report.task_summary(args.task))
    return
  if args.command == "sizes":
    from scratchpad import report
    print(report.sizes_table(compile_step=args.compile))
    return
  if args.command == "compile":
    if not args.config:
      raise UsageError("compile needs --config=FILE.py[:ARGS]")
    from scratchpad import config as config_lib
    from scratchpad.train import fit
    cfg = config_lib.apply_overrides(config_lib.load_config_file(args.config), overrides)
    print(fit.describe(fit.compile_report(cfg, args.devices, args.hbm_gib, args.topology)))
    return
  if args.program:
    raise UsageError(f"unexpected argument {args.program!r}")
  if not args.workdir:
    raise UsageError(f"{args.command} needs --workdir=DIR")
  if args.command in ("train", "compare", "sweep", "pause-study") and not args.config:
    raise UsageError(f"{args.command} needs --config=FILE.py[:ARGS]")
  if args.command == "predict" and (args.input is None) == (args.input_file is None):
    raise UsageError("predict needs one of --input='...' and --input_file=FILE")

  if args.command == "train":
    train(build_config(args.config, overrides), args.workdir, fallback=args.fallback)
  elif args.command == "compare":
    compare(args, overrides)
  elif args.command == "sweep":
    sweep(args, overrides)
  elif args.command == "report":
    from scratchpad import report
    print(report.write_report(args.workdir))
  elif args.command == "pause-study":
    pause_study(args, overrides)
  elif args.command == "evaluate":
    from scratchpad import report
    from scratchpad.evaluation import evaluator
    cfg = _workdir_config(args, overrides)
    graphdef, params, step = _restore_for_eval(cfg, args.workdir)
    results = evaluator.evaluate(cfg, args.workdir, graphdef, params)
    print(report.results_table({f"{cfg.task}@{step}": results}))
  elif args.command == "predict":
    predict(args, overrides)


def main(argv=None) -> int:
  from absl import logging
  logging.set_verbosity(logging.ERROR)  # seqio's advice on caching is not for this scale
  try:
    run(sys.argv[1:] if argv is None else argv)
  except Exception as e:
    # The trainer is imported only by commands that train (`trace` needs no JAX).
    trainer = sys.modules.get("scratchpad.train.trainer")
    if trainer is not None and isinstance(e, trainer.Preempted):
      print(f"\n{e}", flush=True)  # saved: not an error; rerunning the command resumes
      return 0
    diverged = trainer is not None and isinstance(e, trainer.Diverged)
    from scratchpad.tracing.sandbox import SandboxUnavailable  # the standard library alone
    if not (diverged or isinstance(e, (ValueError, KeyError, FileNotFoundError, SandboxUnavailable))):
      raise
    message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    print(f"error: {message}", file=sys.stderr)
    return 3 if diverged else 2
  return 0
