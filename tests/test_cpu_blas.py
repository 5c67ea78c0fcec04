"""The MKL kernels (scratchpad.model.cpu_blas): the matmul gives the same numbers as XLA's dot and
fused attention the same as XLA's blockwise attention, forward and backward, through every split of
the work, in the model's training step and decoding; and the fallback."""

import dataclasses
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks import common
from benchmarks import train as train_bench
from conftest import ROOT
from scratchpad.model import attention, cpu_blas, decode, transformer

needs_mkl = pytest.mark.skipif(not cpu_blas.available(), reason=f"no MKL custom call: {cpu_blas.status()}")


@pytest.fixture
def mkl(monkeypatch):
  """`cpu_blas.mkl_or_xla_matmul` calls MKL although the tests' platform has 8 devices (no mesh here)."""
  monkeypatch.setattr(cpu_blas, "uses_mkl", lambda *arrays: all(x.dtype == jnp.float32 for x in arrays))
  monkeypatch.setattr(cpu_blas, "MIN_FLOPS", 0)  # the tests' small products too
  monkeypatch.setattr(attention, "host_prefers_fused", lambda: True)  # auto picks the fused attention, unmeasured
  jax.clear_caches()  # functions jitted before with XLA's dots
  yield
  jax.clear_caches()


def _operands(rng, batch, m, n, k, transpose_a, transpose_b):
  a = rng.normal(size=batch + ((k, m) if transpose_a else (m, k))).astype(np.float32)
  b = rng.normal(size=batch + ((n, k) if transpose_b else (k, n))).astype(np.float32)
  return a, b


def _reference(a, b, transpose_a, transpose_b):
  a, b = a.astype(np.float64), b.astype(np.float64)
  return np.matmul(np.swapaxes(a, -1, -2) if transpose_a else a, np.swapaxes(b, -1, -2) if transpose_b else b)


@needs_mkl
@settings(max_examples=25, deadline=None)
@given(batch=st.sampled_from([(), (1,), (3,), (2, 3)]), m=st.integers(1, 300), n=st.integers(1, 300),
       k=st.sampled_from([1, 7, 64, 129]), transpose_a=st.booleans(), transpose_b=st.booleans(),
       seed=st.integers(0, 2 ** 16))
def test_matmul_equals_float64_reference(batch, m, n, k, transpose_a, transpose_b, seed):
  """Small products run in one call, large ones split by batch, rows or columns over XLA's
  thread pool; every way gives the float64 product to float32 rounding."""
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(cpu_blas, "uses_mkl", lambda *arrays: True)
    patch.setattr(cpu_blas, "MIN_FLOPS", 0)
    a, b = _operands(np.random.default_rng(seed), batch, m, n, k, transpose_a, transpose_b)
    got = cpu_blas.mkl_or_xla_matmul(jnp.asarray(a), jnp.asarray(b), transpose_a, transpose_b)
  assert got.shape == batch + (m, n)
  np.testing.assert_allclose(got, _reference(a, b, transpose_a, transpose_b), rtol=1e-4, atol=1e-4 * np.sqrt(k))


@needs_mkl
@pytest.mark.parametrize("transpose_a, transpose_b", [(False, False), (False, True), (True, False), (True, True)])
def test_matmul_gradients_equal_xlas(mkl, transpose_a, transpose_b):
  a, b = _operands(np.random.default_rng(0), (2,), 130, 70, 90, transpose_a, transpose_b)
  probe = np.random.default_rng(1).normal(size=(2, 130, 70)).astype(np.float32)

  def loss(a, b):
    return jnp.sum(cpu_blas.mkl_or_xla_matmul(a, b, transpose_a, transpose_b) ** 2 * probe)

  grads = jax.jit(jax.grad(loss, (0, 1)))(a, b)
  assert cpu_blas.TARGET in jax.jit(jax.grad(loss, (0, 1))).lower(a, b).as_text()
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(cpu_blas, "uses_mkl", lambda *arrays: False)
    expected = jax.jit(jax.grad(loss, (0, 1)))(a, b)
  for got, want in zip(grads, expected):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def _packed_segments(rng, batch, length):
  """Rows of packed segments 1, 2, ... with random boundaries, and padding (0) at some rows' ends."""
  segments = np.zeros((batch, length), np.int32)
  for row in segments:
    real = rng.integers(0, length + 1)
    row[:real] = 1 + np.cumsum(rng.random(real) < 0.08)
  return segments


@needs_mkl
@settings(max_examples=20, deadline=None)
@given(batch=st.integers(1, 3), length=st.integers(1, 100), heads=st.integers(1, 3), dim=st.sampled_from([1, 8, 64]),
       block=st.sampled_from([8, 32, 64, 256]), seed=st.integers(0, 2 ** 16))
def test_fused_attention_equals_xlas_blockwise_attention(batch, length, heads, dim, block, seed):
  """Values and gradients of q, k and v, over packed segments and padding (whose queries attend to
  nothing and, as in XLA's version, average the keys up to their block's end)."""
  rng = np.random.default_rng(seed)
  q, k, v, probe = (jnp.asarray(rng.normal(size=(batch, length, heads, dim)), jnp.float32) for _ in range(4))
  segments = jnp.asarray(_packed_segments(rng, batch, length))

  def run(use_mkl):
    def attention_and_grads(q, k, v):  # a new function each time: jit's cache would keep the first
      out, vjp = jax.vjp(lambda q, k, v: attention.causal_self_attention(
          q, k, v, segments, "cpu_fused" if use_mkl else "xla", block=block), q, k, v)
      return out, vjp(probe)

    with pytest.MonkeyPatch.context() as patch:
      patch.setattr(cpu_blas, "uses_mkl", lambda *arrays: use_mkl)
      lowered = jax.jit(attention_and_grads).lower(q, k, v)
      assert (cpu_blas.ATTENTION_BACKWARD_TARGET in lowered.as_text()) == use_mkl
      return lowered.compile()(q, k, v)

  (got, got_grads), (want, want_grads) = run(True), run(False)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  for g, w in zip(got_grads, want_grads):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


@needs_mkl
def test_a_training_step_with_mkl_equals_one_with_xlas_dots(mkl):
  cfg = transformer.ModelConfig(vocab_size=264, num_layers=2, d_model=64, num_heads=4, mlp_dim=128,
                                attention="cpu_fused")
  batch = common.synthetic_batch(4, 96, 264)

  def one_step(cfg=cfg):
    step, _, _ = train_bench.jax_train_step(cfg, common.TrainHParams(warmup_steps=1), batch)
    state, metrics = step()
    return jax.device_get(state["params"]), jax.device_get(metrics)

  params, metrics = one_step()
  train_step, init_state = train_bench.trainer_step(cfg, common.TrainHParams())
  step_hlo = jax.jit(train_step).lower(jax.eval_shape(init_state), batch).as_text()
  assert all(target in step_hlo for target in (cpu_blas.TARGET, cpu_blas.ATTENTION_TARGET,
                                               cpu_blas.ATTENTION_BACKWARD_TARGET))
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(cpu_blas, "uses_mkl", lambda *arrays: False)
    jax.clear_caches()
    want_params, want_metrics = one_step(dataclasses.replace(cfg, attention="xla"))
  np.testing.assert_allclose(metrics["loss"], want_metrics["loss"], rtol=1e-5)
  np.testing.assert_allclose(metrics["grad_norm"], want_metrics["grad_norm"], rtol=1e-4)
  for got, want in zip(jax.tree.leaves(params), jax.tree.leaves(want_params)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@needs_mkl
def test_kv_cache_decoding_with_mkl_equals_full_recompute(mkl):
  from test_model import _prompts, make
  graphdef, params, _ = make(seed=3)
  prompts, segments = _prompts()
  cached = decode.greedy_decode(graphdef, params, prompts, segments, max_new_tokens=24, eos_id=1)
  assert cpu_blas.TARGET in jax.jit(
      lambda p: decode.greedy_decode(graphdef, p, prompts, segments, max_new_tokens=2, eos_id=1)).lower(params).as_text()
  np.testing.assert_array_equal(cached, decode.greedy_decode_full(graphdef, params, prompts, segments,
                                                                  max_new_tokens=24, eos_id=1))


@needs_mkl
def test_the_benchmarks_bound_counts_the_fused_attentions_products(mkl):
  """PaLM's count, attention's by causal blocks, plus the logits the backward pass recomputes:
  7 products a block where XLA's attention has 6."""
  seq, batch, block = 64, 2, 16
  cfg = transformer.ModelConfig(vocab_size=264, num_layers=2, d_model=32, num_heads=4, mlp_dim=64,
                                attention="cpu_fused", attention_block=block)
  _, eqns, compiled = train_bench.matmuls_alone(cfg, common.TrainHParams(), common.synthetic_batch(batch, seq, 264))
  n = seq // block
  attention_flops = 12 * cfg.num_layers * cfg.d_model * seq * (n + 1) / (2 * n) * 7 / 6
  assert train_bench.matmul_flops(eqns) == pytest.approx((6 * common.matmul_params(cfg) + attention_flops) * seq * batch)
  assert train_bench.matmul_count(eqns) == 3 + cfg.num_layers * (18 + 7 * n)
  assert compiled.as_text().count(cpu_blas.TARGET) >= train_bench.matmul_count(eqns)


def test_small_products_stay_xlas(mkl, monkeypatch):
  monkeypatch.setattr(cpu_blas, "MIN_FLOPS", 2 * 8 * 8 * 8)
  hlo = jax.jit(lambda a, b: (cpu_blas.mkl_or_xla_matmul(a, a), cpu_blas.mkl_or_xla_matmul(b, b))).lower(
      jnp.ones((8, 8)), jnp.ones((7, 7))).as_text()
  assert hlo.count(cpu_blas.TARGET) == 1


def test_off_by_the_variable_on_many_devices_and_for_other_dtypes(monkeypatch):
  x = jnp.ones((4, 8), jnp.float32)
  assert jax.device_count() > 1 and not cpu_blas.uses_mkl(x, x)  # a mesh would gather its operands
  monkeypatch.setattr(jax, "device_count", lambda *a: 1)
  assert cpu_blas.uses_mkl(x, x) == cpu_blas.available()
  assert not cpu_blas.uses_mkl(x.astype(jnp.bfloat16), x)
  monkeypatch.setenv("SCRATCHPAD_CPU_BLAS", "0")
  assert not cpu_blas.uses_mkl(x, x)
  assert " dot(" in jax.jit(lambda a: cpu_blas.mkl_or_xla_matmul(a, a, transpose_b=True)).lower(x).compile().as_text()
  with pytest.raises(ValueError, match="batch dimensions differ"):
    cpu_blas.mkl_or_xla_matmul(jnp.ones((2, 4, 8)), jnp.ones((3, 8, 4)))


def test_a_failed_build_falls_back_to_xla_with_a_warning(tmp_path):
  """A compiler that fails: one warning naming the failure, `status` says why, XLA computes."""
  code = ("import warnings, jax.numpy as jnp\nfrom scratchpad.model import cpu_blas\n"
          "with warnings.catch_warnings(record=True) as w:\n  warnings.simplefilter('always')\n"
          "  ok = cpu_blas.available()\n"
          "print(ok, len(w), cpu_blas.status(), float(cpu_blas.mkl_or_xla_matmul(jnp.ones((2, 3)), jnp.ones((3, 2)))[0, 0]))")
  env = {**os.environ, "CXX": "false", "SCRATCHPAD_CACHE": str(tmp_path), "XLA_FLAGS": ""}
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
  if "MKL not installed" in out.stdout:
    pytest.skip("MKL not installed: no build to fail")
  ok, warnings_seen, *status = out.stdout.split()
  assert (ok, warnings_seen, status[-1]) == ("False", "1", "3.0")
  assert "building the MKL custom call failed" in out.stdout
  assert list(tmp_path.glob("*.so")) == []  # nothing half-built left in the cache


def test_without_mkl_it_is_off_silently():
  """The common case off x86-64 Linux or without the extra: no warning, XLA's dots."""
  code = ("import sys, warnings\nsys.prefix = '/nonexistent'\nimport jax.numpy as jnp\n"
          "from scratchpad.model import cpu_blas\nwarnings.simplefilter('error')\n"
          "print(cpu_blas.available(), cpu_blas.status(), float(cpu_blas.mkl_or_xla_matmul(jnp.ones((2, 3)), jnp.ones((3, 2)))[0, 0]))")
  env = {**os.environ, "HOME": "/nonexistent", "XLA_FLAGS": ""}
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
  assert out.stdout.split()[0] == "False" and "MKL not installed" in out.stdout and out.stdout.split()[-1] == "3.0"
