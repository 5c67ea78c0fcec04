"""This project's own exceptions: the ones the command line turns into a one-line error.

Any other exception is a bug, and keeps its traceback.
"""


class InputError(ValueError):
  """Bad input a user can fix (a config, a flag, a file, a workdir): its first line names the problem."""


class Preempted(Exception):
  """SIGTERM stopped the run after saving its step: whatever was to follow the training
  (evaluation, the next run of a sweep) must not, since the model is unfinished."""


class Diverged(ArithmeticError):
  """A non-finite loss or gradient: the run stops without saving the state it produced."""
