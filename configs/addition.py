"""Long addition, direct vs scratchpad (Nye et al. 2021, section 3).

Variants, as `--config=configs/addition.py:ARGS` with ARGS a comma list of:
  format   direct | scratchpad                 (default scratchpad)
  size     nano | tiny | mini | small | medium | base | 130m | 1b  (default tiny; transformer.SIZES)
  recipe   laptop | short | paper              (default laptop)
  vocab    symbols | bytes                     (default symbols)

`paper`: the paper's data and format exactly: 1-8 digit operands (100k train,
10k test), 9-10 digit ood (1k). The model and recipe are ours, for an hour of a
2-core CPU per format (docs/results/addition.md).
`short`: 1-5 digits, ood 6-7: where position schemes are compared on one budget.
`laptop`: the main job, minutes on a laptop CPU: the paper's data (1-8 digits, ood
9-10) on a shorter budget, the first 1,000 test examples decoded.
`symbols`: one token per digit or sign, the space absorbed (SymbolVocabulary), as
the paper's one token per digit; `bytes`: every character a token, spaces too.
Any field can be overridden: `--config.train.steps=200`,
`--config.model.position_encoding=rope`; data lengths left at 0 become the task's
longest training example.
"""

import ml_collections

from scratchpad import config as config_lib
from scratchpad.model import transformer
from scratchpad.tasks.registration import SYMBOLS_SUFFIX

FORMATS = ("direct", "scratchpad")
RECIPES = ("laptop", "short", "paper")
VOCABS = ("symbols", "bytes")
TASKS = {"laptop": "", "short": "_1to5", "paper": ""}  # the recipe's task, by digit range
# The main job's steps per format, for about 12 minutes of a 2-core CPU with the install. A
# packed step holds ~40 scratchpad examples and ~240 direct ones, so direct's 600 steps see
# nearly twice the examples of the scratchpad's 2,000 (at the paper's 4,000 steps each, direct
# still adds no 9- or 10-digit number). Out of distribution the scratchpad varies with the seed
# at this budget, at 2,500 steps too (docs/results/addition.md, the main job).
LAPTOP_STEPS = {"scratchpad": 2000, "direct": 600}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = config_lib.parse_variant(
      arg, {"format": FORMATS, "size": tuple(transformer.SIZES), "recipe": RECIPES, "vocab": VOCABS},
      {"format": "scratchpad", "size": "tiny", "recipe": "laptop", "vocab": "symbols"}, "configs/addition.py")
  fmt, recipe = variant["format"], variant["recipe"]
  task = f"addition_{fmt}{TASKS[recipe]}" + (SYMBOLS_SUFFIX if variant["vocab"] == "symbols" else "")
  cfg = config_lib.base_config(task, variant["size"], variant)
  cfg.model.num_heads *= 2  # narrower heads, twice as many: each step line looks up several operands
  # Line numbers by random gaps in training (positions.py): 9-digit additions 99.6% right after
  # 1-8 digit training, where `lines` reached 73.2% (docs/results/addition.md).
  cfg.model.position_encoding = "random_lines"
  # Places spread by random gaps too (one map a row): 10-digit additions 99.3% right after 1-8
  # digit training, where exact places reached 40.3% (docs/results/addition.md).
  cfg.model.update(max_place_gap=2, line_stride=128)
  # Packed rows of 512 tokens (inputs trimmed to the task's longest), loss on the targets only.
  row = 512 if variant["vocab"] == "symbols" else 1024
  cfg.data.update(inputs_length=64, targets_length=row - 64)
  cfg.train.update(batch_size=8, learning_rate=3e-3, warmup_steps=200)
  cfg.train.steps = {"laptop": LAPTOP_STEPS[fmt], "short": 1500, "paper": 4000}[recipe]
  cfg.eval.splits = ("test", "ood")
  if recipe == "laptop":
    cfg.eval.max_examples = 1000  # the first 1,000 of `test`, all of `ood`
    # Evaluate an average of the parameters: over 3 seeds, 10-digit additions 85.8 +- 13.9% right
    # after 1-8 digit training, where the last step's parameters gave 70.9 +- 28.4%
    # (docs/results/addition.md, the main job).
    cfg.train.ema_decay = 0.995
  return cfg
