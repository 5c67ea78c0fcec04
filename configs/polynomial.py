"""Polynomial evaluation, direct vs scratchpad (Nye et al. 2021, section 4).

Variants, as `--config=configs/polynomial.py:ARGS` with ARGS a comma list of:
  format   direct | scratchpad                 (default scratchpad)
  size     nano | tiny | mini | small | medium | base | 130m | 1b  (default tiny; transformer.SIZES)
  vocab    bytes | symbols                     (default bytes; symbols: one token per digit or sign)
  data     paper | large                       (default paper; large: 100,000 distinct train polynomials
                                                from the same sampler, 66% of them of 3 terms against
                                                the paper's 42%; the same test: a departure)

The data is the paper's: `polynomial_{direct,scratchpad}`, 10,000 train and
2,000 test polynomials of at most 3 terms, degree <= 3, coefficients in
[-10, 10], values in [-1000, 1000]. Examples are short (at most 46 input and
56 target tokens), so rows of 256 tokens pack several. The paper fine-tuned an
8B model; here a model learns from scratch (README, "Results").
"""

import ml_collections

from scratchpad import config as config_lib
from scratchpad.model import transformer
from scratchpad.tasks.registration import SYMBOLS_SUFFIX

FORMATS = ("direct", "scratchpad")
VOCABS = ("bytes", "symbols")
DATA = ("paper", "large")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = config_lib.parse_variant(arg, {"format": FORMATS, "size": tuple(transformer.SIZES), "vocab": VOCABS,
                                      "data": DATA},
                                     {"format": "scratchpad", "size": "tiny", "vocab": "bytes", "data": "paper"},
                                     "configs/polynomial.py")
  suffix = SYMBOLS_SUFFIX if variant["vocab"] == "symbols" else ""
  data = "_large" if variant["data"] == "large" else ""
  cfg = config_lib.base_config(f"polynomial{data}_{variant['format']}{suffix}", variant["size"], variant)
  cfg.model.num_heads *= 2  # narrower, more heads: finding operands at varying distances (README)
  cfg.data.update(inputs_length=64, targets_length=192)  # packed rows of 256 tokens
  cfg.train.update(steps=1500, batch_size=16)
  return cfg
