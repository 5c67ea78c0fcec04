"""The decoder: logical axes, causality, packing, and KV-cache decoding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from flax import nnx

from scratchpad.model import attention, decode, positions, transformer


def make(position_encoding="rope", dtype="float32", seed=0, attention_block=0):
  cfg = transformer.ModelConfig(vocab_size=64, num_layers=2, d_model=32, num_heads=4, mlp_dim=64,
                                max_length=64, position_encoding=position_encoding, dtype=dtype,
                                line_stride=8, line_break_ids=(1, 7, 8), attention_block=attention_block)
  graphdef, state = nnx.split(transformer.Transformer(cfg, nnx.Rngs(seed)), nnx.Param)
  return graphdef, nnx.to_pure_dict(state), state


def forward(graphdef, params, tokens, positions=None, segments=None):
  positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape) if positions is None else positions
  segments = jnp.ones_like(tokens) if segments is None else segments
  return nnx.merge(graphdef, params)(tokens, positions, segments)[0]


@pytest.mark.parametrize("size", ["nano", "tiny", "mini", "small", "medium", "base", "130m", "1b"])
@pytest.mark.parametrize("vocab_size, position_encoding", [(264, "rope"), (32008, "learned"), (48, "line_bias")])
def test_every_size_preset_has_the_parameters_the_formula_counts(size, vocab_size, position_encoding):
  layers, d_model, heads, mlp = transformer.SIZES[size]
  cfg = transformer.ModelConfig(vocab_size=vocab_size, num_layers=layers, d_model=d_model, num_heads=heads,
                                mlp_dim=mlp, max_length=1024, position_encoding=position_encoding)
  abstract = nnx.eval_shape(lambda: transformer.Transformer(cfg, nnx.Rngs(0)))  # no memory, even at 1B
  counted = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.split(abstract, nnx.Param)[1]))
  assert counted == transformer.param_count(cfg)


def test_size_presets_span_the_papers_scales():
  count = lambda size, vocab: transformer.param_count(transformer.ModelConfig(
      vocab, *transformer.SIZES[size]))
  assert 0.8e6 < count("tiny", 264) < 1e6  # the CPU budget's 0.8M model
  assert 125e6 < count("130m", 32008) < 140e6  # Goyal et al.'s 130M, with a 32k vocabulary
  assert 0.95e9 < count("1b", 32008) < 1.1e9  # and their 1B
  sizes = [count(size, 264) for size in transformer.SIZES]
  assert sizes == sorted(sizes)


def test_every_parameter_has_logical_axes():
  _, _, state = make("learned")
  for path, var in nnx.to_flat_state(state):
    axes = var.get_metadata().get("logical_axes")
    assert axes is not None and len(axes) == var.get_value().ndim and None not in axes, path


@pytest.mark.parametrize("position_encoding", transformer.POSITION_ENCODINGS)
def test_future_tokens_do_not_change_past_logits(position_encoding):
  graphdef, params, _ = make(position_encoding)
  tokens = jnp.asarray(np.random.default_rng(0).integers(6, 64, (2, 12)), jnp.int32)
  changed = tokens.at[:, 8:].set(7)
  ids = lambda t: positions.row_ids(graphdef_cfg(graphdef, params), t, jnp.broadcast_to(jnp.arange(12), t.shape))
  np.testing.assert_allclose(forward(graphdef, params, tokens, ids(tokens))[:, :8],
                             forward(graphdef, params, changed, ids(changed))[:, :8], atol=1e-5)


def graphdef_cfg(graphdef, params):
  return nnx.merge(graphdef, params).cfg


def test_packed_segments_equal_separate_sequences():
  graphdef, params, _ = make()
  rng = np.random.default_rng(1)
  a, b = rng.integers(6, 64, (1, 5)), rng.integers(6, 64, (1, 7))
  packed = jnp.asarray(np.concatenate([a, b], 1), jnp.int32)
  positions = jnp.asarray([list(range(5)) + list(range(7))])
  segments = jnp.asarray([[1] * 5 + [2] * 7])
  logits = forward(graphdef, params, packed, positions, segments)
  np.testing.assert_allclose(logits[:, :5], forward(graphdef, params, jnp.asarray(a, jnp.int32)), atol=1e-5)
  np.testing.assert_allclose(logits[:, 5:], forward(graphdef, params, jnp.asarray(b, jnp.int32)), atol=1e-5)


def _textbook_attention(q, k, v, mask):
  logits = jnp.where(mask[:, None], jnp.einsum("bhlk,bhsk->bhls", q, k) / np.sqrt(q.shape[-1]), -1e30)
  return jnp.einsum("bhls,bhsk->bhlk", jax.nn.softmax(logits, axis=-1), v)


@settings(max_examples=10, deadline=None)
@given(length=st.sampled_from([1, 5, 16]), keys=st.sampled_from([1, 7, 16]), seed=st.integers(0, 2 ** 16))
def test_attention_normalised_after_the_values_equals_the_textbook_softmax(length, keys, seed):
  """Values and gradients, with random masks: rows with no key left attend uniformly in both."""
  rng = np.random.default_rng(seed)
  q = jnp.asarray(rng.normal(size=(2, 3, length, 8)), jnp.float32)
  k, v = (jnp.asarray(rng.normal(size=(2, 3, keys, 8)), jnp.float32) for _ in range(2))
  mask = jnp.asarray(rng.random((2, length, keys)) < 0.6)
  probe = jnp.asarray(rng.normal(size=(2, 3, length, 8)), jnp.float32)
  (ours, g_ours), (textbook, g_textbook) = _values_and_grads(q, k, v, mask, probe)
  np.testing.assert_allclose(ours, textbook, rtol=1e-5, atol=1e-6)
  for g_o, g_t in zip(g_ours, g_textbook):
    np.testing.assert_allclose(g_o, g_t, rtol=1e-4, atol=1e-5)


@jax.jit  # one compile per shape, not one per operation
def _values_and_grads(q, k, v, mask, probe):
  def both(f):
    grads = jax.grad(lambda *qkv: jnp.sum(f(*qkv, mask) * probe), (0, 1, 2))(q, k, v)
    return f(q, k, v, mask), grads
  return both(attention.masked_attention), both(_textbook_attention)


def test_attention_blocks_by_length():
  """Blocks of 64 up to 256 tokens (at most 4 a row), of 128 beyond; model.attention_block overrides."""
  assert [attention.attention_block(n) for n in (32, 128, 256, 257, 1024)] == [64, 64, 64, 128, 128]
  assert attention.attention_block(1024, 6) == 6


@settings(max_examples=10, deadline=None)
@given(length=st.sampled_from([1, 13, 24]), block=st.sampled_from([1, 5, 8, 24]),
       segment_starts=st.sets(st.integers(1, 23), max_size=3),
       seed=st.integers(0, 2 ** 16))
def test_causal_block_attention_equals_full_attention(length, block, segment_starts, seed):
  """Skipping the keys past each query block's end changes nothing, with packed segments and
  left padding, whether or not the block divides the length. (Only at real tokens: a padding
  query attends to nothing, and what it averages instead is never read.)"""
  rng = np.random.default_rng(seed)
  q, k, v = (jnp.asarray(rng.normal(size=(2, 3, length, 8)), jnp.float32) for _ in range(3))
  segment_L = np.cumsum([i in segment_starts for i in range(length)]) + 1
  segments_BxL = np.stack([segment_L, np.where(np.arange(length) < length // 3, 0, segment_L)])  # row 2 left-padded
  index_L = np.arange(length)
  mask_BxLxL = jnp.asarray((index_L[:, None] >= index_L[None]) & (segments_BxL[:, :, None] == segments_BxL[:, None])
                           & (segments_BxL[:, None] != 0))
  real = segments_BxL != 0
  blocked = jax.jit(attention.causal_block_attention, static_argnums=4)(q, k, v, mask_BxLxL, block)
  whole = jax.jit(attention.masked_attention)(q, k, v, mask_BxLxL)
  np.testing.assert_allclose(blocked.transpose(0, 2, 1, 3)[real], whole.transpose(0, 2, 1, 3)[real],
                             rtol=1e-5, atol=1e-6)


def test_model_with_attention_blocks_equals_without():
  graphdef, params, _ = make()
  blocked, _, _ = make(attention_block=6)
  tokens = jnp.asarray(np.random.default_rng(2).integers(6, 64, (2, 20)), jnp.int32)
  segments = jnp.asarray([[1] * 20, [1] * 7 + [2] * 13])
  positions = jnp.asarray([list(range(20)), list(range(7)) + list(range(13))])
  whole = forward(graphdef, params, tokens, positions, segments)
  np.testing.assert_allclose(forward(blocked, params, tokens, positions, segments), whole, rtol=1e-5, atol=1e-5)


def _prompts():
  rng = np.random.default_rng(0)
  prompts = rng.integers(6, 64, (5, 9)).astype(np.int32)
  segments = np.ones_like(prompts)
  for row, pad in enumerate([0, 2, 4, 8, 1]):  # left padding of every length
    prompts[row, :pad], segments[row, :pad] = 0, 0
  return prompts, segments


@pytest.mark.parametrize("position_encoding", transformer.POSITION_ENCODINGS)
def test_kv_cache_decoding_equals_full_recompute(position_encoding):
  graphdef, params, _ = make(position_encoding, seed=3)
  prompts, segments = _prompts()
  kwargs = dict(max_new_tokens=24, eos_id=1)
  cached = decode.greedy_decode(graphdef, params, prompts, segments, **kwargs)
  full = decode.greedy_decode_full(graphdef, params, prompts, segments, **kwargs)
  np.testing.assert_array_equal(cached, full)
  assert len(np.unique(np.asarray(cached))) > 3  # a real sequence, not one repeated id


def test_kv_cache_decoding_in_bfloat16_is_greedy_under_full_recompute():
  """In bfloat16 the two paths round differently, so near-ties may break either way:

  every token the cached decoder picks must be the argmax of the full forward
  pass over the same tokens, up to bfloat16 rounding of the logits.
  """
  graphdef, params, _ = make("rope", "bfloat16", seed=3)
  prompts, segments = _prompts()
  cached = np.asarray(decode.greedy_decode(graphdef, params, prompts, segments, max_new_tokens=24, eos_id=1))
  tokens = jnp.asarray(np.concatenate([prompts, cached], 1))
  all_segments = jnp.asarray(np.concatenate([segments, np.ones_like(cached)], 1))
  logits = forward(graphdef, params, tokens, decode.prompt_positions(all_segments), all_segments)
  predicting = np.asarray(logits[:, prompts.shape[1] - 1:-1])  # the logits that chose each new token
  chosen = np.take_along_axis(predicting, cached[..., None], -1)[..., 0]
  generated = np.cumsum(cached == 1, axis=1) - (cached == 1) == 0  # up to and including eos
  assert generated.sum() > 40
  np.testing.assert_array_less((predicting.max(-1) - chosen)[generated], 0.1)


def test_decoding_stops_at_eos_and_pads_after():
  graphdef, params, _ = make(seed=0)
  prompts = np.full((1, 4), 9, np.int32)
  run = lambda eos_id: np.asarray(decode.greedy_decode(graphdef, params, prompts, np.ones_like(prompts),
                                                       max_new_tokens=16, eos_id=eos_id))[0].tolist()
  free = run(-1)  # no eos: the model's plain greedy continuation
  eos = free[2]
  stop = free.index(eos)
  assert run(eos) == free[:stop + 1] + [0] * (15 - stop)


def test_left_padding_does_not_change_the_completion():
  graphdef, params, _ = make(seed=5)
  prompt = np.random.default_rng(2).integers(6, 64, (1, 6)).astype(np.int32)
  padded = np.concatenate([np.zeros((1, 5), np.int32), prompt], 1)
  segments = np.concatenate([np.zeros((1, 5), np.int32), np.ones((1, 6), np.int32)], 1)
  kwargs = dict(max_new_tokens=10, eos_id=1)
  np.testing.assert_array_equal(decode.greedy_decode(graphdef, params, prompt, np.ones_like(prompt), **kwargs),
                                decode.greedy_decode(graphdef, params, padded, segments, **kwargs))
