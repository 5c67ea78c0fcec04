"""Sweeps: one experiment's runs over sizes, variants, seeds and tasks, each in its own workdir.

A sweep file (`configs/sweeps/*.py`) defines `get_sweep(arg) -> dict` with

  config     the experiment's config file, e.g. "configs/addition.py"
  args       variant tokens every run shares, e.g. "laptop"
  axes       {axis: values}: the runs are their product, in order. An axis is a
             kind of variant token of the config file (size, format, task, ...),
             or `seed` (the config's seed)
  overrides  {config key: value} for every run

Each run lives in WORKDIR/NAME, NAME being its axis values joined by `-`
(`tiny-direct-seed0`), with `run.json` naming its axis values for reports.
`run_all` runs them one after the other and skips those whose results exist, so
an interrupted sweep resumes; `command` gives one run as its own command line
(`sweep --only=NAME`), for a pod or one job of a cluster's array.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import shlex
import time

import jax
import ml_collections

from scratchpad import config as config_lib
from scratchpad import errors
from scratchpad import files
from scratchpad import report
from scratchpad.evaluation import evaluator
from scratchpad.train import run_config

SWEEP_KEYS = ("config", "args", "axes", "overrides")


@dataclasses.dataclass(frozen=True)
class Run:
  """One training run: its config, its workdir and the evaluations it owes."""
  spec: str  # FILE.py:ARGS
  overrides: tuple[tuple[str, str], ...]
  workdir: str
  labels: tuple[tuple[str, str], ...] = ()  # what the run stands for in tables: (axis, value)
  inference_pauses: tuple[int, ...] = ()  # extra evaluations with these M_inf (the pause study)

  @property
  def name(self) -> str:
    return os.path.basename(os.path.normpath(self.workdir))

  def label(self, axis: str) -> str:
    return dict(self.labels)[axis]

  def config(self) -> ml_collections.ConfigDict:
    return config_lib.apply_overrides(config_lib.load_config_file(self.spec), self.overrides)


def command(sweep_spec: str, workdir: str, run: Run, overrides=(), program: str = "python -m scratchpad") -> str:
  """One run of a sweep as its own command line: for a pod, or one job of a cluster's array."""
  return shlex.join([*program.split(), "sweep", f"--config={sweep_spec}", f"--workdir={workdir}",
                     f"--only={run.name}", *(f"--config.{k}={v}" for k, v in overrides)])


def load_sweep(spec: str) -> dict:
  """`configs/sweeps/FILE.py[:ARG]` -> its checked `get_sweep(ARG)`."""
  path = spec.partition(":")[0]
  sweep = config_lib.call_file(spec, "get_sweep", "sweep file")
  if not isinstance(sweep, dict):
    raise errors.InputError(f"sweep file {path!r}: get_sweep() must return a dict with keys {', '.join(SWEEP_KEYS)}")
  unknown = sorted(set(sweep.keys()) - set(SWEEP_KEYS))
  if unknown:
    raise errors.InputError(f"sweep file {path!r} has unknown key {unknown[0]!r}; a sweep has: {', '.join(SWEEP_KEYS)}")
  if not sweep.get("config") or not sweep.get("axes"):
    raise errors.InputError(f"sweep file {path!r} must set config (an experiment's config file) and axes")
  for axis, values in sweep["axes"].items():
    if not values:
      raise errors.InputError(f"sweep file {path!r}: axis {axis!r} has no values")
  return sweep


def runs(sweep: dict, workdir: str, overrides=()) -> list[Run]:
  """The product of the sweep's axes, in order, as runs under WORKDIR; `overrides`
  (command-line `(key, text)` pairs) come after the sweep's own."""
  axes = list(sweep["axes"].items())
  shared = [a for a in str(sweep.get("args") or "").split(",") if a]
  overrides = tuple((k, _text(v)) for k, v in (sweep.get("overrides") or {}).items()) + tuple(overrides)
  out = []
  for values in itertools.product(*(v for _, v in axes)):
    labels = tuple((axis, str(value)) for (axis, _), value in zip(axes, values))
    tokens = [v for a, v in labels if a != "seed"]
    seed = tuple(("seed", v) for a, v in labels if a == "seed")
    name = "-".join(v if a != "seed" else f"seed{v}" for a, v in labels)
    out.append(Run(f"{sweep['config']}:{','.join(shared + tokens)}", overrides + seed,
                   os.path.join(workdir, name), labels))
  return out


def _text(value) -> str:
  """A sweep file's override value as command-line text."""
  return str(value).lower() if isinstance(value, bool) else str(value)


def evaluations(run: Run) -> dict[str, int | None]:
  """The evaluations a run owes, by results file name: {name: M_inf (None: the config's)}."""
  return {"results": None, **{f"results_minf{m}": m for m in run.inference_pauses}}


def is_done(run: Run) -> bool:
  return all(files.exists(evaluator.results_path(run.workdir, n)) for n in evaluations(run))


def execute(run: Run, cfg: ml_collections.ConfigDict | None = None):
  """Trains and evaluates `run` unless its results exist; returns its config and {name: results}."""
  from scratchpad.train import optim, trainer
  cfg = cfg or run.config()
  names = evaluations(run)
  if cfg.eval.splits and is_done(run):
    return cfg, {n: files.read_json(evaluator.results_path(run.workdir, n)) for n in names}
  state, _ = trainer.train(cfg, run.workdir)
  files.write_json(os.path.join(run.workdir, report.RUN_FILE),
                   {"labels": dict(run.labels), "spec": run.spec, "overrides": dict(run.overrides)})
  if not cfg.eval.splits:
    return cfg, {}
  graphdef = trainer.model_graphdef(cfg)
  params = optim.evaluation_params(state)
  return cfg, {n: evaluator.evaluate(cfg, run.workdir, graphdef, params, num_pauses=m, name=n)
               for n, m in names.items()}


def check(all_runs: list[Run]) -> dict[str, ml_collections.ConfigDict]:
  """Builds and checks every run's config, and that no workdir holds another model, before
  anything trains: {workdir: config}."""
  configs = {}
  for run in all_runs:
    try:
      cfg = run.config()
      run_config.check_run(cfg, jax.device_count())
      run_config.check_same_model(cfg, run.workdir)
    except errors.InputError as e:
      raise errors.InputError(f"run {run.name}: {e}") from None
    configs[run.workdir] = cfg
  return configs


def run_all(all_runs: list[Run], log=print) -> None:
  """Runs every run not yet done, one after the other, each printing its progress."""
  configs = check(all_runs)
  t0 = time.perf_counter()
  for i, run in enumerate(all_runs, 1):
    done = is_done(run)
    log(f"== [{i}/{len(all_runs)}] {run.name}{' (done: skipped)' if done else ''}: {run.workdir}")
    execute(run, configs[run.workdir])
  log(f"sweep of {len(all_runs)} runs: {(time.perf_counter() - t0) / 60:.1f} min")
