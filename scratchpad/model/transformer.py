"""A pre-norm decoder-only transformer in Flax NNX.

Every parameter carries `logical_axes` metadata ("vocab", "embed", "heads",
"kv", "mlp", "layers"...); `scratchpad.train.sharding` maps them to mesh axes
with the config's rules. Tensor names carry their shapes: B batch, L query
length, S key length (cache), D model width, H heads, K head width, F mlp, V vocab.

One `__call__` serves training (packed segments), full-recompute decoding and
KV-cache decoding: with a cache, the L new tokens are written at `cache.index`
and attend to every cached key at or before their own index.

`scan_layers` stacks the blocks' parameters along a leading "layers" axis and
runs them under one `jax.lax.scan` (one compiled block, not `num_layers`);
KV-cache decoding then loops over the stacked layers, keeping one cache array
per layer. `remat` rematerialises each block in the backward pass (REMAT_POLICIES).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from scratchpad.model import attention, cpu_blas, positions


POSITION_ENCODINGS = positions.SCHEMES
DTYPES = ("float32", "bfloat16")  # compute dtypes
# model.remat: what a block keeps for the backward pass. `dots` policies see XLA's dots only
# (on CPU with `.[cpu-blas]` the MKL matmuls are custom calls, recomputed like the rest).
REMAT_POLICIES = {
    "none": None,  # keep everything: no rematerialisation
    "full": jax.checkpoint_policies.nothing_saveable,  # keep the block's input only
    "dots": jax.checkpoint_policies.dots_saveable,  # keep matmul outputs, recompute the rest
    "dots_with_no_batch_dims": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


# Model sizes shared by every experiment: name -> (layers, d_model, heads, mlp_dim).
# Parameters (param_count) with the byte vocabulary / a 32k SentencePiece one.
SIZES = {
    "nano": (2, 64, 4, 256),        # 0.13M
    "tiny": (4, 128, 4, 512),       # 0.86M
    "mini": (4, 192, 6, 768),       # 1.9M
    "small": (6, 256, 8, 1024),     # 4.9M
    "medium": (8, 384, 8, 1536),    # 14M
    "base": (12, 512, 8, 2048),     # 38M
    "130m": (12, 768, 12, 3072),    # 85M / 134M: the pause paper's 130M (with its 32k vocabulary)
    "1b": (18, 2048, 16, 8192),     # 0.91B / 1.04B: the pause paper's 1B
}
# For reference, Nye et al. (2021) fine-tuned decoder-only models from 2M to 1B parameters on
# addition and programs (8B on polynomials) and prompted a 137B model few-shot; their architectures
# are not given, so these presets are ours, chosen to span that range.


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  vocab_size: int
  num_layers: int = 4
  d_model: int = 128
  num_heads: int = 4
  mlp_dim: int = 512
  max_length: int = 1024  # learned positions: the table's rows; randomized: the ids' range
  position_encoding: str = "rope"  # one of POSITION_ENCODINGS (positions.py says what each does)
  rope_max_wavelength: float = 10_000.0
  dtype: str = "float32"  # compute dtype; parameters stay float32
  line_stride: int = 64  # lines: ids per line
  line_break_ids: tuple[int, ...] = ()  # lines: the tokens that end a line (newline, eos); from the vocabulary
  max_line_gap: int = 3  # random_lines: a line's number is the one above's plus 1..max_line_gap in training
  max_place_gap: int = 1  # random_lines: places grow by 1..max_place_gap in training (1: exact places)
  attention: str = "auto"  # training attention's implementation (attention.py): auto | xla | cpu_fused | ...
  attention_block: int = 0  # causal attention's query block (0: by row length, attention.attention_block)
  remat: str = "none"  # one of REMAT_POLICIES
  scan_layers: bool = False  # blocks stacked on a "layers" axis under one lax.scan (a checkpoint layout)

  @property
  def head_dim(self) -> int:
    return self.d_model // self.num_heads

  def __post_init__(self):
    if self.d_model % self.num_heads:
      raise ValueError(f"d_model {self.d_model} is not divisible by num_heads {self.num_heads}")
    if self.position_encoding not in POSITION_ENCODINGS:
      raise ValueError(f"unknown position_encoding {self.position_encoding!r}: use one of "
                       + ", ".join(POSITION_ENCODINGS))
    if self.attention not in attention.IMPLEMENTATIONS:
      raise ValueError(f"unknown attention {self.attention!r}: use one of " + ", ".join(attention.IMPLEMENTATIONS))
    if self.remat not in REMAT_POLICIES:
      raise ValueError(f"unknown remat {self.remat!r}: use one of " + ", ".join(REMAT_POLICIES))
    if self.dtype not in DTYPES:
      raise ValueError(f"unknown dtype {self.dtype!r}: use 'float32' or 'bfloat16'")


def param_count(cfg: ModelConfig) -> int:
  """Parameters of `Transformer(cfg)`, from its architecture: untied embedding and output,
  per layer q, k, v, out (D x D each), the MLP (D x F twice) and two norms, a final norm."""
  d = cfg.d_model
  per_layer = 4 * d * d + 2 * d * cfg.mlp_dim + 2 * d
  per_layer += cfg.num_heads * (positions.BIAS_LINES + 1) if cfg.position_encoding == "line_bias" else 0
  learned = cfg.max_length * d if cfg.position_encoding == "learned" else 0
  return 2 * cfg.vocab_size * d + cfg.num_layers * per_layer + d + learned


def matmul_params(cfg: ModelConfig) -> int:
  """Parameters used in matrix multiplies: per layer q, k, v, out (D x D each) and the MLP
  (D x F twice), plus the untied output layer (D x V). The input embedding is a gather, and
  norms are elementwise, so neither is counted."""
  d = cfg.d_model
  return cfg.num_layers * (4 * d * d + 2 * d * cfg.mlp_dim) + d * cfg.vocab_size


def train_flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
  """Model FLOPs per trained token, PaLM's convention (Chowdhery et al. 2022, appendix B):

      6 * N  +  12 * n_layers * d_model * T

  N = `matmul_params` (2 FLOPs per multiply-add, x3 for forward + backward), and the
  attention's two matmuls QK^T and PV over the full T x T score matrix, as PaLM counts (not
  halved for the causal mask; above `attention.attention_block` the model skips the key
  blocks the mask covers whole, so it computes less than this). Rematerialisation and
  elementwise work (norms, softmax, GELU, RoPE, AdamW) are not counted: this is MFU, not HFU.
  """
  return 6 * matmul_params(cfg) + 12 * cfg.num_layers * cfg.d_model * seq_len


def forward_flops_per_token(cfg: ModelConfig, context: int) -> float:
  """Forward-only model FLOPs of one token attending to `context` keys (a third of the above)."""
  return 2 * matmul_params(cfg) + 4 * cfg.num_layers * cfg.d_model * context


class KVCache(NamedTuple):
  """Keys and values of each layer for S positions, and their segment ids.

  One array per layer (not one stacked array), so a decode step updates each
  in place and attends to it without slicing a copy out.
  """
  k_BxHxSxK: tuple[jax.Array, ...]
  v_BxHxSxK: tuple[jax.Array, ...]
  segment_ids_BxS: jax.Array  # 0 marks a padding or not-yet-written position
  position_ids_BxS: jax.Array  # the keys' position ids (line_bias reads them)
  index: jax.Array  # scalar: where the next tokens are written


def init_cache(cfg: ModelConfig, batch_size: int, length: int) -> KVCache:
  shape = (batch_size, cfg.num_heads, length, cfg.head_dim)
  zeros = tuple(jnp.zeros(shape, cfg.dtype) for _ in range(cfg.num_layers))
  return KVCache(zeros, zeros, jnp.zeros((batch_size, length), jnp.int32),
                 jnp.zeros((batch_size, length), jnp.int32), jnp.zeros((), jnp.int32))


def _replace_at(items: tuple, i: int, value) -> tuple:
  return items[:i] + (value,) + items[i + 1:]


def dense(x_BxLxD, w_DxN):
  """x @ w over the flattened tokens: one 2-D matmul. Batched 3-D forms make XLA's CPU
  backward pass transpose large operands (~20% of a training step, benchmarks/NOTES.md)."""
  b, length, d = x_BxLxD.shape
  return cpu_blas.mkl_or_xla_matmul(x_BxLxD.reshape(b * length, d), w_DxN).reshape(b, length, w_DxN.shape[-1])


def _param(rngs: nnx.Rngs, init, shape, axes):
  return nnx.Param(init(rngs.params(), shape, jnp.float32), logical_axes=axes)


class RMSNorm(nnx.Module):
  def __init__(self, dim: int):
    self.scale = nnx.Param(jnp.ones((dim,), jnp.float32), logical_axes=("norm",))

  def __call__(self, x_BxLxD):
    x = x_BxLxD.astype(jnp.float32)
    x = x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + 1e-6)
    return (x * self.scale[...]).astype(x_BxLxD.dtype)


@functools.lru_cache(maxsize=32)
def rotary_table(num_positions: int, half: int, max_wavelength: float) -> tuple[np.ndarray, np.ndarray]:
  """sin and cos of the rotary angles of positions 0..num_positions-1, (P, K/2) each.

  Built with numpy when tracing, so they enter the program as constants: computed inside it,
  XLA fuses the sines and cosines into every layer's rotation and recomputes them per head
  and element (~5% of a training step on CPU, benchmarks/NOTES.md)."""
  angle_PxK2 = np.arange(num_positions)[:, None] * max_wavelength ** (-np.arange(half) / half)
  return np.sin(angle_PxK2).astype(np.float32), np.cos(angle_PxK2).astype(np.float32)


def rotary(x_BxLxHxK, positions_BxL, max_wavelength: float, num_positions: int | None):
  """Rotary position embedding (Su et al. 2021), on pairs (i, i + K/2).

  Positions must be below `num_positions` (rope: a token's position never exceeds its index
  in the row or the cache, so that length is enough); None computes the angles in the program,
  for ids that may exceed it (randomized, lines)."""
  half = x_BxLxHxK.shape[-1] // 2
  if num_positions is None:
    angle_BxLxK2 = positions_BxL[..., None].astype(jnp.float32) * max_wavelength ** (-jnp.arange(half) / half)
    sin, cos = jnp.sin(angle_BxLxK2)[:, :, None], jnp.cos(angle_BxLxK2)[:, :, None]
  else:
    sin_PxK2, cos_PxK2 = rotary_table(num_positions, half, max_wavelength)
    sin, cos = jnp.asarray(sin_PxK2)[positions_BxL][:, :, None], jnp.asarray(cos_PxK2)[positions_BxL][:, :, None]
  x1, x2 = jnp.split(x_BxLxHxK.astype(jnp.float32), 2, axis=-1)
  return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x_BxLxHxK.dtype)



class Attention(nnx.Module):
  def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
    self.cfg = cfg
    init = nnx.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=0, out_axis=(1, 2))
    qkv_shape = (cfg.d_model, cfg.num_heads, cfg.head_dim)
    self.q_DxHxK = _param(rngs, init, qkv_shape, ("embed", "heads", "kv"))
    self.k_DxHxK = _param(rngs, init, qkv_shape, ("embed", "heads", "kv"))
    self.v_DxHxK = _param(rngs, init, qkv_shape, ("embed", "heads", "kv"))
    out_init = nnx.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=(0, 1), out_axis=2)
    self.out_HxKxD = _param(rngs, out_init, (cfg.num_heads, cfg.head_dim, cfg.d_model), ("heads", "kv", "embed"))
    if cfg.position_encoding == "line_bias":  # zero at first: no line is preferred
      self.line_bias_HxN = _param(rngs, nnx.initializers.zeros, (cfg.num_heads, positions.BIAS_LINES + 1),
                                  ("heads", "position"))

  def bias_fn(self, query_ids_BxL, key_ids_BxS):
    """line_bias: `(queries, keys) -> bias_BxHxLxS` for slices of the queries and keys; else None."""
    if self.cfg.position_encoding != "line_bias":
      return None

    def bias(queries: slice, keys: slice):
      apart_BxLxS = positions.lines_apart(query_ids_BxL[:, queries], key_ids_BxS[:, keys], self.cfg.line_stride)
      return self.line_bias_HxN[...][:, apart_BxLxS].transpose(1, 0, 2, 3)

    return bias

  def __call__(self, x_BxLxD, positions_BxL, segment_ids_BxL, cache: KVCache | None = None, layer: int = 0):
    """Returns the attention output and the cache with this layer's keys and values written.

    With a cache, `cache.segment_ids_BxS` already holds the new tokens' segments.
    """
    cfg, dt = self.cfg, x_BxLxD.dtype
    batch, length, d = x_BxLxD.shape

    def project(w_DxHxK):
      y_BxLxHK = dense(x_BxLxD, w_DxHxK[...].astype(dt).reshape(d, -1))
      return y_BxLxHK.reshape(batch, length, cfg.num_heads, cfg.head_dim)

    q_BxLxHxK, k_BxLxHxK, v_BxLxHxK = project(self.q_DxHxK), project(self.k_DxHxK), project(self.v_DxHxK)
    if cfg.position_encoding in positions.ROTARY:
      num_positions = length if cache is None else cache.k_BxHxSxK[layer].shape[2]
      num_positions = num_positions if cfg.position_encoding == "rope" else None
      rotary_ids_BxL = positions.rotary_ids(cfg, positions_BxL)
      q_BxLxHxK = rotary(q_BxLxHxK, rotary_ids_BxL, cfg.rope_max_wavelength, num_positions)
      k_BxLxHxK = rotary(k_BxLxHxK, rotary_ids_BxL, cfg.rope_max_wavelength, num_positions)

    if cache is None:
      attended_BxLxHxK = attention.causal_self_attention(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, segment_ids_BxL,
                                                         cfg.attention, self.bias_fn(positions_BxL, positions_BxL),
                                                         cfg.attention_block)
    else:
      # Write this layer's new keys and values in place, then attend to all S. Heads before
      # length: XLA's CPU batched matmuls want the batch dims leading.
      q_BxHxLxK, k_BxHxLxK, v_BxHxLxK = (x.transpose(0, 2, 1, 3) for x in (q_BxLxHxK, k_BxLxHxK, v_BxLxHxK))
      k_BxHxSxK = jax.lax.dynamic_update_slice_in_dim(
          cache.k_BxHxSxK[layer], k_BxHxLxK.astype(cache.k_BxHxSxK[layer].dtype), cache.index, 2)
      v_BxHxSxK = jax.lax.dynamic_update_slice_in_dim(
          cache.v_BxHxSxK[layer], v_BxHxLxK.astype(cache.v_BxHxSxK[layer].dtype), cache.index, 2)
      cache = cache._replace(k_BxHxSxK=_replace_at(cache.k_BxHxSxK, layer, k_BxHxSxK),
                             v_BxHxSxK=_replace_at(cache.v_BxHxSxK, layer, v_BxHxSxK))
      mask_BxLxS = attention.attention_mask(cache.index + jnp.arange(length), jnp.arange(k_BxHxSxK.shape[2]),
                                  segment_ids_BxL, cache.segment_ids_BxS)
      bias_fn = self.bias_fn(positions_BxL, cache.position_ids_BxS)
      attended_BxHxLxK = attention.masked_attention(q_BxHxLxK, k_BxHxSxK.astype(dt), v_BxHxSxK.astype(dt), mask_BxLxS,
                                               bias_fn and bias_fn(slice(None), slice(None)))
      attended_BxLxHxK = attended_BxHxLxK.transpose(0, 2, 1, 3)
    return dense(attended_BxLxHxK.reshape(batch, length, d), self.out_HxKxD[...].astype(dt).reshape(d, d)), cache


class MLP(nnx.Module):
  def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
    init = nnx.initializers.lecun_normal()
    self.wi_DxF = _param(rngs, init, (cfg.d_model, cfg.mlp_dim), ("embed", "mlp"))
    self.wo_FxD = _param(rngs, init, (cfg.mlp_dim, cfg.d_model), ("mlp", "embed"))

  def __call__(self, x_BxLxD):
    dt = x_BxLxD.dtype
    h_BxLxF = jax.nn.gelu(dense(x_BxLxD, self.wi_DxF[...].astype(dt)))
    return dense(h_BxLxF, self.wo_FxD[...].astype(dt))


class Block(nnx.Module):
  def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
    self.attention_norm = RMSNorm(cfg.d_model)
    self.attention = Attention(cfg, rngs)
    self.mlp_norm = RMSNorm(cfg.d_model)
    self.mlp = MLP(cfg, rngs)

  def __call__(self, x_BxLxD, positions_BxL, segment_ids_BxL, cache=None, layer=0):
    attended_BxLxD, cache = self.attention(self.attention_norm(x_BxLxD), positions_BxL,
                                           segment_ids_BxL, cache, layer)
    x_BxLxD = x_BxLxD + attended_BxLxD
    return x_BxLxD + self.mlp(self.mlp_norm(x_BxLxD)), cache


class Transformer(nnx.Module):
  """Decoder-only transformer: tokens -> next-token logits (float32)."""

  def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
    self.cfg = cfg
    self.embed_VxD = _param(rngs, nnx.initializers.normal(1.0), (cfg.vocab_size, cfg.d_model), ("vocab", "embed"))
    if cfg.position_encoding == "learned":
      self.position_PxD = _param(rngs, nnx.initializers.normal(0.02), (cfg.max_length, cfg.d_model),
                                 ("position", "embed"))
    self.blocks = (stacked_blocks(cfg, rngs) if cfg.scan_layers
                   else nnx.List([Block(cfg, rngs) for _ in range(cfg.num_layers)]))
    self.final_norm = RMSNorm(cfg.d_model)
    self.unembed_DxV = _param(rngs, nnx.initializers.lecun_normal(), (cfg.d_model, cfg.vocab_size),
                              ("embed", "vocab"))

  def __call__(self, tokens_BxL, positions_BxL, segment_ids_BxL, cache: KVCache | None = None):
    """Returns logits_BxLxV and, with a cache, the cache with these L tokens written.

    `positions_BxL` are the ids of the config's scheme (`positions.training_ids`, `row_ids`)."""
    cfg = self.cfg
    dt = jnp.dtype(cfg.dtype)
    x_BxLxD = self.embed_VxD[...][tokens_BxL].astype(dt)
    if cfg.position_encoding == "learned":
      x_BxLxD = x_BxLxD + self.position_PxD[...][positions_BxL].astype(dt)
    if cache is not None:
      cache = cache._replace(
          segment_ids_BxS=jax.lax.dynamic_update_slice_in_dim(cache.segment_ids_BxS, segment_ids_BxL, cache.index, 1),
          position_ids_BxS=jax.lax.dynamic_update_slice_in_dim(
              cache.position_ids_BxS, positions_BxL.astype(jnp.int32), cache.index, 1))
    if cache is not None:
      for layer, block in enumerate(self.layers()):
        x_BxLxD, cache = block(x_BxLxD, positions_BxL, segment_ids_BxL, cache, layer)
    else:
      x_BxLxD = self.run_blocks(x_BxLxD, positions_BxL, segment_ids_BxL)
    logits_BxLxV = dense(self.final_norm(x_BxLxD), self.unembed_DxV[...].astype(dt)).astype(jnp.float32)
    if cache is not None:
      cache = cache._replace(index=cache.index + tokens_BxL.shape[1])
    return logits_BxLxV, cache

  def layers(self):
    """The blocks one by one: a scanned model's are slices of its stacked parameters."""
    if not self.cfg.scan_layers:
      return list(self.blocks)
    graphdef, state = nnx.split(self.blocks)
    return [nnx.merge(graphdef, jax.tree.map(lambda a: a[i], state)) for i in range(self.cfg.num_layers)]

  def run_blocks(self, x_BxLxD, positions_BxL, segment_ids_BxL):
    """Every block without a cache (training, recomputation), rematerialised as `remat` says."""
    policy = REMAT_POLICIES[self.cfg.remat]

    def block_fn(graphdef, state, x_BxLxD, positions_BxL, segment_ids_BxL):
      return nnx.merge(graphdef, state)(x_BxLxD, positions_BxL, segment_ids_BxL)[0]

    if self.cfg.remat != "none":
      block_fn = jax.checkpoint(block_fn, policy=policy, static_argnums=(0,))
    if self.cfg.scan_layers:
      graphdef, state = nnx.split(self.blocks)
      step = lambda x, layer_state: (block_fn(graphdef, layer_state, x, positions_BxL, segment_ids_BxL), None)
      return jax.lax.scan(step, x_BxLxD, state)[0]
    for block in self.blocks:
      x_BxLxD = block_fn(*nnx.split(block), x_BxLxD, positions_BxL, segment_ids_BxL)
    return x_BxLxD


def stacked_blocks(cfg: ModelConfig, rngs: nnx.Rngs) -> Block:
  """One Block whose parameters hold every layer's, stacked along a leading "layers" axis."""
  keys = jax.random.split(rngs.params(), cfg.num_layers)
  graphdef = nnx.graphdef(nnx.eval_shape(lambda: Block(cfg, nnx.Rngs(0))))
  blocks = nnx.merge(graphdef, jax.vmap(lambda key: nnx.state(Block(cfg, nnx.Rngs(params=key))))(keys))
  for _, variable in nnx.iter_graph(blocks):
    if isinstance(variable, nnx.Param):
      variable.set_metadata(logical_axes=("layers", *variable.get_metadata()["logical_axes"]))
  return blocks


def graphdef(cfg: ModelConfig, with_params: bool = False):
  """The model's graph, built abstractly (no parameter is allocated); `with_params`: and the
  shapes of its parameters."""
  graph, params = nnx.split(nnx.eval_shape(lambda: Transformer(cfg, nnx.Rngs(0))), nnx.Param)
  return (graph, params) if with_params else graph
