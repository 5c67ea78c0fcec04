"""Python execution, direct vs scratchpad (execution trace) (Nye et al. 2021, section 5).

Variants, as `--config=configs/programs.py:ARGS` with ARGS a comma list of:
  format   direct | scratchpad                         (default scratchpad)
  size     nano | tiny | mini | small | medium | base | 130m | 1b  (default tiny; transformer.SIZES)
  data     laptop | paper | single_line | mbpp         (default laptop)

`paper`: the paper's synthetic programs (while loops, ifs, integer arithmetic),
400 train / 100 validation / 200 test (`programs_*`). The paper fine-tuned a
137B model on the 400; a model trained from scratch needs more programs, so
`laptop` trains on 10,000 generated programs of the same kind and tests on the
same 200 (`programs_large_*`). `single_line`: one-line transformations of
strings, lists and integers (10,000 / 1,000). `mbpp`: MBPP's functions run on
their test calls, from the JSONL file named by $SCRATCHPAD_MBPP.
"""

import ml_collections

from scratchpad import config as config_lib
from scratchpad.model import transformer

FORMATS = ("direct", "scratchpad")
DATA = {"laptop": "programs_large", "paper": "programs", "single_line": "single_line", "mbpp": "mbpp"}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = config_lib.parse_variant(
      arg, {"format": FORMATS, "size": tuple(transformer.SIZES), "data": tuple(DATA)},
      {"format": "scratchpad", "size": "tiny", "data": "laptop"}, "configs/programs.py")
  cfg = config_lib.base_config(f"{DATA[variant['data']]}_{variant['format']}", variant["size"], variant)
  cfg.model.max_length = 2048
  # Synthetic traces run to 768 byte tokens (MBPP's to 2,048): 600 steps of 8 packed rows is ~15 min
  # here; the preset's 4 heads, since softmax over long rows is what a CPU step spends most on.
  cfg.train.update(steps=600, batch_size=8, warmup_steps=50)
  cfg.eval.batch_size = 200
  return cfg
