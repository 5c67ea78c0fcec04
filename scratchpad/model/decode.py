"""Greedy decoding, compiled: prefill the prompt, then one `lax.while_loop`.

Prompts are left-padded (segment id 0 on padding) so every row's last prompt
token sits at the same index and generation starts in step for the batch;
positions count real tokens only, so padding never shifts a row's positions.
Position ids are the config's scheme's (`positions`): the decode loop carries
the next token's `(line, place)`.
`greedy_decode_full` recomputes the whole prefix at every step: the reference
the KV-cache decoder must match token for token, and the benchmark's baseline.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from scratchpad.model import positions, transformer

prompt_positions = positions.segment_positions


def _next_tokens(logits_BxV, done_B, eos_id, pad_id):
  next_B = jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)
  return jnp.where(done_B, pad_id, next_B)


@functools.partial(jax.jit, static_argnames=("graphdef", "max_new_tokens", "eos_id", "pad_id"))
def greedy_decode(graphdef, params, prompt_BxP, prompt_segment_ids_BxP, *, max_new_tokens: int,
                  eos_id: int, pad_id: int = 0):
  """Returns the generated tokens_BxT (T = max_new_tokens), pad after each row's eos."""
  model = nnx.merge(graphdef, params)
  batch, prompt_length = prompt_BxP.shape
  cfg = model.cfg
  cache = transformer.init_cache(cfg, batch, prompt_length + max_new_tokens)
  segment_positions_BxP = prompt_positions(prompt_segment_ids_BxP)
  logits_BxPxV, cache = model(prompt_BxP, positions.row_ids(cfg, prompt_BxP, segment_positions_BxP),
                              prompt_segment_ids_BxP, cache)
  line_B, place_B = positions.next_state(cfg, prompt_BxP, segment_positions_BxP)

  done_B = jnp.zeros((batch,), bool)
  tokens_B = _next_tokens(logits_BxPxV[:, -1], done_B, eos_id, pad_id)
  out_BxT = jnp.full((batch, max_new_tokens), pad_id, jnp.int32)

  def cond(carry):
    step, *_, done_B, _ = carry
    return (step < max_new_tokens) & ~jnp.all(done_B)

  def body(carry):
    step, tokens_B, line_B, place_B, cache, done_B, out_BxT = carry
    out_BxT = out_BxT.at[:, step].set(tokens_B)
    done_B = done_B | (tokens_B == eos_id)
    logits_Bx1xV, cache = model(tokens_B[:, None], positions.state_id(cfg, line_B, place_B)[:, None],
                                jnp.ones((batch, 1), jnp.int32), cache)
    line_B, place_B = positions.step_state(cfg, tokens_B, line_B, place_B)
    return (step + 1, _next_tokens(logits_Bx1xV[:, 0], done_B, eos_id, pad_id), line_B, place_B, cache,
            done_B, out_BxT)

  *_, out_BxT = jax.lax.while_loop(cond, body, (jnp.int32(0), tokens_B, line_B, place_B, cache, done_B, out_BxT))
  return out_BxT


@functools.partial(jax.jit, static_argnames=("graphdef", "max_new_tokens", "eos_id", "pad_id"))
def greedy_decode_full(graphdef, params, prompt_BxP, prompt_segment_ids_BxP, *, max_new_tokens: int,
                       eos_id: int, pad_id: int = 0):
  """Greedy decoding without a cache: every step runs the model over the whole buffer."""
  model = nnx.merge(graphdef, params)
  batch, prompt_length = prompt_BxP.shape
  tokens_BxS = jnp.concatenate([prompt_BxP, jnp.full((batch, max_new_tokens), pad_id, jnp.int32)], axis=1)
  segment_ids_BxS = jnp.concatenate([prompt_segment_ids_BxP, jnp.zeros((batch, max_new_tokens), jnp.int32)], 1)

  def cond(carry):
    step, _, _, done_B = carry
    return (step < max_new_tokens) & ~jnp.all(done_B)

  def body(carry):
    step, tokens_BxS, segment_ids_BxS, done_B = carry
    position_ids_BxS = positions.row_ids(model.cfg, tokens_BxS, prompt_positions(segment_ids_BxS))
    logits_BxSxV, _ = model(tokens_BxS, position_ids_BxS, segment_ids_BxS)
    last = prompt_length + step - 1
    next_B = _next_tokens(jax.lax.dynamic_index_in_dim(logits_BxSxV, last, 1, keepdims=False),
                          done_B, eos_id, pad_id)
    tokens_BxS = jax.lax.dynamic_update_index_in_dim(tokens_BxS, next_B, last + 1, 1)
    segment_ids_BxS = jax.lax.dynamic_update_index_in_dim(
        segment_ids_BxS, jnp.ones((batch,), jnp.int32), last + 1, 1)
    return step + 1, tokens_BxS, segment_ids_BxS, done_B | (next_B == eos_id)

  _, tokens_BxS, _, _ = jax.lax.while_loop(
      cond, body, (jnp.int32(0), tokens_BxS, segment_ids_BxS, jnp.zeros((batch,), bool)))
  return tokens_BxS[:, prompt_length:]
