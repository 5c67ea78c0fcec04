"""Matrix multiplies and causal attention on CPU through Intel MKL: XLA FFI custom calls, used
where they can be.

XLA's CPU backend runs two kinds of this model's matmuls far below the machine's rate: the weight
gradients, which contract all the tokens of a batch into a small matrix, and attention's batched
matmuls of one head's block each; MKL's sgemm runs the same shapes faster (benchmarks/NOTES.md,
change 18).

`mkl_or_xla_matmul(a, b, transpose_a, transpose_b)` is op(a) @ op(b) over leading batch dimensions. It
calls MKL when all of these hold, and is an XLA dot otherwise, with the same result to float32
rounding:
  * the product is at least `MIN_FLOPS` (16.8M FLOPs; a decoding step's are smaller);
  * the packages `mkl` and `mkl-include` are installed (`pip install -e '.[cpu-blas]'`) and a C++
    compiler (`c++`, or `$CXX`) builds `cpu_blas.cc` against them and jaxlib's FFI headers; the
    library is built once per source, jaxlib and MKL and kept in `$SCRATCHPAD_CACHE`
    (default `~/.cache/scratchpad`);
  * JAX's default backend is the CPU with one device: a custom call has no partitioning rules, so
    under a mesh of several devices XLA would gather its operands onto each one;
  * both operands are float32;
  * `SCRATCHPAD_CPU_BLAS` is not `0`.
Its gradient is a custom VJP made of the same matmuls, so the backward pass runs in MKL too.

`causal_attention(q, k, v, segment_ids, block)` is causal self-attention within packed segments,
fused: one custom call for the forward pass and one for the backward pass, with
`attention.causal_block_attention`'s result to float32 rounding; `model.attention=cpu_fused` (or
`auto` where this host measured it faster, `attention.py`) calls it under the same conditions
(benchmarks/NOTES.md, change 19).
"""

from __future__ import annotations

import ctypes
import functools
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

import jax
import jax.numpy as jnp
import numpy as np

_SOURCE = os.path.join(os.path.dirname(__file__), "cpu_blas.cc")
TARGET = "scratchpad_cpu_blas_matmul"  # the custom calls' names in jaxprs and HLO
ATTENTION_TARGET = "scratchpad_cpu_blas_causal_attention"
ATTENTION_BACKWARD_TARGET = "scratchpad_cpu_blas_causal_attention_backward"
# Smaller products stay XLA's: its dots of a decoding step's few tokens beat a custom call's
# overhead (the KV-cache decode benchmark ran 1.3x slower with every matmul in MKL).
MIN_FLOPS = 1 << 24


def mkl_or_xla_matmul(a, b, transpose_a: bool = False, transpose_b: bool = False):
  """op(a) @ op(b): a [..., M, K] (or [..., K, M] transposed), b [..., K, N] (or [..., N, K]),
  the same leading batch dimensions on both; returns [..., M, N]."""
  if a.shape[:-2] != b.shape[:-2]:
    raise ValueError(f"mkl_or_xla_matmul: batch dimensions differ: {a.shape} and {b.shape}")
  m, n, k = sizes(a.shape, b.shape, transpose_a, transpose_b)
  if 2 * np.prod(a.shape[:-2], dtype=np.int64) * m * n * k >= MIN_FLOPS and uses_mkl(a, b):
    return _mkl_matmul(a, b, transpose_a, transpose_b)
  return jnp.matmul(jnp.swapaxes(a, -1, -2) if transpose_a else a, jnp.swapaxes(b, -1, -2) if transpose_b else b)


def causal_attention(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, segment_ids_BxL, block: int):
  """`attention.causal_block_attention`'s result in one fused custom call, when `uses_mkl(q, k, v)`.

  Each (batch row, head) is one task: its queries by blocks of `block`, each block's logits,
  softmax and weighted values computed while they are in cache (the backward pass recomputes the
  probabilities from per-query statistics, as flash attention does). q, k, v and the result are
  [B, L, H, K], the projections' layout, so no transposes are needed around it."""
  return _mkl_attention(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, segment_ids_BxL.astype(jnp.int32), int(block))


def attention_products(shape_BxLxHxK, block: int, backward: bool) -> list[tuple[tuple, tuple, bool, bool]]:
  """The matrix products inside one `causal_attention` custom call (forward or backward) of
  q [B, L, H, K], as `matmul` operands (a shape, b shape, transpose_a, transpose_b), batched over
  (batch, head): per query block, the logits q k^T and the weighted values P v; the backward pass
  recomputes the logits, then dV = P^T dO, dP = dO v^T, dQ = dS k and dK = dS^T q. (For the
  benchmark's bound and FLOP count: the kernel runs them one (b, h) at a time.)"""
  batch, length, heads, dim = shape_BxLxHxK
  n, block = batch * heads, min(block, max(length, 1))
  products = []
  for q0 in range(0, length, block):
    rows, keys = min(block, length - q0), min(q0 + block, length)
    logits = ((n, rows, dim), (n, keys, dim), False, True)
    if backward:
      products += [logits, ((n, rows, keys), (n, rows, dim), True, False), ((n, rows, dim), (n, keys, dim), False, True),
                   ((n, rows, keys), (n, keys, dim), False, False), ((n, rows, keys), (n, rows, dim), True, False)]
    else:
      products += [logits, ((n, rows, keys), (n, keys, dim), False, False)]
  return products


def sizes(a_shape, b_shape, transpose_a: bool, transpose_b: bool) -> tuple[int, int, int]:
  """(M, N, K) of op(a) @ op(b), from the operands' shapes."""
  m, k = (a_shape[-1], a_shape[-2]) if transpose_a else (a_shape[-2], a_shape[-1])
  return m, (b_shape[-2] if transpose_b else b_shape[-1]), k


def uses_mkl(*arrays) -> bool:
  """Whether `matmul` of these operands (for a product of `MIN_FLOPS`), or `causal_attention`,
  traced now, calls MKL."""
  return (all(x.dtype == jnp.float32 for x in arrays) and os.environ.get("SCRATCHPAD_CPU_BLAS", "") != "0"
          and _one_cpu_device() and available())


def _one_cpu_device() -> bool:
  """A custom call has no partitioning rules: on several devices XLA would gather its operands."""
  return jax.default_backend() == "cpu" and jax.device_count() == 1


def available() -> bool:
  """Whether the MKL custom call is built and registered (building it on the first call)."""
  return _registered() is None


def status() -> str:
  """One line for logs and benchmark headers."""
  reason = _registered()
  if reason is None:
    return "MKL matmuls and attention (cpu_blas)" + ("" if _one_cpu_device() else ": not on this backend or mesh")
  return f"XLA matmuls and attention ({reason})"


# --------------------------------------------------------------------------- the custom call

@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _mkl_matmul(a, b, transpose_a, transpose_b):
  m, n, k = sizes(a.shape, b.shape, transpose_a, transpose_b)
  out = jax.ShapeDtypeStruct((*a.shape[:-2], m, n), jnp.float32)
  return jax.ffi.ffi_call(TARGET, out)(a, b, m=np.int64(m), n=np.int64(n), k=np.int64(k),
                                        transpose_a=bool(transpose_a), transpose_b=bool(transpose_b))


def _mkl_matmul_fwd(a, b, transpose_a, transpose_b):
  return _mkl_matmul(a, b, transpose_a, transpose_b), (a, b)


def _mkl_matmul_bwd(transpose_a, transpose_b, residuals, dc):
  """C = A B with A = op(a), B = op(b): dA = dC B^T and dB = A^T dC, each again one matmul of the
  stored operands, transposed as their layout needs."""
  a, b = residuals
  if transpose_a:  # da = dA^T = B dC^T
    da = _mkl_matmul(b, dc, transpose_b, True)
  else:
    da = _mkl_matmul(dc, b, False, not transpose_b)
  if transpose_b:  # db = dB^T = dC^T A
    db = _mkl_matmul(dc, a, True, transpose_a)
  else:
    db = _mkl_matmul(a, dc, not transpose_a, False)
  return da, db


_mkl_matmul.defvjp(_mkl_matmul_fwd, _mkl_matmul_bwd)


def _attention_attributes(q, block):
  return dict(block=np.int64(block), scale=np.float32(q.shape[-1] ** -0.5))


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _mkl_attention(q, k, v, segments, block):
  return _mkl_attention_fwd(q, k, v, segments, block)[0]


def _mkl_attention_fwd(q, k, v, segments, block):
  batch, length, heads, _ = q.shape
  out, stats = jax.ffi.ffi_call(ATTENTION_TARGET, (jax.ShapeDtypeStruct(q.shape, jnp.float32),
                                                   jax.ShapeDtypeStruct((batch, heads, 2, length), jnp.float32)))(
      q, k, v, segments, **_attention_attributes(q, block))
  return out, (q, k, v, segments, out, stats)


def _mkl_attention_bwd(block, residuals, d_out):
  q, k, v, segments, out, stats = residuals
  grad = jax.ShapeDtypeStruct(q.shape, jnp.float32)
  dq, dk, dv = jax.ffi.ffi_call(ATTENTION_BACKWARD_TARGET, (grad, grad, grad))(
      q, k, v, segments, out, stats, d_out, **_attention_attributes(q, block))
  return dq, dk, dv, None


_mkl_attention.defvjp(_mkl_attention_fwd, _mkl_attention_bwd)


@functools.cache
def _registered() -> str | None:
  """Builds and registers the custom call once; None on success, else why not (also warned)."""
  if os.environ.get("SCRATCHPAD_CPU_BLAS", "") == "0":
    return "SCRATCHPAD_CPU_BLAS=0"
  try:
    library = _build()
  except _Unavailable as e:
    return str(e)
  except (OSError, subprocess.SubprocessError) as e:
    detail = getattr(e, "stderr", b"") or b""
    reason = f"building the MKL custom call failed: {e} {detail.decode(errors='replace')[-400:]}".strip()
    warnings.warn(f"cpu_blas: {reason}; XLA does the matmuls", stacklevel=2)
    return reason
  handlers = ctypes.cdll.LoadLibrary(library)
  for target, handler in ((TARGET, handlers.ScratchpadMatmul), (ATTENTION_TARGET, handlers.ScratchpadCausalAttention),
                          (ATTENTION_BACKWARD_TARGET, handlers.ScratchpadCausalAttentionBackward)):
    jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(handler), platform="cpu")
  return None


class _Unavailable(Exception):
  """MKL or a compiler is not installed: the optional path is off, silently."""


def _mkl_paths() -> tuple[str, str]:
  """(the directory of mkl.h, the path of libmkl_rt) of the installed `mkl` packages."""
  prefixes = [sys.prefix, os.path.join(os.path.expanduser("~"), ".local")]
  headers = [p for prefix in prefixes for p in glob.glob(os.path.join(prefix, "include", "mkl.h"))]
  libraries = [p for prefix in prefixes for p in sorted(glob.glob(os.path.join(prefix, "lib", "libmkl_rt.so*")))]
  if not headers or not libraries:
    raise _Unavailable("MKL not installed: pip install -e '.[cpu-blas]'")
  return os.path.dirname(headers[0]), libraries[-1]


def _build() -> str:
  """The path of the built library: from the cache if this source, jaxlib and MKL built it before."""
  compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
  if not compiler:
    raise _Unavailable("no C++ compiler")
  include, library = _mkl_paths()
  with open(_SOURCE, "rb") as f:
    source = f.read()
  flags = ["-O3", "-fopenmp-simd", "-shared", "-fPIC", "-std=c++17", "-w"]
  key = hashlib.sha256(source + f"{flags}|{jax.__version__}|{jax.ffi.include_dir()}|{library}".encode()).hexdigest()[:16]
  cache = os.environ.get("SCRATCHPAD_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "scratchpad")
  path = os.path.join(cache, f"cpu_blas-{key}.so")
  if os.path.exists(path):
    return path
  os.makedirs(cache, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=cache) as tmp:  # built aside, then renamed: never half-written
    built = os.path.join(tmp, "cpu_blas.so")
    subprocess.run([compiler, *flags, "-I", jax.ffi.include_dir(), "-I",
                    include, _SOURCE, "-o", built, f"-L{os.path.dirname(library)}", f"-l:{os.path.basename(library)}",
                    f"-Wl,-rpath,{os.path.dirname(library)}"], check=True, capture_output=True, timeout=300)
    os.replace(built, path)
  return path
