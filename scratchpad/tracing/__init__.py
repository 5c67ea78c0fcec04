"""The execution tracer and its sandbox: the standard library alone.

Nothing here imports TensorFlow, seqio or JAX, so `python -m scratchpad trace`
starts fast; the sandbox runs `tracer.py` by path as its template process.
"""
