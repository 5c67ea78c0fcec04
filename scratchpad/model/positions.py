"""Position ids for each `position_encoding`, from the tokens before each position.

The model turns ids into an encoding (`transformer`): rotary for `rope`,
`randomized` and `lines`, a learned table for `learned`, none for `nope`. This
module says which id each token gets, in training rows (packed segments), in
prompts and at each decoding step, so the three agree exactly:

  rope, learned, nope  the token's index in its segment (nope ignores it).
  randomized           training: sorted, distinct ids drawn at random from
                       [0, max_length) per segment (Ruoss et al. 2023), so every
                       distance up to max_length is seen; evaluation: 0..n.
  lines                line * line_stride + place in the line (ours, for the Nye
                       formats): a line ends after a newline or the input's eos.
                       A scratchpad line copies the one above it with fixed
                       shifts per field (a's digits 0, b's -1, the result -1), so
                       with lines shorter than the stride every lookup a step
                       needs is a fixed distance, whatever the operands' length.
  line_bias            the same ids, encoded in two parts: rotary over the place
                       alone, and a learned bias per head by lines apart, clipped
                       at BIAS_LINES (the same line, the one above, two above, and
                       farther). Fields of the line above stay at fixed places
                       apart, while how far a line lies from the input is hidden:
                       trained on short operands, `lines` ties each step to its
                       line number (docs/results/addition.md).
  random_lines         the ids of `lines`, but in training each line's number is
                       the one above it plus a gap drawn from 1..max_line_gap
                       (ours, after Ruoss et al.); at evaluation 0..n as in
                       `lines`. A place in its line stays exact, while how many
                       lines lie between a step and the input no longer fixes its
                       depth, so the model cannot tie a line's contents to it; and
                       a test row's deeper lines sit at distances training saw.
                       max_place_gap > 1 spreads places the same way (one map a
                       row, shared by its lines), so longer lines than trained sit
                       at distances training saw too; line_stride must then hold
                       a line's places times the gap.

A token's id depends only on the tokens before it in its segment (causal), so a
decoder carries `(line, place)` of the next token from step to step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

SCHEMES = ("rope", "learned", "nope", "randomized", "lines", "line_bias", "random_lines")
ROTARY = ("rope", "randomized", "lines", "line_bias", "random_lines")  # the schemes with rotary embeddings
LINE_SCHEMES = ("lines", "line_bias", "random_lines")  # ids of line * line_stride + place
BIAS_LINES = 3  # line_bias: a bias for 0 (the same line), 1, 2 and 3 or more lines apart


def segment_positions(segment_ids_BxL):
  """Index of each token in its segment, for left-padded prompts (one segment a row)."""
  return jnp.maximum(jnp.cumsum(segment_ids_BxL, axis=-1) - 1, 0)


def _line_and_place(tokens_BxL, positions_BxL, break_ids: tuple[int, ...]):
  """(line, place) of each token: line breaks before it in its segment, tokens since the last."""
  index_L = jnp.arange(tokens_BxL.shape[1])
  start_BxL = index_L - positions_BxL  # the segment's first index
  is_break_BxL = jnp.isin(tokens_BxL, jnp.asarray(break_ids, tokens_BxL.dtype))
  before_BxL = jnp.cumsum(is_break_BxL, axis=1) - is_break_BxL  # breaks strictly before each token
  line_BxL = before_BxL - jnp.take_along_axis(before_BxL, start_BxL, axis=1)
  last_BxL = jax.lax.cummax(jnp.where(is_break_BxL, index_L, -1), axis=1)
  last_BxL = jnp.pad(last_BxL, ((0, 0), (1, 0)), constant_values=-1)[:, :-1]  # the last break before
  place_BxL = jnp.where(last_BxL >= start_BxL, index_L - last_BxL - 1, positions_BxL)
  return line_BxL, place_BxL


def randomized(key, positions_BxL, segment_ids_BxL, num_positions: int):
  """Per segment of n tokens, n sorted distinct ids in [0, num_positions), uniform at random:
  n draws from [0, num_positions - n] sorted within the segment, plus 0..n-1."""
  batch, length = positions_BxL.shape
  same_BxLxL = segment_ids_BxL[:, :, None] == segment_ids_BxL[:, None, :]
  count_BxL = jnp.sum(same_BxLxL, axis=-1)  # the segment's length, at each of its tokens
  draws_BxL = jnp.floor(jax.random.uniform(key, (batch, length)) * (num_positions - count_BxL + 1))
  # Segments are contiguous and in order (padding, segment 0, last): sorting segment-major keys
  # sorts each segment's draws in place.
  order_BxL = jnp.where(segment_ids_BxL == 0, jnp.max(segment_ids_BxL) + 1, segment_ids_BxL)
  keys_BxL = order_BxL.astype(jnp.float32) * num_positions + draws_BxL
  sorted_BxL = jnp.sort(keys_BxL, axis=1) - order_BxL * num_positions
  return sorted_BxL.astype(jnp.int32) + positions_BxL


def random_lines(key, cfg, tokens_BxL, positions_BxL):
  """`lines` ids whose line numbers grow by random gaps in 1..cfg.max_line_gap: causal, as
  a line's gap is drawn for its index in the row, whatever comes after it. With
  cfg.max_place_gap > 1, places grow by random gaps too, one draw per row for every line of
  it, so that a field keeps its place from line to line."""
  line_key, place_key = jax.random.split(key)
  line_BxL, place_BxL = _line_and_place(tokens_BxL, positions_BxL, cfg.line_break_ids)
  starts_BxL = (place_BxL == 0) | (positions_BxL == 0)  # a segment starts a line too
  row_line_BxL = jnp.cumsum(starts_BxL, axis=1) - 1  # the row's lines, across segments
  gaps_BxL = jax.random.randint(line_key, tokens_BxL.shape, 1, cfg.max_line_gap + 1)
  total_BxL = jnp.cumsum(gaps_BxL, axis=1)
  number_BxL = (jnp.take_along_axis(total_BxL, row_line_BxL, axis=1)
                - jnp.take_along_axis(total_BxL, row_line_BxL - line_BxL, axis=1))  # from the segment's first
  if cfg.max_place_gap > 1:
    place_gaps_BxL = jax.random.randint(place_key, tokens_BxL.shape, 1, cfg.max_place_gap + 1)
    place_map_BxL = jnp.cumsum(place_gaps_BxL, axis=1) - place_gaps_BxL[:, :1]  # place 0 -> 0
    place_BxL = jnp.take_along_axis(place_map_BxL, place_BxL, axis=1)
  return number_BxL * cfg.line_stride + place_BxL


def training_ids(cfg, tokens_BxL, positions_BxL, segment_ids_BxL, key=None):
  """The ids of a batch of training rows; `key` draws the `randomized` and `random_lines` ones."""
  if cfg.position_encoding == "randomized":
    return randomized(key, positions_BxL, segment_ids_BxL, cfg.max_length)
  if cfg.position_encoding == "random_lines":
    return random_lines(key, cfg, tokens_BxL, positions_BxL)
  return row_ids(cfg, tokens_BxL, positions_BxL)


def row_ids(cfg, tokens_BxL, positions_BxL):
  """The ids of rows at evaluation (full recomputation, prompts): deterministic."""
  if cfg.position_encoding not in LINE_SCHEMES:
    return positions_BxL
  line_BxL, place_BxL = _line_and_place(tokens_BxL, positions_BxL, cfg.line_break_ids)
  return line_BxL * cfg.line_stride + place_BxL


def next_state(cfg, tokens_BxL, positions_BxL):
  """`(line, place)` of the token after each row's last one: a decoder's carry."""
  if cfg.position_encoding not in LINE_SCHEMES:
    return jnp.zeros_like(positions_BxL[:, -1]), positions_BxL[:, -1] + 1
  line_BxL, place_BxL = _line_and_place(tokens_BxL, positions_BxL, cfg.line_break_ids)
  return step_state(cfg, tokens_BxL[:, -1], line_BxL[:, -1], place_BxL[:, -1])


def step_state(cfg, token_B, line_B, place_B):
  """`(line, place)` of the token after `token_B`, itself at `(line_B, place_B)`."""
  if cfg.position_encoding not in LINE_SCHEMES:
    return line_B, place_B + 1
  is_break_B = jnp.isin(token_B, jnp.asarray(cfg.line_break_ids, token_B.dtype))
  return line_B + is_break_B, jnp.where(is_break_B, 0, place_B + 1)


def state_id(cfg, line_B, place_B):
  return line_B * cfg.line_stride + place_B if cfg.position_encoding in LINE_SCHEMES else place_B


def rotary_ids(cfg, ids_BxL):
  """The ids the rotary embedding turns by: line_bias turns by the place alone."""
  return ids_BxL % cfg.line_stride if cfg.position_encoding == "line_bias" else ids_BxL


def lines_apart(ids_BxL, ids_BxS, line_stride: int):
  """line_bias: how many lines each key lies above each query, clipped at BIAS_LINES."""
  apart_BxLxS = ids_BxL[:, :, None] // line_stride - ids_BxS[:, None, :] // line_stride
  return jnp.clip(apart_BxLxS, 0, BIAS_LINES)  # a key is never on a later line
