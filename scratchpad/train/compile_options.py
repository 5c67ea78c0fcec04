"""XLA compiler options for the training step, per backend.

On CPU, XLA hands its matmuls to YNNPACK by default; for this model's shapes (token-flattened
matmuls contracting 256-1024, attention's batched 256 x 64 ones) its Eigen path is faster
(benchmarks/NOTES.md, change 2). Decoding gains nothing from it, so only the training step is
compiled with them.
`SCRATCHPAD_XLA_DEFAULTS=1` keeps XLA's own defaults (to compare, or where YNNPACK wins).
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp

BACKEND_OPTIONS = {
    "cpu": {"xla_cpu_experimental_ynn_fusion_type": ""},  # no YNNPACK fusions: Eigen dots
}


def train_step(backend: str) -> dict[str, str]:
  """The options to compile the training step with on `backend` ({} for XLA's defaults)."""
  if os.environ.get("SCRATCHPAD_XLA_DEFAULTS", "") not in ("", "0"):
    return {}
  return dict(_known(backend))


@functools.cache
def _known(backend: str) -> tuple:
  """BACKEND_OPTIONS[backend] if this jaxlib knows them (they are experimental), else ()."""
  options = BACKEND_OPTIONS.get(backend, {})
  if not options:
    return ()
  try:
    x = jax.device_put(jnp.zeros(()), jax.local_devices(backend=backend)[0])
    jax.jit(lambda x: x + 1, compiler_options=options).lower(x).compile()
  except Exception:  # noqa: BLE001 - an unknown option is an INVALID_ARGUMENT at compile time
    return ()
  return tuple(options.items())
