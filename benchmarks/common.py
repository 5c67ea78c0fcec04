"""What both benchmarks share: the model flags, synthetic batches, FLOP counting, timing,
the device's measured matmul rate, and the trainer's optimizer and loss.

Nothing here imports `scratchpad.config`, `scratchpad.train.trainer` or `scratchpad.tasks`:
those pull in seqio and TensorFlow, which GPU machines may lack. The model, its size
presets, the optimizer and the loss come from `scratchpad.model` and `scratchpad.train.optim`,
which need only jax and optax.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import glob
import gzip
import json
import os
import statistics
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from scratchpad import host
from scratchpad.model import cpu_blas, transformer
from scratchpad.train import host_memory

# The byte vocabulary (scratchpad.tasks.vocabulary): 256 bytes + 6 special ids = 262,
# padded to a multiple of 8 as `scratchpad.config.padded_vocab_size` does.
BYTE_VOCAB_SIZE = 264
NUM_SPECIAL = 6

# The package's size presets, and the reference config: 4 layers, width 256, 4 heads, MLP 1024.
SIZES = {**transformer.SIZES, "reference": (4, 256, 4, 1024)}


# --------------------------------------------------------------------------- model flags

def add_model_flags(parser: argparse.ArgumentParser, default_size: str = "reference") -> None:
  g = parser.add_argument_group("model")
  g.add_argument("--size", default=default_size, choices=sorted(SIZES),
                 help="a preset (layers, d_model, heads, mlp_dim); the flags below override it")
  g.add_argument("--layers", type=int)
  g.add_argument("--d_model", type=int)
  g.add_argument("--heads", type=int)
  g.add_argument("--mlp_dim", type=int)
  g.add_argument("--vocab", type=int, default=BYTE_VOCAB_SIZE, help="padded vocabulary (bytes: 264)")
  g.add_argument("--dtype", default=None, choices=transformer.DTYPES,
                 help="compute dtype (parameters stay float32); default float32 on CPU, bfloat16 on GPU/TPU")
  g.add_argument("--remat", default="none", choices=tuple(transformer.REMAT_POLICIES),
                 help="model.remat: what each block keeps for the backward pass")
  g.add_argument("--scan_layers", action="store_true", help="model.scan_layers: the blocks under one lax.scan")


def add_host_memory_flag(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--host_memory", default="keep", choices=("keep", "default"),
                      help="keep: as the trainer runs, a CPU step's memory kept mapped between steps "
                           "(scratchpad.train.host_memory), for every contender in the process; "
                           "default: glibc's and JAX's defaults")


def set_host_memory(args) -> str:
  """Applies --host_memory (before JAX starts its backends); returns it in words."""
  if args.host_memory == "keep" and host_memory.keep():
    return "host memory kept between steps (glibc no mmap/trim, JAX CPU dispatch on the caller)"
  return "glibc's and JAX's default host memory"


def model_config(args) -> transformer.ModelConfig:
  layers, d_model, heads, mlp = SIZES[args.size]
  block = getattr(args, "attention_block", None)
  block = 0 if block is None else block or 1 << 30  # --attention_block=0: the whole row one block
  return transformer.ModelConfig(
      vocab_size=args.vocab, num_layers=args.layers or layers, d_model=args.d_model or d_model,
      num_heads=args.heads or heads, mlp_dim=args.mlp_dim or mlp, position_encoding="rope",
      dtype=args.dtype or default_dtype(), attention=getattr(args, "attention", "auto"),
      attention_block=block,
      remat=args.remat, scan_layers=args.scan_layers)


def default_dtype() -> str:
  return "float32" if jax.default_backend() == "cpu" else "bfloat16"


def describe(cfg: transformer.ModelConfig) -> str:
  return (f"{cfg.num_layers} layers, d_model {cfg.d_model}, {cfg.num_heads} heads (head {cfg.head_dim}), "
          f"mlp {cfg.mlp_dim}, vocab {cfg.vocab_size}, RoPE, {cfg.dtype}, remat {cfg.remat}"
          f"{', scanned layers' if cfg.scan_layers else ''}; "
          f"{transformer.param_count(cfg):,} parameters")


def device_line() -> str:
  d = jax.devices()[0]
  kind = getattr(d, "device_kind", d.platform)
  cores = ""
  if d.platform == "cpu":
    cores = f", {os.cpu_count()} logical cores, {host.cpu_model()}"
  return f"{d.platform} ({kind}{cores}) x{jax.device_count()}; jax {jax.__version__}"


def load_line() -> str:
  """The 1-minute load average against the cores: a busy machine makes every timing here noisy."""
  try:
    return f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
  except OSError:
    return "load average unknown"


# --------------------------------------------------------------------------- FLOPs

# The architecture's FLOPs live with the model (the `compile` command counts them too).
matmul_params = transformer.matmul_params
train_flops_per_token = transformer.train_flops_per_token
forward_flops_per_token = transformer.forward_flops_per_token


# --------------------------------------------------------------------------- timing

@dataclasses.dataclass
class Timing:
  first_s: float  # the first call: tracing + compilation + one run
  times_s: list[float]  # each timed call after the warm-up

  @property
  def median_s(self) -> float:
    return statistics.median(self.times_s)

  @property
  def spread(self) -> str:
    """min-max of the timed calls, as a fraction of the median."""
    lo, hi = min(self.times_s), max(self.times_s)
    return f"{lo / self.median_s:.2f}-{hi / self.median_s:.2f}x"


def time_calls(fn: Callable[[], object], warmup: int, steps: int, sync: Callable[[object], object]) -> Timing:
  """Calls `fn` once (compilation), `warmup` more times, then `steps` timed times; each
  call is timed to `sync(result)`, which must wait for the device (block_until_ready)."""
  start = time.perf_counter()
  sync(fn())
  first = time.perf_counter() - start
  for _ in range(warmup):
    sync(fn())
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    sync(fn())
    times.append(time.perf_counter() - start)
  return Timing(first, times)


def matmul_rate(dtype: str, n: int, reps: int = 10, compiler_options: dict | None = None,
                mkl: bool = False) -> tuple[float, Timing]:
  """FLOP/s of a jitted n x n x n matmul in `dtype` (float32 accumulation), median of `reps`.

  The operands stay on the device; the output is a fresh buffer each call. This is the
  device's dense-matmul rate as XLA delivers it here (with `compiler_options`, if any), or with
  `mkl` as the model's MKL custom call does (`cpu_blas`, float32): the denominator of our MFU."""
  a = jax.random.normal(jax.random.key(1), (n, n), jnp.float32).astype(dtype)
  b = jax.random.normal(jax.random.key(2), (n, n), jnp.float32).astype(dtype)
  product = cpu_blas.mkl_or_xla_matmul if mkl else functools.partial(jnp.matmul, preferred_element_type=jnp.float32)
  matmul = jax.jit(product, compiler_options=compiler_options or None)
  timing = time_calls(lambda: matmul(a, b), warmup=2, steps=reps, sync=jax.block_until_ready)
  return 2 * n ** 3 / timing.median_s, timing


def op_times(trace_dir: str, steps: int) -> list[tuple[str, float]]:
  """(op, ms a step) from the newest perfetto trace under `trace_dir`, most time first.

  Events of the executable's ops only (XLA fusions, dots, copies...), summed by name; on CPU an
  op's event covers its work, except Eigen matmuls, which run asynchronously, so their time
  shows up under the ops that wait for them."""
  paths = sorted(glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True), key=os.path.getmtime)
  if not paths:
    return []
  with gzip.open(paths[-1]) as f:
    trace = json.load(f)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  total = collections.Counter()
  for e in events:
    name = e.get("name", "")
    if e.get("ph") == "X" and not name.startswith(("$", "Thunk", "Pjit", "Common", "Parse", "Slinky")):
      total[name] += e.get("dur", 0) / 1e3 / steps
  return total.most_common()


def default_matmul_size() -> int:
  return 2048 if jax.default_backend() == "cpu" else 8192


# --------------------------------------------------------------------------- data

def synthetic_batch(batch: int, seq: int, vocab: int, seed: int = 0) -> dict[str, np.ndarray]:
  """One batch of the model's features: random non-special byte ids, one segment per row
  (segment id 1 everywhere, positions 0..seq-1), every position a target.

  The model still builds its packed-segment mask (the cost does not depend on the ids);
  the PyTorch model, given the same single segment per row, uses a plain causal mask."""
  rng = np.random.default_rng(seed)
  tokens = rng.integers(NUM_SPECIAL, min(vocab, 256 + NUM_SPECIAL), size=(batch, seq + 1), dtype=np.int32)
  ones = np.ones((batch, seq), np.int32)
  return {
      "decoder_input_tokens": tokens[:, :-1].copy(),
      "decoder_target_tokens": tokens[:, 1:].copy(),
      "decoder_loss_weights": ones,
      "decoder_segment_ids": ones.copy(),
      "decoder_positions": np.broadcast_to(np.arange(seq, dtype=np.int32), (batch, seq)).copy(),
  }


# --------------------------------------------------------------------------- optimizer and loss

@dataclasses.dataclass(frozen=True)
class TrainHParams:
  """`scratchpad.config.base_config`'s `train` section, the fields the optimizer reads."""
  steps: int = 5000
  learning_rate: float = 3e-3
  warmup_steps: int = 100
  final_lr_fraction: float = 0.1
  weight_decay: float = 0.01
  grad_clip: float = 1.0
  b1: float = 0.9
  b2: float = 0.98
  ema_decay: float = 0.0  # no parameter average: the step the trainer runs by default


# --------------------------------------------------------------------------- printing

def si(x: float, digits: int = 3) -> str:
  """1234567 -> '1.23M'."""
  for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
    if abs(x) >= scale:
      return f"{x / scale:.{digits}g}{unit}"
  return f"{x:.{digits}g}"
