"""The commands of `python -m scratchpad` but `trace`: one function each, `(args, overrides)`.

`scratchpad.cli` parses the flags, starts the backends and calls these; bad input
raises `errors.InputError` before anything in the workdir is written.
"""

from __future__ import annotations

import json
import os
import sys
import time

import jax

from scratchpad import config as config_lib
from scratchpad import errors, files, report
from scratchpad import pause_study as study_lib
from scratchpad import sweep as sweep_lib
from scratchpad.evaluation import evaluator, run_record
from scratchpad.model import transformer
from scratchpad.tasks import get_task_info, pause_tasks
from scratchpad.tasks.direct_tasks import PAUSE_STUDY_TASKS
from scratchpad.train import checkpoints, fit, optim, run_config, trainer


def build_config(spec: str, overrides):
  """The config of FILE.py[:ARGS] with the overrides, checked against this machine's devices."""
  cfg = config_lib.apply_overrides(config_lib.load_config_file(spec), overrides)
  run_config.check_run(cfg, jax.device_count())
  return cfg


def _workdir_config(args, overrides):
  """A workdir's own config, or --config checked against it."""
  if args.config:
    cfg = build_config(args.config, overrides)
    run_config.check_same_model(cfg, args.workdir)
    return cfg
  cfg = config_lib.apply_overrides(run_config.load_config(args.workdir), overrides)
  run_config.check_run(cfg)
  return cfg


def _restore_for_eval(cfg, workdir):
  """The graph and parameters of WORKDIR's latest checkpoint, for `cfg`'s model."""
  training = trainer.ShardedTraining(cfg)
  state = checkpoints.restore_latest(workdir, training.abstract_state)
  if state is None:
    raise errors.InputError(f"{workdir} has no checkpoint to evaluate")
  return training.graphdef, optim.evaluation_params(state), int(state["step"])


def _train(cfg, workdir: str, fallback: bool = False):
  """Trains, with `eval.every_accuracy`'s decoded answers in the validation log."""
  accuracy = None
  if cfg.eval.every and cfg.eval.every_accuracy:
    accuracy = evaluator.answer_accuracy_fn(cfg, trainer.model_graphdef(cfg), cfg.eval.every_split,
                                            cfg.eval.every_examples)
  return trainer.train(cfg, workdir, fallback=fallback, answer_accuracy=accuracy)


def train(args, overrides) -> None:
  _train(build_config(args.config, overrides), args.workdir, fallback=args.fallback)


def evaluate(args, overrides) -> None:
  cfg = _workdir_config(args, overrides)
  graphdef, params, step = _restore_for_eval(cfg, args.workdir)
  results = evaluator.evaluate(cfg, args.workdir, graphdef, params)
  print(report.results_table({f"{cfg.task}@{step}": results}))


def compare(args, overrides) -> None:
  """The main job: each format trained and evaluated, one table at the end."""
  spec_path, _, spec_args = args.config.partition(":")
  formats = [f for f in args.formats.split(",") if f]
  # Build and check every config before anything trains or writes.
  configs = {fmt: build_config(f"{spec_path}:{','.join([a for a in spec_args.split(',') if a] + [fmt])}",
                               overrides) for fmt in formats}
  for fmt, cfg in configs.items():
    run_config.check_same_model(cfg, os.path.join(args.workdir, fmt))
  t0 = time.perf_counter()
  results = {}
  for fmt, cfg in configs.items():
    print(f"== {fmt}: task {cfg.task}, {cfg.train.steps} steps ==", flush=True)
    workdir = os.path.join(args.workdir, fmt)
    state, _ = _train(cfg, workdir)
    results[fmt] = evaluator.evaluate(cfg, workdir, trainer.model_graphdef(cfg), optim.evaluation_params(state))
  minutes = (time.perf_counter() - t0) / 60
  tasks = "\n".join(f"{fmt}: {cfg.task}, {get_task_info(cfg.task).description}, {cfg.train.steps} steps "
                    f"of batch {cfg.train.batch_size}{_took(results[fmt])}" for fmt, cfg in configs.items())
  summary = f"{args.config}, wall time {minutes:.1f} min\n{tasks}\n\n{report.results_table(results)}\n"
  breakdown = get_task_info(next(iter(configs.values())).task).breakdown
  if breakdown:
    summary += f"\n{report.by_count_table(results, breakdown)}\n\n![accuracy by length]({report.LENGTH_PLOT})\n"
    report.plot_by_count(results, breakdown, os.path.join(args.workdir, report.LENGTH_PLOT), args.config)
  files.write_json(os.path.join(args.workdir, "results.json"), results)
  files.write_text(os.path.join(args.workdir, "results.md"), summary)
  print("\n" + summary)


def _took(results: dict) -> str:
  """`, trained 12.3 min, evaluated 1.2 min` from a results file's run record."""
  run = results.get(run_record.RUN_KEY) or {}
  training = run.get("training") or {}
  parts = [f"trained {training['seconds'] / 60:.1f} min" if "seconds" in training else "",
           f"evaluated {run['evaluate_seconds'] / 60:.1f} min" if "evaluate_seconds" in run else ""]
  return "".join(f", {p}" for p in parts if p)


def read_inputs(args, task: str) -> list[str]:
  """The inputs to predict, each checked against the task's format before anything decodes:
  a bad one is an error naming its line; one beyond the trained range, a warning."""
  if args.input is not None:
    texts, where = [args.input], lambda _: "--input"
  else:
    if not files.exists(args.input_file) or files.isdir(args.input_file):
      raise errors.InputError(f"--input_file={args.input_file!r} does not exist")
    texts = files.read_text(args.input_file).split("\n")
    if texts and texts[-1] == "":
      texts.pop()  # the file's final newline ends the last line; it starts no new one
    if not texts:
      raise errors.InputError(f"--input_file={args.input_file!r} holds no input")
    where = lambda i: f"line {i + 1} of {args.input_file}"
  for i, text in enumerate(texts):
    try:
      warning = evaluator.check_input(task, text)
    except ValueError as e:  # the task's parser names what is wrong with the text
      raise errors.InputError(f"{where(i)}: {e}") from None
    if warning:
      print(f"warning: {where(i)}: {warning}", file=sys.stderr)
  return texts


def predict(args, overrides) -> None:
  """--input: the completion as text; --input_file: a JSON line per input."""
  cfg = _workdir_config(args, overrides)
  task = pause_tasks.eval_task(cfg)
  texts = read_inputs(args, task)  # before any restoring
  graphdef, params, _ = _restore_for_eval(cfg, args.workdir)
  predictions = evaluator.predict(task, graphdef, params, texts, args.max_new_tokens, cfg.eval.batch_size)
  if args.input is not None:
    print(predictions[0])
    return
  for text, prediction in zip(texts, predictions):
    print(json.dumps({"input": text, "prediction": prediction, "answer": evaluator.answer_text(prediction)}))


def data(args, overrides) -> None:
  del overrides
  print(report.task_summary(args.task))


def sizes(args, overrides) -> None:
  del overrides
  print(report.sizes_table(compile_step=args.compile))


def compile_step(args, overrides) -> None:
  cfg = config_lib.apply_overrides(config_lib.load_config_file(args.config), overrides)
  print(fit.describe(fit.compile_report(cfg, args.devices, args.hbm_gib, args.topology)))


def gather_report(args, overrides) -> None:
  del overrides
  print(report.write_report(args.workdir))


def sweep(args, overrides) -> None:
  """A sweep file's runs: run one after the other (then the report), or printed as commands."""
  runs = sweep_lib.runs(sweep_lib.load_sweep(args.config), args.workdir, overrides)
  if args.only:
    names = {run.name: run for run in runs}
    wanted = [n for n in args.only.split(",") if n]
    unknown = [n for n in wanted if n not in names]
    if unknown:
      raise errors.InputError(f"--only names run {unknown[0]!r}, which the sweep lacks; it has: {', '.join(names)}")
    runs = [names[n] for n in wanted]
  if args.commands:
    print("\n".join(sweep_lib.command(args.config, args.workdir, run, overrides) for run in runs))
    return
  sweep_lib.run_all(runs)
  print("\n" + report.write_report(args.workdir))


def _pause_counts(text: str) -> tuple[int, ...]:
  counts = text.split(",") if text else []
  if not all(m.isdigit() for m in counts):
    raise errors.InputError(f"--pause_counts: want a comma list of pause counts such as 2,5,20,50, got {text!r}")
  return tuple(int(m) for m in counts)


def pause_study(args, overrides) -> None:
  """Plans every run of the study, checks each config, then runs what is not done yet."""
  path, _, arg = args.config.partition(":")
  variant = config_lib.parse_variant(arg, {"size": tuple(transformer.SIZES), "corpus": ("text", "c4")},
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


# The command line's name of each command -> its function.
RUN = {"train": train, "evaluate": evaluate, "predict": predict, "compare": compare, "data": data,
       "sweep": sweep, "report": gather_report, "sizes": sizes, "compile": compile_step,
       "pause-study": pause_study}
