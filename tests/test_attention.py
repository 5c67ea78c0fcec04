"""Training attention's implementations (scratchpad.model.attention): each gives xla's values and
gradients on packed rows with padding, `auto` picks per backend, and a run records its choice."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scratchpad import config as config_lib
from scratchpad.model import attention
from scratchpad.train import run_config


def _packed_rows(seed, batch=2, length=40, heads=2, dim=16):
  """q, k, v, a probe of the output and segments: row 0 three packed segments, row 1 two and
  right padding."""
  rng = np.random.default_rng(seed)
  q, k, v, probe = (jnp.asarray(rng.normal(size=(batch, length, heads, dim)), jnp.float32) for _ in range(4))
  segments = np.ones((batch, length), np.int32)
  segments[0, 11:], segments[0, 30:] = 2, 3
  segments[1, 17:], segments[1, 33:] = 2, 0
  return q, k, v, probe * jnp.asarray(segments != 0)[:, :, None, None], jnp.asarray(segments)


def _values_and_grads(fn, q, k, v, probe, segments):
  out, vjp = jax.vjp(lambda q, k, v: fn(q, k, v, segments), q, k, v)
  return out, vjp(probe)


def _assert_same(got, want, real, rtol, atol):
  (out, grads), (want_out, want_grads) = got, want
  np.testing.assert_allclose(out[real], want_out[real], rtol=rtol, atol=atol)
  for g, w in zip(grads, want_grads):
    np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


@pytest.mark.parametrize("seed", [0, 1])
def test_jax_nn_attention_equals_xla_on_packed_rows(seed):
  """The cudnn implementation's call (jax.nn.dot_product_attention with the packed rows' mask),
  run here through jax.nn's own XLA path: values at real tokens and every gradient."""
  q, k, v, probe, segments = _packed_rows(seed)
  want = jax.jit(lambda *a: _values_and_grads(
      lambda q, k, v, s: attention.causal_self_attention(q, k, v, s, "xla"), *a))(q, k, v, probe, segments)
  got = jax.jit(lambda *a: _values_and_grads(
      lambda q, k, v, s: attention.jax_nn_attention(q, k, v, s, "xla"), *a))(q, k, v, probe, segments)
  _assert_same(got, want, np.asarray(segments) != 0, rtol=1e-5, atol=1e-5)


def test_splash_attention_equals_xla_on_packed_rows(monkeypatch):
  """Pallas splash attention in interpret mode, with segment ids and rows padded to its blocks."""
  monkeypatch.setattr(attention, "SPLASH_INTERPRET", True)
  q, k, v, probe, segments = _packed_rows(2, length=150)  # two splash blocks, the second part padding
  want = _values_and_grads(lambda q, k, v, s: attention.causal_self_attention(q, k, v, s, "xla"),
                           q, k, v, probe, segments)
  got = _values_and_grads(lambda q, k, v, s: attention.causal_self_attention(q, k, v, s, "splash"),
                          q, k, v, probe, segments)
  _assert_same(got, want, np.asarray(segments) != 0, rtol=1e-4, atol=1e-5)


def test_splash_attention_under_a_mesh_runs_per_shard_and_equals_xla(monkeypatch):
  """Under the train step's mesh (rows over data x fsdp, heads over tensor) splash runs inside
  shard_map, each device on its own shard, with xla's values and gradients."""
  from jax.sharding import NamedSharding, PartitionSpec as P
  from scratchpad.train import sharding
  monkeypatch.setattr(attention, "SPLASH_INTERPRET", True)
  mesh = sharding.make_mesh((2, 2, 2))
  q, k, v, probe, segments = _packed_rows(3, batch=4, length=150)
  rows_BxLxHxK, rows_BxL = NamedSharding(mesh, P(("data", "fsdp"), None, "tensor")), NamedSharding(mesh, P(("data", "fsdp")))
  step = lambda name: jax.jit(sharding.under_mesh(lambda *a: _values_and_grads(
      lambda q, k, v, s: attention.causal_self_attention(q, k, v, s, name), *a), mesh),
      in_shardings=(rows_BxLxHxK,) * 4 + (rows_BxL,))
  assert "shard_map" in str(step("splash").trace(q, k, v, probe, segments).jaxpr)
  got, want = step("splash")(q, k, v, probe, segments), step("xla")(q, k, v, probe, segments)
  _assert_same(got, want, np.asarray(segments) != 0, rtol=1e-4, atol=1e-5)


def test_the_target_is_the_context_meshs_backend_and_size():
  """What `auto` chooses for: the mesh a step is traced under (a TPU slice compiled from this
  CPU included), else this process's devices."""
  from scratchpad.train import sharding
  assert attention.target() == ("cpu", jax.device_count()) == ("cpu", 8)
  mesh = sharding.make_mesh((2, 1, 1), jax.devices()[:2])
  with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
    assert attention.target() == ("cpu", 2)


@pytest.mark.parametrize("backend, dtype, devices, bias, fused, faster, want", [
    ("gpu", jnp.bfloat16, 8, False, False, False, "cudnn"),
    ("gpu", jnp.float16, 1, False, False, False, "cudnn"),
    ("gpu", jnp.float32, 1, False, False, False, "xla"),  # cuDNN's flash attention takes 16-bit floats
    ("tpu", jnp.bfloat16, 256, False, False, False, "splash"),
    ("tpu", jnp.float32, 8, False, False, False, "splash"),
    ("cpu", jnp.float32, 1, False, True, True, "cpu_fused"),
    ("cpu", jnp.float32, 1, False, True, False, "xla"),  # measured slower on this host
    ("cpu", jnp.float32, 1, False, False, False, "xla"),  # no MKL build
    ("cpu", jnp.float32, 8, False, True, True, "xla"),  # a custom call has no partitioning rules
    ("cpu", jnp.bfloat16, 1, False, True, True, "xla"),
    ("gpu", jnp.bfloat16, 1, True, False, False, "xla"),  # line_bias
    ("cpu", jnp.float32, 1, True, True, True, "xla"),
])
def test_auto_picks_per_backend(backend, dtype, devices, bias, fused, faster, want):
  assert attention.select("auto", backend=backend, dtype=dtype, num_devices=devices, has_bias=bias,
                          fused_cpu=fused, fused_cpu_faster=faster) == want
  assert attention.select("xla", backend=backend, dtype=dtype, num_devices=devices, has_bias=bias,
                          fused_cpu=fused, fused_cpu_faster=faster) == "xla"


def test_an_implementation_this_backend_lacks_is_a_one_line_error():
  with pytest.raises(ValueError, match=r"^model.attention=cudnn needs a GPU; this is cpu"):
    attention.resolve("cudnn", jnp.float32)
  with pytest.raises(ValueError, match=r"^model.attention=cpu_fused needs one CPU device"):
    attention.resolve("cpu_fused", jnp.float32)  # the tests' platform has 8 devices
  with pytest.raises(ValueError, match="want one of auto, xla"):
    attention.select("flash", backend="cpu", dtype=jnp.float32, num_devices=1, has_bias=False,
                     fused_cpu=False, fused_cpu_faster=False)


def test_the_host_calibration_is_read_from_its_cache(tmp_path, monkeypatch):
  """A host measured once keeps its answer: the cached entry decides, nothing is re-measured."""
  monkeypatch.setenv("SCRATCHPAD_CACHE", str(tmp_path))
  monkeypatch.setattr(attention, "calibrate", lambda: pytest.fail("measured again"))
  for xla_ms, fused_ms, prefers in ((10.0, 7.0, True), (10.0, 12.0, False)):
    (tmp_path / attention.CALIBRATION_FILE).write_text(json.dumps(
        {attention.host_key(): {"xla_ms": xla_ms, "cpu_fused_ms": fused_ms}}))
    attention.host_prefers_fused.cache_clear()
    assert attention.host_prefers_fused() is prefers
  attention.host_prefers_fused.cache_clear()


def test_a_run_records_its_implementation_and_a_resume_keeps_it(tmp_path):
  cfg = config_lib.base_config("digit_sum", "nano", {})
  assert cfg.model.attention == "auto"
  run_config.record_attention(cfg, str(tmp_path))
  assert cfg.model.attention == "xla"  # 8 CPU devices here
  recorded = config_lib.base_config("digit_sum", "nano", {})
  recorded.model.attention = "splash"  # as a TPU run would have written it
  run_config.save_config(recorded, str(tmp_path))
  resumed = config_lib.base_config("digit_sum", "nano", {})
  with pytest.raises(ValueError, match="model.attention=splash needs a TPU"):
    run_config.record_attention(resumed, str(tmp_path))  # resumed here, it is not silently changed
