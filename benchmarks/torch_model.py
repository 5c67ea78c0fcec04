"""The same transformer and train step in plain PyTorch: the baseline of `benchmarks.train`.

Layer for layer `scratchpad.model.transformer.Transformer`: untied embedding (normal, std 1)
and output layer; per block pre-norm RMSNorm (eps 1e-6, float32), separate q, k, v and out
projections (fan-in scaled normal), RoPE on pairs (i, i + K/2), scores scaled by K^-1/2 and
softmaxed in float32, a tanh-GELU MLP (jax.nn.gelu's default); a final RMSNorm. Parameters
are float32; with dtype bfloat16 the forward runs under autocast (as our model casts them).

Attention, `attention=`:
  "math"  explicit QK^T, mask, softmax, PV: the same computation as ours (the default);
  "sdpa"  `F.scaled_dot_product_attention(is_causal=True)`, PyTorch's fused kernel.
The synthetic batch has one segment per row, so a causal mask is the whole mask here (our
model still builds its segment mask, which is the same for any segment ids).

The train step: weighted mean cross-entropy and token accuracy, backward, global-norm
clipping (`clip_grad_norm_`, 1.0), AdamW (b1 0.9, b2 0.98, eps 1e-8, weight decay 0.01 on
matrices only), the warmup-cosine schedule of `scratchpad.train.trainer.lr_schedule` — the
hyperparameters of `benchmarks.common.TrainHParams`.

Imported only by the benchmark: PyTorch is an optional benchmark dependency.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _normal(shape, std, generator):
  return nn.Parameter(torch.randn(*shape, generator=generator) * std)


class RMSNorm(nn.Module):
  def __init__(self, dim: int):
    super().__init__()
    self.scale = nn.Parameter(torch.ones(dim))

  def forward(self, x):
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)
    return (h * self.scale).to(x.dtype)


def rotary(x_BxHxLxK, cos_LxK2, sin_LxK2):
  x = x_BxHxLxK.float()
  x1, x2 = x.chunk(2, dim=-1)
  return torch.cat([x1 * cos_LxK2 - x2 * sin_LxK2, x2 * cos_LxK2 + x1 * sin_LxK2], -1).to(x_BxHxLxK.dtype)


class Block(nn.Module):
  def __init__(self, d: int, heads: int, mlp: int, attention: str, g: torch.Generator):
    super().__init__()
    self.heads, self.head_dim, self.attention = heads, d // heads, attention
    self.attention_norm, self.mlp_norm = RMSNorm(d), RMSNorm(d)
    # (in, out) layouts as in the JAX model; x @ W.
    self.wq, self.wk, self.wv = (_normal((d, d), d ** -0.5, g) for _ in range(3))
    self.wo = _normal((d, d), d ** -0.5, g)
    self.wi = _normal((d, mlp), d ** -0.5, g)
    self.wo_mlp = _normal((mlp, d), mlp ** -0.5, g)

  def forward(self, x_BxLxD, cos, sin, causal_LxL):
    b, l, d = x_BxLxD.shape
    h = self.attention_norm(x_BxLxD)
    split = lambda t: t.view(b, l, self.heads, self.head_dim).transpose(1, 2)  # B H L K
    q, k, v = split(h @ self.wq), split(h @ self.wk), split(h @ self.wv)
    q, k = rotary(q, cos, sin), rotary(k, cos, sin)
    if self.attention == "sdpa":
      attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    else:
      logits = (q @ k.transpose(-1, -2)).float() * self.head_dim ** -0.5
      logits = logits.masked_fill(~causal_LxL, -1e30)
      attended = torch.softmax(logits, dim=-1).to(v.dtype) @ v
    x_BxLxD = x_BxLxD + attended.transpose(1, 2).reshape(b, l, d) @ self.wo
    return x_BxLxD + F.gelu(self.mlp_norm(x_BxLxD) @ self.wi, approximate="tanh") @ self.wo_mlp


class TorchTransformer(nn.Module):
  def __init__(self, vocab: int, layers: int, d_model: int, heads: int, mlp: int, max_len: int,
               attention: str = "math", rope_max_wavelength: float = 10_000.0, seed: int = 0):
    super().__init__()
    if attention not in ("math", "sdpa"):
      raise ValueError(f"attention must be 'math' or 'sdpa', not {attention!r}")
    g = torch.Generator().manual_seed(seed)
    self.embed = _normal((vocab, d_model), 1.0, g)
    self.blocks = nn.ModuleList(Block(d_model, heads, mlp, attention, g) for _ in range(layers))
    self.final_norm = RMSNorm(d_model)
    self.unembed = _normal((d_model, vocab), d_model ** -0.5, g)
    half = d_model // heads // 2
    freq = rope_max_wavelength ** (-torch.arange(half, dtype=torch.float32) / half)
    angle = torch.arange(max_len, dtype=torch.float32)[:, None] * freq
    self.register_buffer("cos", angle.cos(), persistent=False)
    self.register_buffer("sin", angle.sin(), persistent=False)
    self.register_buffer("causal", torch.ones(max_len, max_len, dtype=torch.bool).tril(), persistent=False)

  def forward(self, tokens_BxL):
    l = tokens_BxL.shape[1]
    x = self.embed[tokens_BxL]
    cos, sin, causal = self.cos[:l], self.sin[:l], self.causal[:l, :l]
    for block in self.blocks:
      x = block(x, cos, sin, causal)
    return (self.final_norm(x) @ self.unembed).float()


def loss_and_accuracy(model, tokens, targets, weights):
  """`weighted_loss`: mean cross-entropy over weighted positions, and token accuracy."""
  logits = model(tokens)
  ce = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
  w = weights.flatten().float()
  total = w.sum().clamp(min=1.0)
  accuracy = ((logits.detach().argmax(-1).flatten() == targets.flatten()).float() * w).sum() / total
  return (ce * w).sum() / total, accuracy


def lr_lambda(hp):
  """optax.warmup_cosine_decay_schedule(0, peak, warmup, steps, end=peak*final) / peak."""
  warmup = max(hp.warmup_steps, 1)
  decay_steps = max(hp.steps, hp.warmup_steps + 1)

  def fn(step: int) -> float:
    if step < warmup:
      return step / warmup
    t = min(step - warmup, decay_steps - warmup) / (decay_steps - warmup)
    return hp.final_lr_fraction + (1 - hp.final_lr_fraction) * 0.5 * (1 + math.cos(math.pi * t))
  return fn


def make_optimizer(model: nn.Module, hp, impl: str):
  """AdamW with decay on matrices only; impl "fused" | "foreach" | "for-loop"."""
  decay = [p for p in model.parameters() if p.ndim >= 2]
  no_decay = [p for p in model.parameters() if p.ndim < 2]
  kwargs = {"fused": dict(fused=True), "foreach": dict(foreach=True), "for-loop": dict(foreach=False)}[impl]
  opt = torch.optim.AdamW([{"params": decay, "weight_decay": hp.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=hp.learning_rate, betas=(hp.b1, hp.b2), eps=1e-8, **kwargs)
  return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(hp))


class TrainStep:
  """One optimizer step on a fixed batch; `compile=True` wraps the forward and loss (and
  hence their backward, through AOTAutograd) in `torch.compile`. The optimizer step is the
  fused AdamW kernel, outside the compiled graph."""

  def __init__(self, model, hp, batch: dict, device: str, dtype: str, compile: bool, adamw: str):
    self.model = model.to(device)
    self.hp = hp
    self.device = device
    self.optimizer, self.scheduler = make_optimizer(self.model, hp, adamw)
    self.tokens, self.targets, self.weights = (
        torch.as_tensor(batch[k]).to(device=device, dtype=torch.long if k != "decoder_loss_weights" else None)
        for k in ("decoder_input_tokens", "decoder_target_tokens", "decoder_loss_weights"))
    self.autocast = (torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)
                     if dtype == "bfloat16" else None)
    self.loss_fn = torch.compile(loss_and_accuracy) if compile else loss_and_accuracy

  def __call__(self):
    self.optimizer.zero_grad(set_to_none=True)
    if self.autocast is not None:
      with self.autocast:
        loss, accuracy = self.loss_fn(self.model, self.tokens, self.targets, self.weights)
    else:
      loss, accuracy = self.loss_fn(self.model, self.tokens, self.targets, self.weights)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.hp.grad_clip)
    self.optimizer.step()
    self.scheduler.step()
    return loss, accuracy, grad_norm

  def sync(self, _):
    if self.device.startswith("cuda"):
      torch.cuda.synchronize()


def matmul_rate(n: int, dtype: str, device: str, reps: int = 10):
  """PyTorch's n x n x n matmul FLOP/s here (for reference next to XLA's), median of `reps`."""
  import statistics
  import time
  dt = torch.bfloat16 if dtype == "bfloat16" else torch.float32
  a = torch.randn(n, n, device=device).to(dt)
  b = torch.randn(n, n, device=device).to(dt)
  sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
  times = []
  for i in range(reps + 2):
    start = time.perf_counter()
    a @ b
    sync()
    if i >= 2:
      times.append(time.perf_counter() - start)
  return 2 * n ** 3 / statistics.median(times)
