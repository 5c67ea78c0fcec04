"""Decoding benchmark: the compiled KV-cache greedy decoder against full recomputation.

    python -m benchmarks.decode                      # reference model, addition and program lengths
    python -m benchmarks.decode --tasks=program --batch=8
    python -m benchmarks.decode --layers=1 --d_model=32 --heads=4 --mlp_dim=64 --tasks=tiny --batch=2

Both decoders are `scratchpad.model.decode`'s (`greedy_decode`: prefill + one
`lax.while_loop` over a KV cache; `greedy_decode_full`: every step reruns the model over
the whole prompt + output buffer), on a randomly initialised model and random full-length
prompts. `eos_id=-1`, an id argmax never returns, so every call decodes exactly
`max_new_tokens` tokens in both. Each is compiled (untimed, reported), then timed
`--reps` times (median); tokens/s counts generated tokens (batch x max_new_tokens).

Lengths (`--tasks`): "addition" = prompt 40, 340 new tokens (a scratchpad of long addition);
"program" = prompt 300, 512 new tokens (a Python execution trace); "tiny" = 16 + 32 for a
smoke test. Override with `--prompt` and `--new` (one task then).

`--full_steps=N` times full recomputation over N decode steps of the same buffer length
(prompt + max_new_tokens, by lengthening the prompt) and scales to max_new_tokens: exact for
this decoder, whose every step costs the same; the table marks it. 0 runs it all (the default
on GPU/TPU; on CPU the default is 16: a full 512-step recompute of batch 8 takes ~13 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from benchmarks import common
from scratchpad.markdown import markdown_table
from scratchpad.model import decode, transformer

TASKS = {"addition": (40, 340), "program": (300, 512), "tiny": (16, 32)}


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog=__doc__.split("\n", 1)[1])
  common.add_model_flags(p)
  p.add_argument("--tasks", default="addition,program", help=f"comma list of {', '.join(TASKS)}")
  p.add_argument("--prompt", type=int, default=0, help="prompt length (overrides the task's)")
  p.add_argument("--new", type=int, default=0, help="new tokens (overrides the task's)")
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--reps", type=int, default=3, help="timed calls of the KV-cache decoder")
  p.add_argument("--full_reps", type=int, default=1, help="timed calls of full recomputation")
  p.add_argument("--full_steps", type=int, default=None,
                 help="time full recomputation over this many steps and scale (0: all; default all on "
                      "GPU/TPU, 16 on CPU)")
  common.add_host_memory_flag(p)
  p.add_argument("--json", default="", help="also write the results to this JSON file")
  return p.parse_args(argv)


def prompts(batch: int, length: int, vocab: int, seed: int = 0):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(common.NUM_SPECIAL, min(vocab, 256 + common.NUM_SPECIAL), (batch, length), dtype=np.int32)
  return jnp.asarray(tokens), jnp.ones((batch, length), jnp.int32)


def main(argv=None) -> dict:
  args = parse_args(argv)
  memory = common.set_host_memory(args)
  cfg = common.model_config(args)
  model = transformer.Transformer(cfg, nnx.Rngs(0))
  graphdef, params = nnx.split(model, nnx.Param)
  tasks = [t for t in args.tasks.split(",") if t]
  for t in tasks:
    if t not in TASKS:
      raise SystemExit(f"unknown task {t!r}: use {', '.join(TASKS)}")
  if (args.prompt or args.new) and len(tasks) != 1:
    raise SystemExit("--prompt/--new set the lengths of one task: give one --tasks")

  print(f"# Greedy decoding: {common.describe(cfg)}")
  print(f"batch {args.batch}, eos never emitted (every call decodes max_new_tokens); {common.device_line()}; "
        f"{common.load_line()}; {memory}", flush=True)
  header = ["task", "prompt", "new", "decoder", "first call s", "median s", "examples/s", "tokens/s",
            "model GFLOP/s", "speedup"]
  rows, results = [], []
  for task in tasks:
    prompt_len, new = TASKS[task]
    prompt_len, new = args.prompt or prompt_len, args.new or new
    tokens, segments = prompts(args.batch, prompt_len, cfg.vocab_size)

    cached = lambda: decode.greedy_decode(graphdef, params, tokens, segments, max_new_tokens=new, eos_id=-1)
    start = time.perf_counter()
    out_cached = jax.block_until_ready(cached())
    cache_compile = time.perf_counter() - start
    t_cache = common.time_calls(cached, warmup=0, steps=args.reps, sync=jax.block_until_ready)

    full_steps = args.full_steps if args.full_steps is not None else (16 if jax.default_backend() == "cpu" else 0)
    steps = min(full_steps, new) if full_steps else new
    full_tokens, full_segments = (tokens, segments) if steps == new else prompts(
        args.batch, prompt_len + new - steps, cfg.vocab_size)  # same buffer length, fewer steps
    full = lambda: decode.greedy_decode_full(graphdef, params, full_tokens, full_segments, max_new_tokens=steps,
                                             eos_id=-1)
    start = time.perf_counter()
    out_full = jax.block_until_ready(full())
    full_compile = time.perf_counter() - start
    t_full = common.time_calls(full, warmup=0, steps=args.full_reps, sync=jax.block_until_ready)
    full_s = t_full.median_s * new / steps
    if steps == new:  # same prompts: the two decoders must agree (float32; bf16 may break near-ties)
      agree = float(np.mean(np.asarray(out_cached) == np.asarray(out_full)))
    else:
      agree = float("nan")

    # Model FLOPs (PaLM counting, forward only): the cache decoder runs the prompt once, then
    # one token per step over the whole cache; full recompute runs the whole buffer every step
    # (its attention skips the key blocks causality masks whole: it computes less than counted).
    total = prompt_len + new
    cache_flops = args.batch * (prompt_len * common.forward_flops_per_token(cfg, total)
                                + new * common.forward_flops_per_token(cfg, total))
    full_flops = args.batch * new * total * common.forward_flops_per_token(cfg, total)
    for name, compile_s, seconds, flops in (("KV cache", cache_compile, t_cache.median_s, cache_flops),
                                            ("full recompute" + (f" ({steps}/{new} steps, scaled)"
                                                                 if steps != new else ""),
                                             full_compile, full_s, full_flops)):
      rows.append([task, prompt_len, new, name, f"{compile_s:.1f}", f"{seconds:.4g}", f"{args.batch / seconds:.4g}",
                   f"{args.batch * new / seconds:,.0f}", f"{flops / seconds / 1e9:.1f}",
                   f"{full_s / seconds:.1f}x" if name == "KV cache" else "1.0x"])
    results.append({"task": task, "prompt": prompt_len, "new": new, "batch": args.batch,
                    "kv_cache_s": t_cache.median_s, "kv_cache_times_s": t_cache.times_s,
                    "full_s": full_s, "full_steps_timed": steps, "speedup": full_s / t_cache.median_s,
                    "outputs_agree": agree})
    print(f"{task}: KV cache {t_cache.median_s:.3f}s, full recompute {full_s:.3f}s"
          + (f", outputs agree on {100 * agree:.1f}% of tokens" if steps == new else ""), flush=True)

  print()
  print(markdown_table(header, rows))
  print()
  print("- speedup = full recompute time / KV-cache time, same prompts, batch and new tokens; first call s = "
        "tracing, compilation and one run (untimed); model GFLOP/s = forward FLOPs "
        "(common.forward_flops_per_token, attention over the whole buffer) / time")
  for r in results:
    if r["new"] >= 512:  # the target: 512-token scratchpads
      print(f"- target: KV cache >= 10x full recomputation at {r['new']} new tokens ({r['task']}): "
            f"{r['speedup']:.1f}x, {'met' if r['speedup'] >= 10 else 'missed'}")
  summary = {"config": str(cfg), "device": common.device_line(), "batch": args.batch, "results": results}
  if args.json:
    import json
    with open(args.json, "w") as f:
      json.dump(summary, f, indent=1)
  return summary


if __name__ == "__main__":
  main()
