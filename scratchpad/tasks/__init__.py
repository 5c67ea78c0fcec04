"""Data: the byte vocabulary, the papers' formats and their seqio Tasks.

`import scratchpad.tasks` registers every Task with seqio.
"""

from scratchpad.tasks.registry import TASKS, VOCABULARY, TaskInfo, get_task_info  # noqa: F401
