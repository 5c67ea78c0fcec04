"""Data: the byte vocabulary, the papers' formats and their seqio Tasks.

`scratchpad.tasks.registry` registers every Task with seqio; asking this
package for `TASKS`, `VOCABULARY`, `TaskInfo` or `get_task_info` imports it.
The tracer (`scratchpad.tracing`) needs only the standard library, so
`python -m scratchpad trace` starts without loading TensorFlow.
"""

_REGISTRY_NAMES = ("TASKS", "VOCABULARY", "TaskInfo", "get_task_info")


def __getattr__(name: str):
  if name in _REGISTRY_NAMES:
    from scratchpad.tasks import registry
    return getattr(registry, name)
  raise AttributeError(f"module 'scratchpad.tasks' has no attribute {name!r}")
