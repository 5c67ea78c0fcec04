"""Long addition, direct vs scratchpad (Nye et al. 2021, section 3; SPEC 1a).

Variants, as `--config=configs/addition.py:ARGS` with ARGS a comma list of:
  format   direct | scratchpad                 (default scratchpad)
  size     tiny | small | base                 (default tiny)
  recipe   laptop | paper                      (default laptop)

`paper`: the paper's setup exactly: 1-8 digit operands (100k train, 10k test),
9-10 digit ood (1k), 5,000 steps of batch 32 unpacked examples.
`laptop`: what a 2-core CPU trains in minutes: 1-2 digit operands (ood: 3-4
digits), packed batches of 16. On this CPU a 0.8M-parameter model from scratch
learns the paper's scratchpad for 1-2 digits in minutes, but plateaus on 1-3
and 1-4 digits in the same time (README, "Results").
Any field can be overridden: `--config.train.steps=200`; data lengths left at 0
become the task's longest training example.
"""

import ml_collections

FORMATS = ("direct", "scratchpad")
SIZES = {
    # name: (layers, d_model, heads, mlp_dim)
    "tiny": (4, 128, 4, 512),     # 0.8M parameters
    "small": (6, 256, 8, 1024),   # 4.8M
    "base": (12, 512, 8, 2048),   # 38M
}
RECIPES = ("laptop", "paper")


def parse_args(arg: str | None) -> dict[str, str]:
  chosen = {"format": "scratchpad", "size": "tiny", "recipe": "laptop"}
  for token in filter(None, (arg or "").split(",")):
    for kind, names in (("format", FORMATS), ("size", SIZES), ("recipe", RECIPES)):
      if token in names:
        chosen[kind] = token
        break
    else:
      raise ValueError(f"unknown variant {token!r} in configs/addition.py; choose from "
                       f"{', '.join(FORMATS)} | {', '.join(SIZES)} | {', '.join(RECIPES)}")
  return chosen


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = parse_args(arg)
  fmt, recipe = args["format"], args["recipe"]
  scratch = fmt == "scratchpad"
  cfg = ml_collections.ConfigDict()
  cfg.variant = ",".join(args.values())
  cfg.seed = 0

  layers, d_model, heads, mlp = SIZES[args["size"]]
  cfg.model = ml_collections.ConfigDict(dict(
      num_layers=layers, d_model=d_model, num_heads=heads, mlp_dim=mlp, max_length=1024,
      position_encoding="rope", rope_max_wavelength=10_000.0, dtype="float32"))

  cfg.data = ml_collections.ConfigDict(dict(pack=True, inputs_length=0, targets_length=0))
  cfg.train = ml_collections.ConfigDict(dict(
      steps=5000, batch_size=32, learning_rate=3e-3, warmup_steps=100, final_lr_fraction=0.1, weight_decay=0.01,
      grad_clip=1.0, b1=0.9, b2=0.98, log_every=25, checkpoint_every=500, keep_checkpoints=2))
  cfg.eval = ml_collections.ConfigDict(dict(splits=("test", "ood"), batch_size=500, max_examples=0))
  if recipe == "paper":
    cfg.task = f"addition_{fmt}"
    cfg.data.update(pack=False, inputs_length=34, targets_length=336 if scratch else 18)
  else:
    cfg.task = f"addition_{fmt}_1to2"
    cfg.train.update(steps=2500, batch_size=16)

  cfg.mesh = ml_collections.ConfigDict(dict(
      shape=(-1, 1, 1),  # (data, fsdp, tensor); -1 takes the remaining devices
      rules=(("batch", ("data", "fsdp")), ("embed", "fsdp"), ("vocab", "tensor"), ("heads", "tensor"),
             ("mlp", "tensor"), ("kv", None), ("norm", None), ("position", None))))
  return cfg
