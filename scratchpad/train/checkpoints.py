"""Orbax CheckpointManager: the train state, plus the step's data position.

The data position is the step itself (the input pipeline is seeded and skips
the batches already seen), so restoring the state restores the data too.

What can go wrong with a checkpoint on disk, and what restoring does about it:
- a save cut short by a crash leaves a step Orbax deems unfinished (locally
  `N.orbax-checkpoint-tmp...`; on gs:// `N/` without its commit file), which it
  never lists: the latest complete step is restored and the unfinished one named;
- a checkpoint of a differently shaped model (or vocabulary) is refused with the
  step and the parameters that differ;
- a damaged checkpoint (truncated or corrupt files) is refused with its step; with
  `fallback`, it is moved to WORKDIR/damaged_checkpoints/N (kept, not deleted) and
  the previous step is tried.
"""

from __future__ import annotations

import contextlib
import os
import sys

import jax
import orbax.checkpoint as ocp

from scratchpad import errors, files

DIRECTORY = "checkpoints"
DAMAGED_DIRECTORY = "damaged_checkpoints"
# One named item, not Orbax's unnamed one: workdirs hold `N/state/`, and the unnamed item would be `N/default/`.
ITEM = "state"


class CheckpointError(errors.InputError):
  """A checkpoint that cannot be restored into this run's state."""


class DamagedCheckpoint(CheckpointError):
  """A checkpoint whose files cannot be read back."""

  def __init__(self, step: int, message: str):
    super().__init__(message)
    self.step = step


def manager(workdir: str, save_every: int = 1000, keep: int = 3) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(save_interval_steps=save_every, max_to_keep=keep, create=True)
  handlers = ocp.handlers.create_default_handler_registry(**{ITEM: ocp.StandardCheckpointHandler()})
  return ocp.CheckpointManager(files.absolute(os.path.join(workdir, DIRECTORY)), options=options,
                               handler_registry=handlers)


def save(mngr: ocp.CheckpointManager, step: int, state, force: bool = False) -> bool:
  return mngr.save(step, args=ocp.args.Composite(**{ITEM: ocp.args.StandardSave(state)}), force=force)


def _step_of(name: str) -> int | None:
  try:
    return ocp.path.step.step_from_checkpoint_name(name)
  except ValueError:  # a directory that is no step's
    return None


def unfinished_steps(workdir: str) -> list[int]:
  """Steps whose save never finished (the process died while writing them), as Orbax tells them."""
  names = ocp.path.step.tmp_checkpoints(files.absolute(os.path.join(workdir, DIRECTORY)))
  return sorted(step for step in map(_step_of, names) if step is not None)


def _shapes(tree) -> dict[str, tuple]:
  """`params/blocks/0/mlp/...` -> (shape, dtype); lists and dicts alike (saved metadata keys are strings)."""
  name = lambda key: str(getattr(key, "key", getattr(key, "idx", getattr(key, "name", key))))
  return {"/".join(map(name, path)): (tuple(leaf.shape), str(leaf.dtype))
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def differences(mngr: ocp.CheckpointManager, step: int, abstract_state) -> list[str]:
  """How the parameters saved at `step` differ from `abstract_state`'s (empty: they match)."""
  saved = _shapes({"params": mngr.metadata(step).item_metadata[ITEM].tree["params"]})
  wanted = _shapes({"params": abstract_state["params"]})
  diffs = [f"{k} is {wanted[k][0]} {wanted[k][1]} here but {saved[k][0]} {saved[k][1]} in the checkpoint"
           for k in wanted if k in saved and saved[k] != wanted[k]]
  diffs += [f"{k} is not in the checkpoint" for k in wanted if k not in saved]
  diffs += [f"the checkpoint has {k}, which this model lacks" for k in saved if k not in wanted]
  return diffs


def _first_line(error: Exception, limit: int = 300) -> str:
  line = (str(error).strip().splitlines() or [type(error).__name__])[0]
  return line if len(line) <= limit else line[:limit] + "..."


def _is_closed_loop_callback(unraisable) -> bool:
  return isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == "Event loop is closed"


@contextlib.contextmanager
def _closed_loop_callbacks_dropped():
  """When a restore fails, Orbax closes its event loop while TensorStore reads are still
  pending; as each one finishes, its callback into that loop prints a "RuntimeError: Event
  loop is closed" traceback (Python's unraisable hook): noise around the one-line error,
  dropped here (and only that). The hook goes back after a restore that succeeded; after
  one that failed it stays, since those reads finish later, from TensorStore's threads."""
  previous = sys.unraisablehook
  if not getattr(previous, "drops_closed_loop_callbacks", False):
    def hook(unraisable):
      if not _is_closed_loop_callback(unraisable):
        previous(unraisable)
    hook.drops_closed_loop_callbacks = True
    sys.unraisablehook = hook
  yield  # an exception leaves the hook in place (see above)
  sys.unraisablehook = previous


@_closed_loop_callbacks_dropped()
def _restore_step(mngr: ocp.CheckpointManager, step: int, abstract_state):
  where = f"checkpoint step {step} in {mngr.directory}"
  try:
    diffs = differences(mngr, step, abstract_state)
  except Exception as e:  # unreadable metadata: the checkpoint itself is damaged
    raise DamagedCheckpoint(step, f"{where} is damaged: {_first_line(e)}") from e
  if diffs:
    shown = "; ".join(diffs[:3]) + (f"; and {len(diffs) - 3} more" if len(diffs) > 3 else "")
    raise CheckpointError(f"{where} is from another model: {shown}")
  try:
    return mngr.restore(step, args=ocp.args.Composite(**{ITEM: ocp.args.StandardRestore(abstract_state)}))[ITEM]
  except Exception as e:
    raise DamagedCheckpoint(step, f"{where} is damaged: {_first_line(e)}") from e


def _set_aside(mngr: ocp.CheckpointManager, step: int) -> str:
  """Moves a damaged step out of the manager's sight, keeping its files.

  A rename of our own, since Orbax can only delete a step: `mngr.delete` removes the files,
  and `todelete_subdir` would move every step that `max_to_keep` retires too (and still
  deletes on gs://). `mngr.reload()` is Orbax's way to reread a directory changed behind it.
  """
  target_dir = os.path.join(os.path.dirname(str(mngr.directory)), DAMAGED_DIRECTORY)
  target = os.path.join(target_dir, str(step))
  suffix = 1
  while files.exists(target):
    target, suffix = os.path.join(target_dir, f"{step}.{suffix}"), suffix + 1
  if files.is_writer():
    files.makedirs(target_dir)
    files.rename(os.path.join(str(mngr.directory), str(step)), target)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(f"set aside checkpoint {step}")
  mngr.reload()
  return target


def restore(mngr: ocp.CheckpointManager, abstract_state, step: int | None = None, fallback: bool = False):
  """The state at `step` (default: the latest complete one), laid out as `abstract_state`'s shardings.

  Raises CheckpointError for a checkpoint of another model, DamagedCheckpoint for
  unreadable files; with `fallback`, a damaged step is set aside and the step
  before it is tried, down to the first.
  """
  while True:
    current = mngr.latest_step() if step is None else step
    if current is None:
      return None
    try:
      return _restore_step(mngr, current, abstract_state)
    except DamagedCheckpoint as e:
      if not fallback or step is not None:
        raise
      print(f"{e}; moved to {_set_aside(mngr, e.step)}, trying the step before it", flush=True)


def restore_latest(workdir: str, abstract_state):
  """WORKDIR's latest complete state, or None; a workdir without checkpoints is left untouched."""
  if not files.isdir(os.path.join(workdir, DIRECTORY)):
    return None
  with manager(workdir) as mngr:
    return restore(mngr, abstract_state)
