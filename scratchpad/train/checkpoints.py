"""Orbax CheckpointManager: the train state, plus the step's data position.

The data position is the step itself (the input pipeline is seeded and skips
the batches already seen), so restoring the state restores the data too.
"""

from __future__ import annotations

import os

import orbax.checkpoint as ocp


def manager(workdir: str, save_every: int = 1000, keep: int = 3) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(save_interval_steps=save_every, max_to_keep=keep, create=True)
  return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "checkpoints")), options=options)


def save(mngr: ocp.CheckpointManager, step: int, state, force: bool = False) -> bool:
  return mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state)), force=force)


def restore(mngr: ocp.CheckpointManager, abstract_state, step: int | None = None):
  """The state at `step` (default: the latest), laid out as `abstract_state`'s shardings."""
  step = mngr.latest_step() if step is None else step
  if step is None:
    return None
  try:
    restored = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state)))
  except (ValueError, KeyError) as e:
    raise ValueError(f"checkpoint {step} in {mngr.directory} does not match this model: "
                     f"{str(e).splitlines()[0]}") from e
  return restored["state"]


def restore_latest(workdir: str, abstract_state):
  """WORKDIR's latest complete state, or None; a workdir without checkpoints is left untouched."""
  if not os.path.isdir(os.path.join(workdir, "checkpoints")):
    return None
  mngr = manager(workdir)
  try:
    return restore(mngr, abstract_state)
  finally:
    mngr.close()
