"""Training-step benchmark: our jitted train step against the same model in PyTorch.

    python -m benchmarks.train                       # the reference config (below), PyTorch eager + compile
    python -m benchmarks.train --size=small --seq=512 --batch=16 --steps=20
    python -m benchmarks.train --layers=1 --d_model=32 --heads=4 --mlp_dim=64 --seq=32 --batch=4 --steps=3
    python -m benchmarks.train --torch=eager,compile,eager-sdpa   # also PyTorch's fused attention
    python -m benchmarks.train --torch=none          # JAX only (PyTorch not installed)
    python -m benchmarks.train --torch=none --xla_defaults   # our step with XLA's default options

Reference config (the default): 4 layers, d_model 256, 4 heads, MLP 1024, sequence 256,
batch 32, byte vocabulary (264), AdamW — `--size=reference --seq=256 --batch=32`.

What it measures, in one process:
  * the device's dense matmul rate: a jitted n x n float32 (CPU) or bfloat16 (GPU) matmul,
    median of repeats, before and after the step benchmarks, compiled with XLA's defaults and
    with our step's options; the highest is the MFU denominator;
  * our train step — `scratchpad.model.transformer.Transformer`, the trainer's optimizer
    (global-norm clipping + AdamW, warmup-cosine) and loss, the step function of
    `scratchpad.train.trainer.ShardedTraining.train_step_fn` jitted on one device with the state
    donated and the trainer's `compile_options` — on a fixed synthetic batch (one segment per row, every position a target);
  * the PyTorch model of `benchmarks.torch_model` on the same batch, eager and torch.compile;
  * a bound: our step's matmuls alone in one program (`matmuls_alone`; `--no-matmuls_alone` skips it);
each timed after its compilation and `--warmup` steps, `--steps` timed steps per round, the
contenders alternating for `--rounds` rounds (so a busy machine slows them alike); the
median step time over all rounds. The bound runs after the rounds, as many times.

Columns: tokens/s = batch * seq / median step; FLOPs/token = `common.train_flops_per_token`
(PaLM's 6N + 12 * layers * d_model * seq); TFLOP/s = FLOPs/token * tokens/s; MFU = that
over the measured matmul rate; "ours / this" = our tokens/s over the row's.
"""

from __future__ import annotations

import os

# Before jax initialises a GPU: do not grab 75% of its memory, PyTorch runs beside it.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
# Before PyTorch loads OpenMP: its threads, left spinning after each of its steps, would take
# the cores from the contender timed next in this process (our CPU step ran 1530-1750 ms
# instead of a steady 1530; PyTorch's own step is the same either way, benchmarks/NOTES.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import dataclasses
import functools
import json
import time
import traceback

import jax
import numpy as np
from flax import nnx

from benchmarks import common
from scratchpad.markdown import markdown_table
from scratchpad.model import attention, cpu_blas, transformer
from scratchpad.train import compile_options, optim


# --------------------------------------------------------------------------- ours

def trainer_step(cfg: transformer.ModelConfig, hp: common.TrainHParams, seed: int = 0):
  """The trainer's step (scratchpad.train.optim) on one device, no mesh shardings:
  (train_step(state, batch) -> (state, metrics), init_state() -> state)."""
  abstract_model = nnx.eval_shape(lambda: transformer.Transformer(cfg, nnx.Rngs(seed)))
  graphdef, _ = nnx.split(abstract_model, nnx.Param)
  tx = optim.make_optimizer(hp)
  return functools.partial(optim.train_step, graphdef, tx), functools.partial(optim.init_state, cfg, tx, seed)


def jax_train_step(cfg: transformer.ModelConfig, hp: common.TrainHParams, batch: dict, seed: int = 0,
                   compiler_options: dict | None = None):
  """The trainer's train step on one device: returns (step_fn() -> outputs, compile seconds, XLA FLOPs).

  `compiler_options`: the XLA options to compile it with (the trainer's, `--xla` flags)."""
  train_step, init_state = trainer_step(cfg, hp, seed)
  state = jax.jit(init_state)()
  batch = jax.device_put(batch)
  start = time.perf_counter()
  compiled = jax.jit(train_step, donate_argnums=0).lower(state, batch).compile(compiler_options or None)
  compile_s = time.perf_counter() - start
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  xla_flops = float(cost.get("flops", float("nan"))) if cost else float("nan")
  holder = [state]

  def step():
    holder[0], metrics = compiled(holder[0], batch)
    return holder[0], metrics

  return step, compile_s, xla_flops


_MKL_TARGETS = (cpu_blas.TARGET, cpu_blas.ATTENTION_TARGET, cpu_blas.ATTENTION_BACKWARD_TARGET)


def is_matmul(eqn) -> bool:
  """An XLA dot, or a custom call of the model's MKL kernels (`scratchpad.model.cpu_blas`): a
  matmul, or fused attention, which is matmuls and the softmax between them."""
  return eqn.primitive is jax.lax.dot_general_p or eqn.params.get("target_name") in _MKL_TARGETS


def mkl_products(eqn) -> list[tuple[tuple, tuple, bool, bool]]:
  """The matrix products of one MKL custom call, as `cpu_blas.mkl_or_xla_matmul` operands (a shape, b
  shape, transpose_a, transpose_b)."""
  target, attributes = eqn.params["target_name"], dict(eqn.params["attributes"])
  if target == cpu_blas.TARGET:
    return [(eqn.invars[0].aval.shape, eqn.invars[1].aval.shape, attributes["transpose_a"], attributes["transpose_b"])]
  return cpu_blas.attention_products(eqn.invars[0].aval.shape, attributes["block"],
                                     backward=target == cpu_blas.ATTENTION_BACKWARD_TARGET)


def step_matmuls(fn, *args) -> list:
  """Every matmul `fn(*args)` computes (forward and backward: its jaxpr is traced through
  jax.grad), sub-jaxprs included; a scan's body counts `length` times."""
  def walk(jaxpr, times):
    for eqn in jaxpr.eqns:
      if is_matmul(eqn):
        yield from [eqn] * times
      inner = times * eqn.params.get("length", 1) if eqn.primitive.name == "scan" else times
      for value in eqn.params.values():
        for sub in value if isinstance(value, (list, tuple)) else [value]:
          sub = getattr(sub, "jaxpr", sub)  # a ClosedJaxpr's Jaxpr
          if hasattr(sub, "eqns"):
            yield from walk(sub, inner)
  return list(walk(jax.make_jaxpr(fn)(*args).jaxpr, 1))


def matmuls_alone(cfg: transformer.ModelConfig, hp: common.TrainHParams, batch: dict,
                  compiler_options: dict | None = None):
  """A bound under our step: all of its matmuls, the same shapes, dimension numbers and
  precision, alone in one compiled program: nothing else to do and no dependencies between
  them, so the runtime overlaps them as it likes. Returns (step_fn, the matmuls' jaxpr
  equations, the compiled program).

  Our step takes this long plus its softmax, norms, GELU, RoPE, loss and AdamW, so the time
  says how near the step is to the device's matmul kernels, and no step made of these kernels
  runs faster than it."""
  train_step, init_state = trainer_step(cfg, hp)
  eqns = step_matmuls(train_step, jax.eval_shape(init_state), batch)
  dots = [eqn for eqn in eqns if eqn.primitive is jax.lax.dot_general_p]
  products = [p for eqn in eqns if eqn.primitive is not jax.lax.dot_general_p for p in mkl_products(eqn)]
  # One random array per operand shape and dtype, read by every matmul that takes it.
  f32 = np.dtype(np.float32)  # the MKL kernels' only dtype
  shapes = list(dict.fromkeys([(v.aval.shape, v.aval.dtype) for eqn in dots for v in eqn.invars]
                              + [(shape, f32) for p in products for shape in p[:2]]))
  index = {key: i for i, key in enumerate(shapes)}
  rng = np.random.default_rng(0)
  arrays = [jax.device_put(rng.standard_normal(shape, np.float32).astype(dtype)) for shape, dtype in shapes]
  dot_operands = [tuple(index[v.aval.shape, v.aval.dtype] for v in eqn.invars) for eqn in dots]
  product_operands = [(index[a, f32], index[b, f32]) for a, b, _, _ in products]

  def all_matmuls(*arrays):
    return ([eqn.primitive.bind(arrays[i], arrays[j], **eqn.params) for (i, j), eqn in zip(dot_operands, dots)]
            + [cpu_blas.mkl_or_xla_matmul(arrays[i], arrays[j], ta, tb) for (i, j), (_, _, ta, tb) in zip(product_operands, products)])

  # Matmuls of the same operands would be merged into one by common-subexpression elimination.
  options = dict(compiler_options or {})
  options["xla_disable_hlo_passes"] = ",".join(filter(None, [options.get("xla_disable_hlo_passes"), "cse"]))
  compiled = jax.jit(all_matmuls).lower(*arrays).compile(options)
  return (lambda: compiled(*arrays)), eqns, compiled


def matmul_count(eqns) -> int:
  """How many matrix products matmul equations (`is_matmul`) compute."""
  return sum(1 if eqn.primitive is jax.lax.dot_general_p else len(mkl_products(eqn)) for eqn in eqns)


def matmul_flops(eqns) -> float:
  """FLOPs of matmul equations (`is_matmul`): 2 x output elements x contracted size."""
  def flops(eqn):
    if eqn.primitive is jax.lax.dot_general_p:
      contracted = np.prod([eqn.invars[0].aval.shape[d] for d in eqn.params["dimension_numbers"][0][0]])
      return 2 * np.prod(eqn.outvars[0].aval.shape, dtype=np.float64) * contracted
    return sum(2 * np.prod(a[:-2], dtype=np.float64) * np.prod(cpu_blas.sizes(a, b, ta, tb), dtype=np.float64)
               for a, b, ta, tb in mkl_products(eqn))
  return float(sum(flops(eqn) for eqn in eqns))


# --------------------------------------------------------------------------- contenders

@dataclasses.dataclass
class Contender:
  name: str
  step: object = None  # () -> outputs
  sync: object = None  # outputs -> waits for the device
  first_s: float = float("nan")  # compilation + the first step
  times_s: list = dataclasses.field(default_factory=list)
  error: str = ""


def torch_contenders(modes: list[str], cfg, hp, batch, seq: int, adamw: str, threads: int | None):
  """One Contender per mode ("eager", "compile", "eager-sdpa", "compile-sdpa"); a failure
  (PyTorch missing, no matching device, torch.compile unavailable) is recorded, not raised."""
  out = []
  if not modes:
    return out
  try:
    import torch
  except ImportError as e:
    return [Contender(torch_label(m), error=f"not installed ({e}); pip install torch") for m in modes]
  from benchmarks import torch_model

  if threads:
    torch.set_num_threads(threads)
  backend = jax.default_backend()
  device = "cpu"
  if backend == "gpu":
    if not torch.cuda.is_available():
      return [Contender(torch_label(m), error=f"torch {torch.__version__} has no CUDA; JAX runs on GPU")
              for m in modes]
    device = "cuda"
  elif backend != "cpu":
    return [Contender(torch_label(m), error=f"no PyTorch device for JAX backend {backend}") for m in modes]

  for mode in modes:
    compile_, _, attention = mode.partition("-")
    attention = attention or "math"
    c = Contender(torch_label(mode))
    try:
      model = torch_model.TorchTransformer(cfg.vocab_size, cfg.num_layers, cfg.d_model, cfg.num_heads, cfg.mlp_dim,
                                           max_len=seq, attention=attention, rope_max_wavelength=cfg.rope_max_wavelength)
      c.step = torch_model.TrainStep(model, hp, batch, device, cfg.dtype, compile=compile_ == "compile", adamw=adamw)
      c.sync = c.step.sync
    except Exception as e:  # noqa: BLE001 - report, do not crash
      c.error = _reason(e)
    out.append(c)
  return out


def torch_label(mode: str) -> str:
  compile_, _, attention = mode.partition("-")
  return f"PyTorch {'torch.compile' if compile_ == 'compile' else 'eager'}" + (
      f" ({attention} attention)" if attention else "")


def _reason(e: BaseException) -> str:
  text = f"{type(e).__name__}: {e}".replace("\n", " ").replace("|", "/")
  text = text.split("Set TORCHDYNAMO_VERBOSE")[0].strip()
  return text[:300] + ("..." if len(text) > 300 else "")


def warm_up(c: Contender, warmup: int) -> None:
  try:
    start = time.perf_counter()
    c.sync(c.step())
    c.first_s = time.perf_counter() - start
    for _ in range(warmup):
      c.sync(c.step())
  except Exception as e:  # noqa: BLE001 - e.g. torch.compile without a working C++ compiler
    c.error = _reason(e)
    if os.environ.get("BENCHMARK_TRACEBACKS"):
      traceback.print_exc()


def run_round(c: Contender, steps: int) -> None:
  for _ in range(steps):
    start = time.perf_counter()
    c.sync(c.step())
    c.times_s.append(time.perf_counter() - start)


# --------------------------------------------------------------------------- main

def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog=__doc__.split("\n", 1)[1])
  common.add_model_flags(p)
  p.add_argument("--seq", type=int, default=256)
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--steps", type=int, default=2, help="timed steps per contender per round")
  p.add_argument("--rounds", type=int, default=5, help="alternating rounds over the contenders")
  p.add_argument("--warmup", type=int, default=2, help="untimed steps after the first (compiling) one")
  p.add_argument("--torch", default="eager,compile",
                 help="comma list of eager, compile, eager-sdpa, compile-sdpa; or none")
  p.add_argument("--torch_adamw", default="fused", choices=("fused", "foreach", "for-loop"))
  p.add_argument("--torch_threads", type=int, default=None, help="default: PyTorch's (the physical cores)")
  p.add_argument("--matmul_size", type=int, default=None, help="n of the n^3 matmul (default 2048 CPU, 8192 GPU)")
  p.add_argument("--matmul_reps", type=int, default=10)
  p.add_argument("--xla", action="append", default=[], metavar="OPTION=VALUE",
                 help="an XLA option for our step's compilation only, e.g. "
                      "--xla=xla_cpu_experimental_ynn_fusion_type= (repeatable)")
  p.add_argument("--attention", default="auto", choices=attention.IMPLEMENTATIONS,
                 help="our model's training attention (model.attention; auto: the backend's, measured on CPU)")
  p.add_argument("--attention_block", type=int, default=None,
                 help="our model's causal query block (default: attention.attention_block, by sequence "
                      "length); 0: one block, every key computed")
  p.add_argument("--xla_defaults", action="store_true",
                 help="compile our step with XLA's defaults, not the trainer's compile_options")
  p.add_argument("--profile", default="", help="write a jax.profiler trace of 3 of our steps to this directory "
                 "and print the XLA ops that took the most time")
  p.add_argument("--matmuls_alone", action=argparse.BooleanOptionalAction, default=True,
                 help="also time our step's matmuls alone in one program (matmuls_alone), a bound on the step")
  common.add_host_memory_flag(p)
  p.add_argument("--json", default="", help="also write the results to this JSON file")
  args = p.parse_args(argv)
  bad = [m for m in args.torch.split(",") if m not in ("eager", "compile", "eager-sdpa", "compile-sdpa", "none", "")]
  if bad:
    p.error(f"unknown --torch mode(s) {bad}: use eager, compile, eager-sdpa, compile-sdpa or none")
  if any("=" not in o for o in args.xla):
    p.error("--xla takes OPTION=VALUE")
  return args


def main(argv=None) -> dict:
  args = parse_args(argv)
  args.memory = common.set_host_memory(args)
  return run(args)


def run(args) -> dict:
  cfg = common.model_config(args)
  hp = common.TrainHParams()
  batch_np = common.synthetic_batch(args.batch, args.seq, cfg.vocab_size)
  tokens_per_step = args.batch * args.seq
  flops_per_token = common.train_flops_per_token(cfg, args.seq)
  matmul_dtype = "float32" if jax.default_backend() == "cpu" else "bfloat16"
  matmul_n = args.matmul_size or common.default_matmul_size()

  print(f"# Training step: {common.describe(cfg)}")
  print(f"seq {args.seq}, batch {args.batch} ({tokens_per_step:,} tokens/step), AdamW; {common.device_line()}; "
        f"{common.load_line()}; {args.memory}; {cpu_blas.status()}; "
        f"{attention.describe(cfg.attention, cfg.dtype)}", flush=True)

  options = {} if args.xla_defaults else compile_options.train_step(jax.default_backend())
  options.update(o.split("=", 1) for o in args.xla)
  rate_before = matmul_rates(matmul_dtype, matmul_n, args.matmul_reps, options)
  print(f"matmul rate ({matmul_n}^3 {matmul_dtype}): {format_rates(rate_before)}", flush=True)

  ours = Contender("JAX/Flax (ours)")
  ours.step, compile_s, xla_flops = jax_train_step(cfg, hp, batch_np, compiler_options=options)
  ours.sync = jax.block_until_ready
  print(f"ours: compiled in {compile_s:.1f}s", flush=True)
  modes = [m for m in args.torch.split(",") if m and m != "none"]
  contenders = [ours] + torch_contenders(modes, cfg, hp, batch_np, args.seq, args.torch_adamw, args.torch_threads)

  for c in contenders:
    if not c.error:
      warm_up(c, args.warmup)
      if c is ours:
        c.first_s += compile_s
      print(f"{c.name}: " + (f"FAILED: {c.error}" if c.error else f"first step {c.first_s:.1f}s"), flush=True)
  for r in range(args.rounds):
    for c in contenders:
      if not c.error:
        run_round(c, args.steps)
    print(f"round {r + 1}/{args.rounds}: " + ", ".join(
        f"{c.name} {1e3 * common.Timing(0, c.times_s).median_s:.1f} ms" for c in contenders if not c.error), flush=True)

  if args.matmuls_alone:  # after the rounds: its ~1 GB of outputs would disturb the steps after it
    alone, alone_eqns = Contender(MATMULS_ALONE, sync=jax.block_until_ready), []
    try:  # e.g. out of memory: every matmul's output is live at the end of the program
      alone.step, alone_eqns, _ = matmuls_alone(cfg, hp, batch_np, compiler_options=options)
      warm_up(alone, args.warmup)
      run_round(alone, args.rounds * args.steps)
    except Exception as e:  # noqa: BLE001 - report, do not crash
      alone.error = _reason(e)
    print(f"{MATMULS_ALONE}: " + (f"FAILED: {alone.error}" if alone.error else
                                  f"{1e3 * common.Timing(0, alone.times_s).median_s:.1f} ms"), flush=True)
    contenders.append(alone)

  if args.profile:
    jax.profiler.start_trace(args.profile, create_perfetto_trace=True)
    for _ in range(3):
      ours.sync(ours.step())
    jax.profiler.stop_trace()
    print(f"profile of 3 steps written to {args.profile}; the XLA ops with the most time a step "
          "(names as in the optimized HLO of XLA_FLAGS=--xla_dump_to=DIR):")
    step_ms = 1e3 * common.Timing(0, ours.times_s).median_s
    print(markdown_table(["op", "ms a step", "% of the step"],
                         [[name, f"{ms:.1f}", f"{100 * ms / step_ms:.1f}"]
                          for name, ms in common.op_times(args.profile, steps=3)[:15]]))

  rate_after = matmul_rates(matmul_dtype, matmul_n, args.matmul_reps, options)
  load_after = common.load_line()
  rate = max(*rate_before.values(), *rate_after.values())

  ours_tps = tokens_per_step / common.Timing(0, ours.times_s).median_s
  header = ["implementation", "median step ms", "spread", "tokens/s", "FLOPs/token", "TFLOP/s", "MFU %",
            "first step s", "ours / this"]
  rows, results, failures = [], [], []
  for c in contenders:
    if c.error:
      failures.append(f"- {c.name} failed: {c.error}")
      rows.append([c.name, "failed (below)"] + [""] * (len(header) - 2))
      results.append({"name": c.name, "error": c.error})
      continue
    t = common.Timing(c.first_s, c.times_s)
    tps = tokens_per_step / t.median_s
    achieved = flops_per_token * tps
    rows.append([c.name, f"{1e3 * t.median_s:.1f}", t.spread, f"{tps:,.0f}", common.si(flops_per_token),
                 f"{achieved / 1e12:.4f}", f"{100 * achieved / rate:.1f}", f"{c.first_s:.1f}",
                 f"{ours_tps / tps:.2f}x"])
    results.append({"name": c.name, "median_step_s": t.median_s, "tokens_per_s": tps, "flop_per_s": achieved,
                    "mfu": achieved / rate, "first_step_s": c.first_s, "times_s": c.times_s,
                    "ours_over_this": ours_tps / tps})

  print()
  print(markdown_table(header, rows))
  print()
  if failures:
    print("\n".join(failures))
  print(f"- matmul rate: {rate / 1e12:.4f} TFLOP/s ({matmul_n}^3 {matmul_dtype}: XLA, and MKL where our step uses it; "
        f"before the steps {format_rates(rate_before)}, after {format_rates(rate_after)}; MFU uses the highest); "
        f"at the end {load_after}")
  torch_rate = _torch_matmul_rate(matmul_n, matmul_dtype, modes, contenders, args.matmul_reps)
  if torch_rate:
    print(f"- PyTorch's matmul rate, same shape (for reference): {torch_rate / 1e12:.4f} TFLOP/s")
  if args.matmuls_alone and not alone.error:
    alone_s = common.Timing(0, alone.times_s).median_s
    ours_s = common.Timing(0, ours.times_s).median_s
    flops = matmul_flops(alone_eqns)
    print(f"- {MATMULS_ALONE}: the {matmul_count(alone_eqns)} matmuls of our step ({flops / 1e9:.2f} GFLOP), nothing else, "
          f"in one program (`matmuls_alone`): {1e3 * alone_s:.1f} ms, {flops / alone_s / 1e12:.4f} TFLOP/s. "
          f"Our step spends {1e3 * (ours_s - alone_s):.1f} ms ({100 * (1 - alone_s / ours_s):.0f}%) more on everything "
          "else; no step made of these matmul kernels runs faster than this row")
  print(f"- FLOPs/token = 6 x {common.matmul_params(cfg):,} matmul parameters + 12 x {cfg.num_layers} layers x "
        f"{cfg.d_model} x {args.seq} seq (PaLM); per step {flops_per_token * tokens_per_step / 1e9:.2f} GFLOP, "
        f"XLA's cost analysis of our step {xla_flops / 1e9:.2f} GFLOP")
  print(f"- ours: {args.rounds} rounds x {args.steps} steps after compilation ({compile_s:.1f}s) and "
        f"{args.warmup} warm-up steps; synthetic batch, one segment per row; attention blocks of "
        f"{min(args.seq, attention.attention_block(args.seq, cfg.attention_block))}"
        + (f"; XLA options {options}" if options else "; XLA's default options"))
  if modes:
    try:
      import torch
      print(f"- PyTorch {torch.__version__}, {torch.get_num_threads()} threads, AdamW {args.torch_adamw}")
    except ImportError:
      pass
  print("- " + targets(results, cfg, args))

  summary = {"config": {**dataclasses.asdict(cfg), "seq": args.seq, "batch": args.batch},
             "device": common.device_line(), "host_memory": args.memory, "matmul_flop_per_s": rate,
             "matmul_before": rate_before, "matmul_after": rate_after, "flops_per_token": flops_per_token,
             "xla_flops_per_step": xla_flops, "results": results}
  if args.json:
    with open(args.json, "w") as f:
      json.dump(summary, f, indent=1)
  return summary


def matmul_rates(dtype: str, n: int, reps: int, options: dict) -> dict[str, float]:
  """The matmul rate compiled with XLA's defaults, with our step's options (if any), and through
  the model's MKL custom call where our step uses it (`cpu_blas`)."""
  rates = {"XLA defaults": common.matmul_rate(dtype, n, reps)[0]}
  if options:
    rates["our options"] = common.matmul_rate(dtype, n, reps, options)[0]
  if cpu_blas.uses_mkl(jax.ShapeDtypeStruct((n, n), dtype)):
    rates["MKL"] = common.matmul_rate(dtype, n, reps, mkl=True)[0]
  return rates


def format_rates(rates: dict[str, float]) -> str:
  return ", ".join(f"{rate / 1e12:.4f} TFLOP/s ({name})" for name, rate in rates.items())


MATMULS_ALONE = "bound: our step's matmuls alone"


REFERENCE = dict(zip(("num_layers", "d_model", "num_heads", "mlp_dim"), common.SIZES["reference"]),
                 vocab_size=common.BYTE_VOCAB_SIZE)


def targets(results: list[dict], cfg, args) -> str:
  """The issue's targets: on CPU, reference config, ours >= 1.3x PyTorch eager tokens/s and MFU >= 60%."""
  ours = results[0]
  eager = next((r for r in results if r["name"] == torch_label("eager") and "error" not in r), None)
  is_reference = (all(getattr(cfg, k) == v for k, v in REFERENCE.items()) and args.seq == 256 and args.batch == 32
                  and cfg.dtype == "float32" and jax.default_backend() == "cpu")
  where = "this run" + ("" if is_reference else " (not the reference config on CPU: targets not binding)")
  parts = [f"MFU {100 * ours['mfu']:.1f}% (target >= 60%: {'met' if ours['mfu'] >= 0.6 else 'missed'})"]
  if eager:
    ratio = eager["ours_over_this"]
    bound = next((f"; the matmuls alone run at {ratio / r['ours_over_this']:.2f}x PyTorch eager's step, the most "
                  "any step of these kernels could reach)" for r in results if r["name"] == MATMULS_ALONE
                  and "error" not in r), ")")
    parts.insert(0, f"ours / PyTorch eager {ratio:.2f}x (target >= 1.3x: {'met' if ratio >= 1.3 else 'missed'}"
                 + bound)
  return f"targets, {where}: " + "; ".join(parts)


def _torch_matmul_rate(n, dtype, modes, contenders, reps):
  usable = [c for c in contenders[1:] if not c.error]
  if not modes or not usable:
    return None
  from benchmarks import torch_model
  return torch_model.matmul_rate(n, dtype, usable[0].step.device, reps)


if __name__ == "__main__":
  main()
