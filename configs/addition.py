"""Long addition, direct vs scratchpad (Nye et al. 2021, section 3; SPEC 1a).

Variants, as `--config=configs/addition.py:ARGS` with ARGS a comma list of:
  format   direct | scratchpad                 (default scratchpad)
  size     nano | tiny | mini | small | medium | base | 130m | 1b  (default tiny; config.SIZES)
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

from scratchpad import config as config_lib

FORMATS = ("direct", "scratchpad")
RECIPES = ("laptop", "paper")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = config_lib.parse_variant(
      arg, {"format": FORMATS, "size": tuple(config_lib.SIZES), "recipe": RECIPES},
      {"format": "scratchpad", "size": "tiny", "recipe": "laptop"}, "configs/addition.py")
  fmt = variant["format"]
  if variant["recipe"] == "paper":
    cfg = config_lib.base_config(f"addition_{fmt}", variant["size"], variant)
    cfg.data.update(pack=False, inputs_length=34, targets_length=336 if fmt == "scratchpad" else 18)
  else:
    cfg = config_lib.base_config(f"addition_{fmt}_1to2", variant["size"], variant)
    cfg.train.update(steps=2500, batch_size=16)
  cfg.eval.splits = ("test", "ood")
  return cfg
