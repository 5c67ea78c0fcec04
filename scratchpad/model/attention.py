"""Causal self-attention over packed rows, one implementation per backend (`model.attention`).

Training and full recomputation call `causal_self_attention`; decoding attends its few new
queries to the cache with `masked_attention`. The implementations:

  xla        query blocks of `attention_block(L)`, each attending to the keys up to its own
             end (the fully masked rest skipped), logits and softmax in float32. Any backend;
             the only one that takes line_bias's bias.
  cpu_fused  the MKL custom call (`cpu_blas.causal_attention`): one fused call forward and one
             backward. One CPU device, float32, `.[cpu-blas]` installed.
  cudnn      cuDNN flash attention through `jax.nn.dot_product_attention(implementation=
             "cudnn")`. bfloat16 or float16; packed rows pass their causal-and-segment mask.
  splash     Pallas splash attention (TPU) with segment ids for packed rows; rows padded to
             its 128-token blocks; under the train step's mesh each device runs it on its own
             rows and heads (shard_map). `SPLASH_INTERPRET`: interpret mode, on CPU.
  auto       `select`: on GPU cudnn (float32 falls back to xla), on TPU splash, on one CPU
             device cpu_fused where this host measured it faster than xla
             (`host_prefers_fused`, cached per host), else xla; xla whenever there is a bias.

Every implementation gives xla's values at every real token, to float32 rounding (bfloat16
for cudnn). Padding queries (segment 0) attend to nothing real: their outputs differ between
implementations and carry no loss.
"""

from __future__ import annotations

import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from scratchpad import errors, files, host
from scratchpad.model import cpu_blas

IMPLEMENTATIONS = ("auto", "xla", "cpu_fused", "cudnn", "splash")
SPLASH_BLOCK = 128  # splash attention's query and key blocks: rows are padded to a multiple
SPLASH_INTERPRET = False  # tests: run the Pallas kernel in interpret mode (any backend)
CALIBRATION_FILE = "attention_calibration.json"  # in $SCRATCHPAD_CACHE, one entry per host


def attention_block(length: int, block: int = 0) -> int:
  """The query block of causal attention over rows of `length`: `block` (`model.attention_block`),
  or by default 64 up to 256 tokens and 128 beyond. On CPU 2-8 blocks a row ran fastest: smaller
  blocks make matmuls too small to run at speed, larger ones skip less (benchmarks/NOTES.md,
  change 10)."""
  return block or (64 if length <= 256 else 128)


# --------------------------------------------------------------------------- choosing one

def select(requested: str, *, backend: str, dtype, num_devices: int, has_bias: bool,
           fused_cpu: bool, fused_cpu_faster: bool) -> str:
  """The implementation `requested` runs as: itself, or `auto`'s choice for a backend
  ("cpu" | "gpu" | "tpu"), compute dtype, device count, whether there is a bias, whether the
  MKL custom call is built (`fused_cpu`) and whether this host measured it faster."""
  if requested not in IMPLEMENTATIONS:
    raise errors.InputError(f"model.attention: want one of {', '.join(IMPLEMENTATIONS)}, got {requested!r}")
  if requested != "auto":
    return requested
  if has_bias:
    return "xla"
  if backend == "gpu":
    return "cudnn" if jnp.dtype(dtype) in (jnp.bfloat16, jnp.float16) else "xla"
  if backend == "tpu":
    return "splash"
  if backend == "cpu" and num_devices == 1 and jnp.dtype(dtype) == jnp.float32 and fused_cpu:
    return "cpu_fused" if fused_cpu_faster else "xla"
  return "xla"


def target() -> tuple[str, int]:
  """The backend and device count a step is traced for: the context mesh's where one is set
  (the train step sets its own; a compile for a TPU slice from this CPU, the slice's), else
  this process's."""
  mesh = jax.sharding.get_abstract_mesh()
  platform = None if mesh.empty else getattr(mesh.abstract_device, "platform", None)
  return (platform, mesh.size) if platform else (jax.default_backend(), jax.device_count())


def resolve(requested: str, dtype, has_bias: bool = False) -> str:
  """`select` for the backend and devices of `target()`: what a run records in its config, so
  a rerun or resume computes with the same implementation."""
  backend, num_devices = target()
  fused = backend == "cpu" and _fused_usable()
  chosen = select(requested, backend=backend, dtype=dtype, num_devices=num_devices, has_bias=has_bias,
                  fused_cpu=fused, fused_cpu_faster=fused and requested == "auto" and host_prefers_fused())
  needs = {"cpu_fused": (fused and jnp.dtype(dtype) == jnp.float32,
                         f"one CPU device, float32 and the MKL custom call ({cpu_blas.status()})"),
           "cudnn": (backend == "gpu", "a GPU"),
           "splash": (backend == "tpu" or SPLASH_INTERPRET, "a TPU")}
  ok, what = needs.get(chosen, (True, ""))
  if not ok:
    raise errors.InputError(f"model.attention={chosen} needs {what}; this is {backend} with {num_devices} "
                            "device(s): use auto or xla")
  return chosen


def _fused_usable() -> bool:
  """Whether the MKL custom call can run here: a CPU backend of one device, MKL built."""
  return jax.default_backend() == "cpu" and cpu_blas.uses_mkl(jax.ShapeDtypeStruct((), jnp.float32))


def host_key() -> str:
  """This host as the calibration knows it: CPU model, cores, jax and jaxlib."""
  import jaxlib
  return f"{host.cpu_model()} | {os.cpu_count()} cores | jax {jax.__version__} | jaxlib {jaxlib.__version__}"


def _calibration_path() -> str:
  return os.path.join(os.environ.get("SCRATCHPAD_CACHE", os.path.expanduser("~/.cache/scratchpad")),
                      CALIBRATION_FILE)


@functools.lru_cache(maxsize=None)
def host_prefers_fused() -> bool:
  """Whether the fused CPU attention ran faster than xla's on this host (`calibrate`), read
  from the cache or measured once and kept there."""
  path, key = _calibration_path(), host_key()
  cached = files.read_json(path) if files.exists(path) else {}
  if key not in cached:
    cached[key] = calibrate()
    files.write_json(path, cached, indent=1)
  return cached[key]["cpu_fused_ms"] < cached[key]["xla_ms"]


def calibrate(shape_BxLxHxK=(8, 512, 8, 16), repeats: int = 5) -> dict:
  """Median milliseconds of one forward and backward pass of causal attention over packed rows
  of `shape` (the addition recipe's), xla against cpu_fused."""
  rng = np.random.default_rng(0)
  q, k, v = (jnp.asarray(rng.normal(size=shape_BxLxHxK), jnp.float32) for _ in range(3))
  segments = jnp.ones(shape_BxLxHxK[:2], jnp.int32)
  times = {}
  for name in ("xla", "cpu_fused"):
    step = jax.jit(jax.grad(lambda q, k, v, name=name: causal_self_attention(q, k, v, segments, name).sum(),
                            argnums=(0, 1, 2)))
    jax.block_until_ready(step(q, k, v))
    runs = []
    for _ in range(repeats):
      start = time.perf_counter()
      jax.block_until_ready(step(q, k, v))
      runs.append(1000 * (time.perf_counter() - start))
    times[f"{name}_ms"] = float(np.median(runs))
  return {**times, "shape": list(shape_BxLxHxK)}


def describe(implementation: str, dtype, has_bias: bool = False) -> str:
  """One line for logs and benchmark headers: what runs, and why."""
  chosen = resolve(implementation, dtype, has_bias)
  if implementation != "auto":
    return f"attention {chosen} (asked for)"
  if chosen == "xla" and _fused_usable():
    return "attention xla (auto: cpu_fused measured slower on this host)"
  if chosen == "cpu_fused":
    return "attention cpu_fused (auto: measured faster than xla on this host)"
  return f"attention {chosen} (auto on {jax.default_backend()})"


# --------------------------------------------------------------------------- the implementations

def attention_mask(q_index_L, k_index_S, segment_ids_BxL, k_segment_BxS):
  """Causal, within one packed segment, never to padding (segment 0): mask_BxLxS."""
  return ((q_index_L[:, None] >= k_index_S[None, :])[None]
          & (segment_ids_BxL[:, :, None] == k_segment_BxS[:, None, :])
          & (k_segment_BxS[:, None, :] != 0))


def masked_attention(q_BxHxLxK, k_BxHxSxK, v_BxHxSxK, mask_BxLxS, bias_BxHxLxS=None):
  """Scaled dot-product attention, the logits and softmax in float32; masked keys get no weight.

  The softmax is normalised after the weighted sum of values, as flash attention does: the
  division runs over L x K, not L x S, and the backward pass's row sums over K, not S.
  `bias_BxHxLxS` (line_bias) is added to the scaled logits."""
  logits_BxHxLxS = cpu_blas.mkl_or_xla_matmul(q_BxHxLxK, k_BxHxSxK, transpose_b=True).astype(jnp.float32)
  logits_BxHxLxS = logits_BxHxLxS * q_BxHxLxK.shape[-1] ** -0.5
  if bias_BxHxLxS is not None:
    logits_BxHxLxS = logits_BxHxLxS + bias_BxHxLxS
  logits_BxHxLxS = jnp.where(mask_BxLxS[:, None], logits_BxHxLxS, -1e30)
  max_BxHxLx1 = jax.lax.stop_gradient(jnp.max(logits_BxHxLxS, axis=-1, keepdims=True))
  unnormalized_BxHxLxS = jnp.exp(logits_BxHxLxS - max_BxHxLx1)  # 0 at masked keys (1 if all are)
  weighted_BxHxLxK = cpu_blas.mkl_or_xla_matmul(unnormalized_BxHxLxS.astype(v_BxHxSxK.dtype), v_BxHxSxK)
  return (weighted_BxHxLxK / jnp.sum(unnormalized_BxHxLxS, axis=-1, keepdims=True)).astype(v_BxHxSxK.dtype)


def causal_block_attention(q_BxHxLxK, k_BxHxLxK, v_BxHxLxK, mask_BxLxL, block: int, bias_fn=None):
  """`masked_attention` for causal self-attention, by query blocks of `block`: keys past a
  block's end are masked for all its queries, so skipping them changes nothing but the work
  (3/4 of it with 2 blocks, 5/8 with 4). `bias_fn(queries, keys)` gives a block's bias."""
  length = q_BxHxLxK.shape[2]
  return jnp.concatenate([
      masked_attention(q_BxHxLxK[:, :, start:start + block], k_BxHxLxK[:, :, :start + block],
                       v_BxHxLxK[:, :, :start + block], mask_BxLxL[:, start:start + block, :start + block],
                       bias_fn and bias_fn(slice(start, start + block), slice(0, start + block)))
      for start in range(0, length, block)], axis=2)


def _xla(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, segment_ids_BxL, bias_fn, block: int):
  length = q_BxLxHxK.shape[1]
  q_BxHxLxK, k_BxHxLxK, v_BxHxLxK = (x.transpose(0, 2, 1, 3) for x in (q_BxLxHxK, k_BxLxHxK, v_BxLxHxK))
  index_L = jnp.arange(length)
  mask_BxLxL = attention_mask(index_L, index_L, segment_ids_BxL, segment_ids_BxL)
  if length > block:
    attended_BxHxLxK = causal_block_attention(q_BxHxLxK, k_BxHxLxK, v_BxHxLxK, mask_BxLxL, block, bias_fn)
  else:
    attended_BxHxLxK = masked_attention(q_BxHxLxK, k_BxHxLxK, v_BxHxLxK, mask_BxLxL,
                                        bias_fn and bias_fn(slice(None), slice(None)))
  return attended_BxHxLxK.transpose(0, 2, 1, 3)


def jax_nn_attention(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, segment_ids_BxL, implementation: str = "cudnn"):
  """`jax.nn.dot_product_attention` (the cudnn path; "xla" runs the same call anywhere) with
  packed rows' mask; jax.nn takes the projections' [B, L, H, K] layout as it is."""
  index_L = jnp.arange(q_BxLxHxK.shape[1])
  mask_Bx1xLxL = attention_mask(index_L, index_L, segment_ids_BxL, segment_ids_BxL)[:, None]
  return jax.nn.dot_product_attention(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, mask=mask_Bx1xLxL,
                                      implementation=implementation)


# The mesh axes of the default logical rules (`config.base_config`: "batch" and "heads").
BATCH_MESH_AXES = ("data", "fsdp")
HEADS_MESH_AXIS = "tensor"


def splash(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, segment_ids_BxL):
  """Pallas splash attention, causal within segments (`SegmentIds`). Under a mesh of several
  devices (the context's, `jax.sharding.get_abstract_mesh`: the train step sets it) each device
  runs the kernel on its own rows and heads (`shard_map`), as MaxText does: a Pallas kernel has
  no partitioning rules, so XLA would otherwise gather every row and head to every device."""
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty or mesh.size == 1:
    return _splash_rows(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, segment_ids_BxL)
  batch, _, heads, _ = q_BxLxHxK.shape
  batch_axes = tuple(a for a in BATCH_MESH_AXES if a in mesh.axis_names and mesh.shape[a] > 1)
  if batch % int(np.prod([mesh.shape[a] for a in batch_axes])):
    batch_axes = ()
  split_heads = HEADS_MESH_AXIS in mesh.axis_names and heads % mesh.shape[HEADS_MESH_AXIS] == 0
  rows = batch_axes or None
  spec_BxLxHxK = jax.sharding.PartitionSpec(rows, None, HEADS_MESH_AXIS if split_heads else None, None)
  spec_BxL = jax.sharding.PartitionSpec(rows, None)
  return jax.shard_map(_splash_rows, mesh=mesh, in_specs=(spec_BxLxHxK,) * 3 + (spec_BxL,),
                       out_specs=spec_BxLxHxK, check_vma=False)(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, segment_ids_BxL)


def _splash_rows(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, segment_ids_BxL):
  """The splash kernel on one device's rows, a row at a time (vmap); rows padded to
  `SPLASH_BLOCK` with segment 0."""
  from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as kernels
  from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as masks
  batch, length, heads, dim = q_BxLxHxK.shape
  padded = -(-length // SPLASH_BLOCK) * SPLASH_BLOCK
  pad = lambda x: jnp.pad(x, [(0, 0), (0, padded - length)] + [(0, 0)] * (x.ndim - 2))
  q_BxHxLxK, k_BxHxLxK, v_BxHxLxK = (pad(x).transpose(0, 2, 1, 3) for x in (q_BxLxHxK, k_BxLxHxK, v_BxLxHxK))
  segments_BxL = pad(segment_ids_BxL.astype(jnp.int32))
  blocks = {name: min(SPLASH_BLOCK, padded) for name in (
      "block_q", "block_kv", "block_kv_compute", "block_q_dkv", "block_kv_dkv", "block_kv_dkv_compute",
      "block_q_dq", "block_kv_dq")}
  kernel = kernels.make_splash_mha(masks.MultiHeadMask([masks.CausalMask((padded, padded))] * heads),
                                   block_sizes=kernels.BlockSizes(**blocks), head_shards=1, q_seq_shards=1,
                                   interpret=SPLASH_INTERPRET)
  row = lambda q, k, v, s: kernel(q * dim ** -0.5, k, v, segment_ids=kernels.SegmentIds(q=s, kv=s))
  attended_BxHxLxK = jax.vmap(row)(q_BxHxLxK, k_BxHxLxK, v_BxHxLxK, segments_BxL)
  return attended_BxHxLxK.transpose(0, 2, 1, 3)[:, :length].astype(q_BxLxHxK.dtype)


def causal_self_attention(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, segment_ids_BxL, implementation: str = "xla",
                          bias_fn=None, block: int = 0):
  """Attention of each token to itself and the tokens before it in its packed segment
  (training, full recomputation), in the projections' [B, L, H, K] layout, by
  `implementation` (`auto` resolved here, at trace time). `bias_fn(queries, keys)`: line_bias.
  `block`: the query block of xla and cpu_fused (0: `attention_block`'s by length)."""
  block = attention_block(q_BxLxHxK.shape[1], block)
  chosen = resolve(implementation, q_BxLxHxK.dtype, bias_fn is not None)
  if bias_fn is not None and chosen != "xla":
    raise errors.InputError(f"model.attention={implementation}: line_bias's bias needs xla attention")
  if chosen == "cpu_fused":
    return cpu_blas.causal_attention(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, segment_ids_BxL, block)
  if chosen == "cudnn":
    return jax_nn_attention(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, segment_ids_BxL, "cudnn")
  if chosen == "splash":
    return splash(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, segment_ids_BxL)
  return _xla(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, segment_ids_BxL, bias_fn, block)
