"""Scanned layers and rematerialisation: the same model, the same numbers, another layout."""

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from scratchpad.model import decode, transformer
from scratchpad.train import run_config, trainer

CFG = transformer.ModelConfig(vocab_size=64, num_layers=3, d_model=32, num_heads=4, mlp_dim=64, max_length=64)


def split(cfg):
  graphdef, state = nnx.split(transformer.Transformer(cfg, nnx.Rngs(0)), nnx.Param)
  return graphdef, nnx.to_pure_dict(state)


def stacked(params):
  """The unscanned model's parameters in the scanned layout: blocks stacked on a leading axis."""
  blocks = [params["blocks"][i] for i in range(len(params["blocks"]))]
  return {**params, "blocks": jax.tree.map(lambda *layers: jnp.stack(layers), *blocks)}


def loss_and_grads(graphdef, params, tokens_BxL):
  positions_BxL = jnp.broadcast_to(jnp.arange(tokens_BxL.shape[1]), tokens_BxL.shape)
  segments_BxL = jnp.ones_like(tokens_BxL).at[1, :5].set(0).at[1, 5:].set(2)  # padding and a second row

  def loss(params):
    logits_BxLxV = nnx.merge(graphdef, params)(tokens_BxL, positions_BxL, segments_BxL)[0]
    log_p = jax.nn.log_softmax(logits_BxLxV[:, :-1])
    return -jnp.mean(jnp.take_along_axis(log_p, tokens_BxL[:, 1:, None], -1))

  return jax.jit(jax.value_and_grad(loss))(params)


TOKENS = jax.random.randint(jax.random.key(1), (2, 24), 2, 64)


@pytest.mark.parametrize("scan_layers, remat", [(False, "full"), (True, "none"), (True, "dots_with_no_batch_dims")])
def test_scanned_and_rematerialised_model_has_the_same_loss_and_gradients(scan_layers, remat):
  graphdef, params = split(CFG)
  ref_loss, ref_grads = loss_and_grads(graphdef, params, TOKENS)
  other_graphdef, other_params = split(dataclasses.replace(CFG, scan_layers=scan_layers, remat=remat))
  params = stacked(params) if scan_layers else params
  jax.tree.map(lambda a, b: np.testing.assert_equal(a.shape, b.shape), other_params, params)
  loss, grads = loss_and_grads(other_graphdef, params, TOKENS)
  np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)
  ref_grads = stacked(ref_grads) if scan_layers else ref_grads
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7), grads, ref_grads)
  assert float(jnp.abs(grads["blocks"]["mlp"]["wi_DxF"] if scan_layers else
                       grads["blocks"][0]["mlp"]["wi_DxF"]).max()) > 0


def test_scanned_parameters_carry_a_leading_layers_axis():
  model = transformer.Transformer(dataclasses.replace(CFG, scan_layers=True), nnx.Rngs(0))
  for path, variable in nnx.iter_graph(model.blocks):
    if isinstance(variable, nnx.Param):
      axes = variable.get_metadata()["logical_axes"]
      assert axes[0] == "layers" and len(axes) == variable.get_value().ndim, path
      assert variable.get_value().shape[0] == CFG.num_layers
  # Layers are initialised apart, not as copies of one.
  wi = model.blocks.mlp.wi_DxF.get_value()
  assert not np.allclose(wi[0], wi[1])


def test_scanned_model_decodes_with_its_kv_cache_as_the_unscanned_one():
  graphdef, params = split(CFG)
  scanned_graphdef, _ = split(dataclasses.replace(CFG, scan_layers=True))
  prompts = np.array(jax.random.randint(jax.random.key(2), (3, 7), 2, 64), np.int32)
  segments = np.ones_like(prompts)
  prompts[0, :2], segments[0, :2] = 0, 0  # left padding
  kwargs = dict(max_new_tokens=12, eos_id=1)
  cached = decode.greedy_decode(scanned_graphdef, stacked(params), prompts, segments, **kwargs)
  np.testing.assert_array_equal(cached, decode.greedy_decode_full(scanned_graphdef, stacked(params),
                                                                  prompts, segments, **kwargs))
  np.testing.assert_array_equal(cached, decode.greedy_decode(graphdef, params, prompts, segments, **kwargs))


def test_a_checkpoint_of_one_layout_is_refused_by_the_other(make_config, tmp_path):
  cfg = make_config("scratchpad", train__steps=2, train__checkpoint_every=2)
  trainer.train(cfg, str(tmp_path))
  cfg.model.scan_layers = True
  with pytest.raises(ValueError, match=r"model.scan_layers=True but the checkpoint has False") as e:
    trainer.train(cfg, str(tmp_path))
  assert "\n" not in str(e.value)
  cfg.model.update(scan_layers=False, remat="full")  # remat changes no parameter: the run resumes
  run_config.check_same_model(cfg, str(tmp_path))


@pytest.mark.parametrize("scan_layers, remat, primitive", [(True, "none", "scan"), (False, "full", "checkpoint"),
                                                           (False, "none", None)])
def test_the_program_scans_and_rematerialises_as_configured(scan_layers, remat, primitive):
  graphdef, params = split(dataclasses.replace(CFG, scan_layers=scan_layers, remat=remat))
  jaxpr = str(jax.make_jaxpr(lambda p: loss_and_grads(graphdef, p, TOKENS))(params))
  found = {"checkpoint" if name == "remat2" else name  # remat2: the primitive's name in older jax
           for name in re.findall(r"\b(scan|checkpoint|remat2)\[", jaxpr)}
  assert found == ({primitive} if primitive else set())
