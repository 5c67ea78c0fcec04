"""Will a run fit: its real train step compiled ahead of time for N devices, before a pod is booked.

`python -m scratchpad compile --config=... --devices=N [--hbm_gib=G] [--topology=v5e:4x4]` lowers
and compiles the config's train step (its mesh, shardings, remat, dtype) for abstract state and
batch, allocating nothing, and reads the per-device memory XLA plans for it. With `--topology`
(libtpu installed, `.[tpu]`) it compiles for that TPU slice from this host, as MaxText's
ahead-of-time compile does, so the memory is the TPU compiler's; otherwise for N of this host's
devices (`--xla_force_host_platform_device_count`), so it is the CPU compiler's, which lays out
buffers differently (no TPU tiling or fusions): a guide, named as such in the report. FLOPs come
from the architecture (`transformer.train_flops_per_token`): XLA's cost analysis misses custom calls.
"""

from __future__ import annotations

import dataclasses
import re
import time

import jax
import ml_collections

from scratchpad import errors
from scratchpad.model import attention, transformer
from scratchpad.train import run_config, trainer

PAPER_VOCABULARY = 32_000  # SentencePiece tasks without $SCRATCHPAD_SPM: the pause paper's size


def target_devices(num_devices: int, topology: str = ""):
  """The devices to compile for, and the platform they are."""
  if topology:
    from jax.experimental import topologies
    try:
      devices = topologies.get_topology_desc(topology_name=topology, platform="tpu").devices
    except Exception as e:  # noqa: BLE001 - no libtpu, or an unknown topology name
      raise errors.InputError(f"--topology={topology}: cannot describe this TPU slice here "
                              f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); install "
                              "libtpu (pip install -e '.[tpu]') or leave --topology out") from None
    if num_devices and num_devices != len(devices):
      raise errors.InputError(f"--devices={num_devices} but topology {topology} has {len(devices)} chips")
    return list(devices), "tpu"
  devices = jax.devices()
  if len(devices) < num_devices:
    raise errors.InputError(f"--devices={num_devices} but this host has {len(devices)} devices")
  return devices[:num_devices], devices[0].platform


def model_config(cfg: ml_collections.ConfigDict) -> tuple[transformer.ModelConfig, str]:
  """The config's model, and where its vocabulary size came from."""
  try:
    return run_config.model_config(cfg), "the task's"
  except ValueError as e:
    if "SentencePiece" not in str(e):
      raise
    vocab = -(-(PAPER_VOCABULARY + 1) // 8) * 8  # + the pause token, padded as padded_vocab_size pads
    model = {k: v for k, v in cfg.model.to_dict().items() if k in transformer.ModelConfig.__dataclass_fields__}
    return transformer.ModelConfig(vocab_size=vocab, **model), f"{PAPER_VOCABULARY:,} ($SCRATCHPAD_SPM unset)"


def compile_report(cfg: ml_collections.ConfigDict, num_devices: int, hbm_gib: float, topology: str = "") -> dict:
  """Compiles `cfg`'s train step for the target devices; what each device needs, and whether it fits."""
  devices, platform = target_devices(num_devices, topology)
  run_config.check_run(cfg, len(devices))
  model_cfg, vocabulary = model_config(cfg)
  # The attention the target runs (splash on a TPU slice, per device under the step's mesh).
  chosen = attention.select(cfg.model.attention, backend=platform, dtype=model_cfg.dtype, num_devices=len(devices),
                            has_bias=model_cfg.position_encoding == "line_bias", fused_cpu=False,
                            fused_cpu_faster=False)
  model_cfg = dataclasses.replace(model_cfg, attention=chosen)
  cfg = ml_collections.ConfigDict(cfg.to_dict())
  cfg.model.attention = chosen
  length = cfg.data.inputs_length + cfg.data.targets_length
  if not length:
    raise errors.InputError("config keys data.inputs_length and data.targets_length are 0 (the task's longest): "
                            "set the row length to compile for")
  start = time.perf_counter()
  setup = trainer.ShardedTraining(cfg, devices, model_cfg=model_cfg)
  gib = lambda n: n / 2**30
  try:
    m = setup.compile_train_step(cfg.train.batch_size, length).memory_analysis()
    arguments, outputs, aliased, temporaries = (m.argument_size_in_bytes, m.output_size_in_bytes,
                                                m.alias_size_in_bytes, m.temp_size_in_bytes)
    total, refused = arguments + outputs - aliased + temporaries, ""
  except Exception as e:  # noqa: BLE001 - the TPU compiler refuses a step that exceeds its HBM
    if "RESOURCE_EXHAUSTED" not in str(e):
      raise
    refused = str(e).strip().splitlines()[0]
    needed = re.search(r"temporaries \(([\d.]+)G\)", refused)
    arguments = outputs = aliased = 0
    temporaries = float(needed.group(1)) * 2**30 if needed else float("nan")
    total = float("inf")
  tokens = cfg.train.batch_size * length
  return {
      "config": cfg.variant, "task": cfg.task, "devices": len(devices), "platform": platform,
      "memory_from": f"the TPU compiler ({topology})" if topology else f"{platform} compiler ({len(devices)} "
                     f"host devices): a guide, not the accelerator's layout",
      "mesh": dict(zip(setup.mesh.axis_names, setup.mesh.devices.shape)), "dtype": model_cfg.dtype,
      "remat": model_cfg.remat, "scan_layers": model_cfg.scan_layers, "attention": chosen,
      "microbatches": cfg.train.microbatches, "vocabulary": vocabulary,
      "parameters": transformer.param_count(model_cfg),
      "arguments_gib": gib(arguments), "temporaries_gib": gib(temporaries), "outputs_gib": gib(outputs - aliased),
      "total_gib": gib(total), "hbm_gib": hbm_gib, "fits": total <= hbm_gib * 2**30, "refused": refused,
      "tokens_per_step": tokens,
      "flops_per_step": transformer.train_flops_per_token(model_cfg, length) * tokens,
      "compile_s": time.perf_counter() - start,
  }


def describe(r: dict) -> str:
  """A report as the command prints it."""
  memory = (f"per device: arguments {r['arguments_gib']:.2f} GiB, temporaries {r['temporaries_gib']:.2f} GiB, "
            f"outputs {r['outputs_gib']:.2f} GiB, total {r['total_gib']:.2f} GiB" if not r["refused"] else
            f"per device: the compiler refused it: {r['refused']}")
  return "\n".join([
      f"{r['config']} ({r['task']}): {r['parameters']:,} parameters, {r['dtype']}, remat {r['remat']}, "
      f"{'scanned' if r['scan_layers'] else 'unrolled'} layers, attention {r['attention']}, "
      f"{r['microbatches']} microbatch(es), vocabulary {r['vocabulary']}",
      f"mesh {r['mesh']} over {r['devices']} {r['platform']} devices; memory from {r['memory_from']}",
      memory,
      f"per step: {r['tokens_per_step']:,} tokens, {r['flops_per_step'] / 1e12:,.1f} TFLOP "
      f"(6N + 12 L D T, PaLM's count); compiled in {r['compile_s']:.0f} s",
      f"fits {r['hbm_gib']:g} GiB per device: {'yes' if r['fits'] else 'NO'}",
  ])
