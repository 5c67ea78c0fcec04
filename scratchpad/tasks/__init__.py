"""Data: the byte vocabulary, the papers' formats and their seqio Tasks.

`import scratchpad.tasks` registers every Task with seqio.
"""

import tensorflow as tf

# TensorFlow only feeds data (seqio, tf.data): the accelerators belong to JAX.
tf.config.set_visible_devices([], "GPU")

from scratchpad.tasks.registry import TASKS, VOCABULARY, TaskInfo, get_task_info  # noqa: E402,F401
