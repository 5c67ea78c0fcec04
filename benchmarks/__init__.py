"""Benchmarks: training step throughput and MFU against PyTorch (`benchmarks.train`), and
KV-cache against full-recompute greedy decoding (`benchmarks.decode`). See benchmarks/README.md.

Only `scratchpad.model` is imported: no seqio, TensorFlow or task registry, so the
benchmarks run on a machine with just jax, flax and optax (PyTorch optional).
"""
