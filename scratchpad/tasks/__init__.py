"""Data: the byte vocabulary, the papers' formats and their seqio Tasks.

`import scratchpad.tasks` registers every Task with seqio: each task module
registers its own through `registration`, and this package imports them all.
`get_task_info(name)` gives what seqio does not keep of a task (its alphabet,
lengths, answer parser, headline metric, pauses). The tracer and its sandbox
are `scratchpad.tracing`, which needs the standard library alone.
"""

from scratchpad.tasks import addition, c4, direct_tasks, downstream, pause_tasks, polynomial, programs, text_corpus
from scratchpad.tasks.pause_tasks import with_pauses
from scratchpad.tasks.registration import get_task_info, task_names, task_vocabulary, TaskInfo
from scratchpad.tasks.vocabulary import VOCABULARY

__all__ = ["addition", "c4", "direct_tasks", "downstream", "pause_tasks", "polynomial", "programs", "text_corpus",
           "TaskInfo", "get_task_info", "task_names", "task_vocabulary", "with_pauses", "VOCABULARY"]
