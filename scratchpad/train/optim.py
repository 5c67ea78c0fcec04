"""The optimizer, the loss and the train step, on the model alone (jax, flax, optax: no
TensorFlow or seqio), so benchmarks on any machine train exactly what the trainer trains."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from scratchpad.model import positions, transformer


def lr_schedule(train_cfg) -> optax.Schedule:
  """Linear warmup from 0, then cosine decay to `final_lr_fraction` of the peak."""
  return optax.warmup_cosine_decay_schedule(
      0.0, train_cfg.learning_rate, max(train_cfg.warmup_steps, 1), max(train_cfg.steps, train_cfg.warmup_steps + 1),
      end_value=train_cfg.learning_rate * train_cfg.final_lr_fraction)


class ParamsAverage(NamedTuple):
  """The exponential moving average of the parameters after each step, and the steps taken."""
  count: jax.Array
  average: optax.Params


def average_params(decay: float) -> optax.GradientTransformation:
  """Keeps an exponential moving average of the parameters in the optimizer's state (so it is
  checkpointed, sharded and restored with it); leaves the updates as they are. Chained last,
  where the updates are the step's final ones. The decay warms up as min(decay, (1 + t) / (10 + t)),
  so the first steps' parameters do not linger in the average."""

  def init_fn(params):
    return ParamsAverage(jnp.zeros((), jnp.int32), jax.tree.map(jnp.copy, params))

  def update_fn(updates, state, params):
    t = state.count.astype(jnp.float32)
    d = jnp.minimum(decay, (1.0 + t) / (10.0 + t))
    average = jax.tree.map(lambda a, p, u: d * a + (1.0 - d) * (p + u).astype(a.dtype),
                           state.average, params, updates)
    return updates, ParamsAverage(state.count + 1, average)

  return optax.GradientTransformation(init_fn, update_fn)


def make_optimizer(train_cfg) -> optax.GradientTransformation:
  """AdamW on the schedule, after global-norm clipping; with `ema_decay` > 0, an average of
  the parameters too, which evaluation uses (`evaluation_params`)."""
  schedule = lr_schedule(train_cfg)
  decay_mask = lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)  # no decay on norms
  parts = [optax.clip_by_global_norm(train_cfg.grad_clip),
           optax.adamw(schedule, b1=train_cfg.b1, b2=train_cfg.b2, weight_decay=train_cfg.weight_decay,
                       mask=decay_mask)]
  if train_cfg.ema_decay:
    parts.append(average_params(train_cfg.ema_decay))
  return optax.chain(*parts)


def evaluation_params(state) -> optax.Params:
  """The parameters a training state is evaluated with: the average where the optimizer keeps
  one, else the parameters themselves."""
  parts = jax.tree.leaves(state["opt_state"], is_leaf=lambda x: isinstance(x, ParamsAverage))
  return next((p.average for p in parts if isinstance(p, ParamsAverage)), state["params"])


def weighted_loss(logits_BxLxV, targets_BxL, weights_BxL, total=None):
  """Mean cross-entropy over positions with weight (targets only), and token accuracy.

  `total` is the weight to divide by: by default this batch's; a microbatch divides by its
  whole batch's, so that the microbatches' losses and gradients add up to the batch's."""
  ce_BxL = optax.softmax_cross_entropy_with_integer_labels(logits_BxLxV, targets_BxL)
  weights_BxL = weights_BxL.astype(jnp.float32)
  total = jnp.maximum(weights_BxL.sum(), 1.0) if total is None else total
  correct_BxL = (jnp.argmax(logits_BxLxV, -1) == targets_BxL).astype(jnp.float32)
  return (ce_BxL * weights_BxL).sum() / total, (correct_BxL * weights_BxL).sum() / total


def microbatched(x_BxL, microbatches: int):
  """[B, L] -> [M, B/M, L], microbatch m the rows m, m + M, ...: strided, so each device of a
  batch sharded by rows holds a part of every microbatch."""
  b, length = x_BxL.shape
  return x_BxL.reshape(b // microbatches, microbatches, length).swapaxes(0, 1)


def init_state(model_cfg: transformer.ModelConfig, tx: optax.GradientTransformation, seed: int):
  """A fresh training state: step 0, the model's parameters, the optimizer's state."""
  model = transformer.Transformer(model_cfg, nnx.Rngs(seed))
  params = nnx.to_pure_dict(nnx.split(model, nnx.Param)[1])
  return {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params)}


def eval_step(graphdef, params, batch):
  """The weighted loss and token accuracy of a batch, with evaluation's position ids."""
  model = nnx.merge(graphdef, params)
  position_ids_BxL = positions.row_ids(model.cfg, batch["decoder_input_tokens"], batch["decoder_positions"])
  logits_BxLxV, _ = model(batch["decoder_input_tokens"], position_ids_BxL, batch["decoder_segment_ids"])
  return weighted_loss(logits_BxLxV, batch["decoder_target_tokens"], batch["decoder_loss_weights"])


def train_step(graphdef, tx: optax.GradientTransformation, state, batch, seed: int = 0, microbatches: int = 1):
  """One optimizer step on a batch of the model's features; returns the new state and metrics.

  Randomized position ids are drawn from `seed` and the step, so a resumed run draws the same.
  With `microbatches` > 1 the gradient is accumulated over that many slices of the batch (one
  at a time under `lax.scan`), equal to the whole batch's: ids are drawn for the whole batch and
  every slice divides by the whole batch's weight."""
  key = jax.random.fold_in(jax.random.key(seed), state["step"])
  model_cfg = nnx.merge(graphdef, state["params"]).cfg
  features = {
      "tokens": batch["decoder_input_tokens"], "segments": batch["decoder_segment_ids"],
      "targets": batch["decoder_target_tokens"], "weights": batch["decoder_loss_weights"],
      "ids": positions.training_ids(model_cfg, batch["decoder_input_tokens"], batch["decoder_positions"],
                                    batch["decoder_segment_ids"], key)}
  total = jnp.maximum(batch["decoder_loss_weights"].astype(jnp.float32).sum(), 1.0)

  def loss_fn(params, part):
    logits_BxLxV, _ = nnx.merge(graphdef, params)(part["tokens"], part["ids"], part["segments"])
    return weighted_loss(logits_BxLxV, part["targets"], part["weights"], total)

  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  if microbatches == 1:
    (loss, accuracy), grads = grad_fn(state["params"], features)
  else:
    def accumulate(sums, part):
      (loss, accuracy), grads = grad_fn(state["params"], part)
      return jax.tree.map(jnp.add, sums, ((loss, accuracy), grads)), None

    zeros = ((jnp.zeros(()), jnp.zeros(())), jax.tree.map(jnp.zeros_like, state["params"]))
    parts = jax.tree.map(lambda x: microbatched(x, microbatches), features)
    ((loss, accuracy), grads), _ = jax.lax.scan(accumulate, zeros, parts)
  updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
  new_state = {"step": state["step"] + 1, "params": optax.apply_updates(state["params"], updates),
               "opt_state": opt_state}
  return new_state, {"loss": loss, "token_accuracy": accuracy, "grad_norm": optax.tree.norm(grads),
                     "tokens": jnp.sum(batch["decoder_segment_ids"] != 0)}
