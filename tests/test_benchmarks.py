"""The benchmarks: what they count and compare is right, they import no TensorFlow or seqio
(GPU machines have neither), and both run end to end at tiny sizes."""

import subprocess
import sys

import jax
import numpy as np
import pytest

from benchmarks import common, decode
from benchmarks import train as train_bench
from conftest import ROOT, table_rows
from scratchpad import config as config_lib
from scratchpad.model import transformer
from scratchpad.train import compile_options, run_config

TINY = ["--layers=1", "--d_model=32", "--heads=4", "--mlp_dim=64"]


def test_the_benchmark_trains_with_the_configs_defaults_and_byte_vocabulary():
  train = config_lib.base_config("addition_direct", "tiny", {}).train
  for field, value in vars(common.TrainHParams()).items():
    assert train[field] == value, field
  assert common.BYTE_VOCAB_SIZE == run_config.padded_vocab_size()


def test_the_flops_formula_agrees_with_xlas_count_of_the_step():
  cfg = transformer.ModelConfig(vocab_size=264, num_layers=2, d_model=128, num_heads=4, mlp_dim=512)
  seq, batch = 64, 2
  _, _, xla_flops = train_bench.jax_train_step(cfg, common.TrainHParams(), common.synthetic_batch(batch, seq, 264))
  counted = common.train_flops_per_token(cfg, seq) * seq * batch
  assert 0.85 < counted / xla_flops < 1.05  # XLA also counts softmax, norms and AdamW, which MFU leaves out


@pytest.mark.parametrize("block", [None, 16])
def test_the_matmuls_alone_are_the_steps_flops_each_one_compiled(block):
  """Forward and backward, our step's matmuls are PaLM's count (attention in full); causal query
  blocks skip (n - 1) / 2n of attention's. XLA compiles every one of them, none merged."""
  cfg = transformer.ModelConfig(vocab_size=264, num_layers=2, d_model=32, num_heads=4, mlp_dim=64,
                                attention_block=block or 0)
  seq, batch = 64, 2
  _, eqns, compiled = train_bench.matmuls_alone(cfg, common.TrainHParams(), common.synthetic_batch(batch, seq, 264),
                                                compile_options.train_step("cpu"))
  n = seq // block if block else 1
  attention_flops = 12 * cfg.num_layers * cfg.d_model * seq * (n + 1) / (2 * n)
  assert train_bench.matmul_flops(eqns) == pytest.approx((6 * common.matmul_params(cfg) + attention_flops) * seq * batch)
  assert len(eqns) == 3 + cfg.num_layers * (18 + 6 * n)  # unembedding; 6 projections, 2 attention matmuls per block, x3
  assert compiled.as_text().count(" dot(") == len(eqns)


def test_step_matmuls_counts_a_scans_body_once_a_step():
  def f(w_DxD, x_D):
    return jax.lax.scan(lambda x, _: (x @ w_DxD, None), x_D, length=5)[0]
  assert len(train_bench.step_matmuls(f, np.eye(3, dtype=np.float32), np.ones(3, np.float32))) == 5


def test_the_benchmarks_import_no_tensorflow_or_seqio():
  code = ("import sys, benchmarks.train, benchmarks.decode; "
          "bad = [m for m in ('tensorflow', 'seqio', 'scratchpad.tasks') if m in sys.modules]; "
          "assert not bad, bad")
  subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


def test_the_decode_benchmark_times_both_decoders_which_agree(capsys):
  summary = decode.main([*TINY, "--tasks=tiny", "--batch=2", "--full_steps=0", "--reps=2", "--full_reps=1"])
  (result,) = summary["results"]
  assert result["outputs_agree"] == 1.0 and result["speedup"] > 1
  # The printed table: a row per decoder, its numbers those of the summary.
  cache, full = table_rows(capsys.readouterr().out, "task")
  assert list(cache) == ["task", "prompt", "new", "decoder", "first call s", "median s", "examples/s", "tokens/s",
                         "model GFLOP/s", "speedup"]
  for row in (cache, full):
    assert (row["task"], row["prompt"], row["new"]) == ("tiny", "16", "32")
    assert float(row["first call s"]) >= 0 and float(row["model GFLOP/s"]) >= 0
  assert (cache["decoder"], full["decoder"]) == ("KV cache", "full recompute")  # every step timed: not scaled
  for row, seconds in ((cache, result["kv_cache_s"]), (full, result["full_s"])):
    assert row["median s"] == f"{seconds:.4g}"
    assert row["examples/s"] == f"{2 / seconds:.4g}" and row["tokens/s"] == f"{2 * 32 / seconds:,.0f}"
  assert (cache["speedup"], full["speedup"]) == (f"{result['speedup']:.1f}x", "1.0x")


def test_the_train_benchmark_prints_its_table_targets_and_profile(capsys, tmp_path):
  argv = [*TINY, "--seq=32", "--batch=4", "--steps=2", "--rounds=1", "--torch=none", f"--profile={tmp_path}"]
  summary = train_bench.main(argv)
  out = capsys.readouterr().out
  # The table: our step, then its matmuls alone, each row the summary's numbers.
  rows = table_rows(out, "implementation")
  assert [row["implementation"] for row in rows] == ["JAX/Flax (ours)", train_bench.MATMULS_ALONE]
  cfg = common.model_config(train_bench.parse_args(argv))
  assert summary["flops_per_token"] == common.train_flops_per_token(cfg, 32)
  for row, result in zip(rows, summary["results"]):
    assert row["implementation"] == result["name"] and "error" not in result
    assert row["median step ms"] == f"{1e3 * result['median_step_s']:.1f}"
    assert row["tokens/s"] == f"{result['tokens_per_s']:,.0f}" and result["tokens_per_s"] > 0
    assert result["tokens_per_s"] == pytest.approx(4 * 32 / result["median_step_s"])
    assert row["FLOPs/token"] == common.si(summary["flops_per_token"])
    assert row["MFU %"] == f"{100 * result['mfu']:.1f}" and result["mfu"] > 0
    assert row["ours / this"] == f"{result['ours_over_this']:.2f}x"
  assert rows[0]["ours / this"] == "1.00x"
  notes = [line for line in out.splitlines() if line.startswith("- ")]
  note = lambda start: next((line for line in notes if line.startswith(start)), f"no note starts {start!r}")
  assert note("- matmul rate: ").startswith(f"- matmul rate: {summary['matmul_flop_per_s'] / 1e12:.4f} TFLOP/s")
  assert "matmuls of our step" in note(f"- {train_bench.MATMULS_ALONE}: the ")
  assert note("- FLOPs/token = ").startswith(
      f"- FLOPs/token = 6 x {common.matmul_params(cfg):,} matmul parameters + 12 x 1 layers x 32 x 32 seq (PaLM); "
      f"per step {summary['flops_per_token'] * 4 * 32 / 1e9:.2f} GFLOP")
  assert notes[-1] == ("- targets, this run (not the reference config on CPU: targets not binding): "
                       f"MFU {100 * summary['results'][0]['mfu']:.1f}% (target >= 60%: "
                       f"{'met' if summary['results'][0]['mfu'] >= 0.6 else 'missed'})")
  # The profile: the ops with the most time a step, most first, as the trace has them.
  ops = common.op_times(str(tmp_path), steps=3)
  assert ops and all(ms >= 0 for _, ms in ops)
  profile = table_rows(out, "op")
  assert [(row["op"], row["ms a step"]) for row in profile] == [(name, f"{ms:.1f}") for name, ms in ops[:15]]
  step_ms = 1e3 * summary["results"][0]["median_step_s"]
  assert [row["% of the step"] for row in profile] == [f"{100 * ms / step_ms:.1f}" for _, ms in ops[:15]]


def test_the_pytorch_model_is_ours_layer_for_layer():
  torch = pytest.importorskip("torch")
  from benchmarks import torch_model
  from flax import nnx
  cfg = transformer.ModelConfig(vocab_size=264, num_layers=2, d_model=32, num_heads=4, mlp_dim=64)
  params = nnx.to_pure_dict(nnx.split(transformer.Transformer(cfg, nnx.Rngs(0)), nnx.Param)[1])
  theirs = torch_model.TorchTransformer(264, 2, 32, 4, 64, max_len=16)
  t = lambda a: torch.tensor(np.asarray(a).reshape(np.asarray(a).shape[0], -1) if np.ndim(a) == 3 else np.asarray(a))
  with torch.no_grad():
    theirs.embed.copy_(t(params["embed_VxD"]))
    theirs.unembed.copy_(t(params["unembed_DxV"]))
    theirs.final_norm.scale.copy_(t(params["final_norm"]["scale"]))
    for block, ours in zip(theirs.blocks, params["blocks"].values()):
      a = ours["attention"]
      for name, key in (("wq", "q_DxHxK"), ("wk", "k_DxHxK"), ("wv", "v_DxHxK"), ("wo", "out_HxKxD")):
        getattr(block, name).copy_(torch.tensor(np.asarray(a[key]).reshape(32, 32)))
      block.wi.copy_(t(ours["mlp"]["wi_DxF"]))
      block.wo_mlp.copy_(t(ours["mlp"]["wo_FxD"]))
      block.attention_norm.scale.copy_(t(ours["attention_norm"]["scale"]))
      block.mlp_norm.scale.copy_(t(ours["mlp_norm"]["scale"]))
  tokens = np.random.default_rng(0).integers(6, 262, (2, 16), dtype=np.int32)
  positions = np.broadcast_to(np.arange(16, dtype=np.int32), (2, 16))
  ours_logits, _ = nnx.merge(*nnx.split(transformer.Transformer(cfg, nnx.Rngs(0)), nnx.Param))(
      tokens, positions, np.ones((2, 16), np.int32))
  np.testing.assert_allclose(theirs(torch.tensor(tokens, dtype=torch.long)).detach().numpy(), np.asarray(ours_logits),
                             atol=1e-4, rtol=1e-4)
