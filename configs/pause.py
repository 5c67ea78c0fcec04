"""Pause tokens (Goyal et al. 2023): pretraining and the four fine-tuning variants.

`--config=configs/pause.py:ARGS`, ARGS a comma list of:
  variant  StdPT | PausePT                           pretraining (standard or with 10% pauses)
           StdPT_StdFT | StdPT_PauseFT |
           PausePT_StdFT | PausePT_PauseFT           fine-tuning (default PausePT_PauseFT)
  task     pretraining: text (offline, fixed: Python source + small tasks' text) | c4 (pods;
           SentencePiece model from $SCRATCHPAD_SPM)
           fine-tuning: parity | three_sum | multi_addition | digit_sum | card_total (the
           study's, direct answers; CPU) |
           addition | polynomial (small, direct answers) |
           gsm8k | squad | coqa | commonsense_qa | piqa | lambada | hellaswag |
           web_questions | natural_questions (the paper's nine; `_spm` tasks with c4)
  size     nano | tiny | mini | small | medium | base | 130m | 1b  (default tiny; transformer.SIZES)
  vocab    byte | spm: the byte vocabulary (default) or the SentencePiece model at
           $SCRATCHPAD_SPM (`c4` implies it; fine-tuning a C4 model on the nine needs it)

Fine-tuning starts from a pretraining run: `--config.train.init_from=WORKDIR` of a
`StdPT` run for StdPT_* variants and of a `PausePT` run for PausePT_* ones (checked).
PauseFT appends `pauses.finetune` (M_ft, default 10) pauses to every input;
evaluation appends `pauses.inference` (M_inf; unset: M_ft); `pauses.prepend=true`
puts them before the input. `python -m scratchpad pause-study` runs all of it.
"""

import ml_collections

from scratchpad import config as config_lib
from scratchpad import errors
from scratchpad.model import transformer
from scratchpad.tasks import downstream, pause_tasks
from scratchpad.tasks.direct_tasks import PAUSE_TASKS as SMALL_TASKS

PRETRAINING = pause_tasks.PAUSE_PRETRAINING
FINETUNING = pause_tasks.PAUSE_VARIANTS
CORPORA = {"text": "pretrain_text", "c4": "c4_std"}
DOWNSTREAM = downstream.DOWNSTREAM_TASKS


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = config_lib.parse_variant(
      arg, {"variant": PRETRAINING + FINETUNING, "task": tuple(CORPORA) + tuple(SMALL_TASKS) + DOWNSTREAM,
            "size": tuple(transformer.SIZES), "vocab": ("byte", "spm")},
      {"variant": "PausePT_PauseFT", "task": "parity", "size": "tiny", "vocab": "byte"}, "configs/pause.py")
  name, task = variant["variant"], variant["task"]
  spm = variant["vocab"] == "spm" or task == "c4"
  pretraining = name in PRETRAINING
  if pretraining != (task in CORPORA):
    raise errors.InputError(f"configs/pause.py: variant {name} takes a "
                            f"{'corpus (' + ', '.join(CORPORA) if pretraining else 'downstream task (not ' + task}), "
                            f"got task {task!r}")
  if spm and task in SMALL_TASKS or spm and task == "text":
    raise errors.InputError(f"configs/pause.py: task {task!r} uses the byte vocabulary, not spm")
  task_name = CORPORA.get(task) or SMALL_TASKS.get(task) or task + ("_spm" if spm else "")
  cfg = config_lib.base_config(task_name, variant["size"], variant)
  cfg.eval.splits = ("test",)
  if pretraining:
    cfg.pauses.pretrain_fraction = pause_tasks.PRETRAIN_FRACTION if name == "PausePT" else 0.0
    cfg.eval.splits = ()
    if task == "c4":  # the paper's pod recipe: 2048-token sequences, computed in bfloat16,
      cfg.model.dtype = "bfloat16"  # parameters and optimizer state split over every chip (FSDP)
      cfg.mesh.shape = (1, -1, 1)
      # Scanned, rematerialised layers, splash attention per chip and 2 microbatches: 130m takes
      # 7.6 GiB of a v5e chip (16 GiB) on 8 chips, 1b 6.8 GiB on 16 (`python -m scratchpad
      # compile`, benchmarks/NOTES.md)
      cfg.model.update(scan_layers=True, remat="full")
      cfg.train.microbatches = 2
      cfg.data.update(inputs_length=0, targets_length=2048)
      cfg.train.update(steps=100_000, batch_size=256, learning_rate=1e-3, warmup_steps=2000,
                       checkpoint_every=2000)
    else:  # one document a 256-byte row, unpacked, so both pretrainings see the same rows
      cfg.data.update(inputs_length=0, targets_length=256, pack=False)
      cfg.train.update(steps=400, batch_size=16, learning_rate=3e-3, warmup_steps=40, checkpoint_every=400,
                       keep_checkpoints=1)
    return cfg
  cfg.pauses.pretraining = name.split("_")[0]  # which pretraining train.init_from must be
  cfg.pauses.finetune = pause_tasks.M_FT if name.endswith("PauseFT") else 0
  if task in DOWNSTREAM:
    cfg.data.update(inputs_length=512, targets_length=128)
    cfg.train.update(steps=2000, batch_size=64, learning_rate=1e-4, warmup_steps=100, checkpoint_every=1000)
    cfg.eval.update(splits=(downstream.EVAL_SPLITS[task],), batch_size=64)
  else:
    # 1,000 steps: at 300 every variant of digit sum is under 20%, at 1,000 the pause variants
    # pull away (docs/results/pause_probes.md); the whole test split is decoded, to halve the noise.
    cfg.train.update(steps=1000, batch_size=16, learning_rate=2e-3, warmup_steps=30, checkpoint_every=1000,
                     keep_checkpoints=1, log_every=100)
    cfg.eval.update(max_examples=1000)
  return cfg
