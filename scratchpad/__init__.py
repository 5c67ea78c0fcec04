"""Scratchpads and pause tokens: a JAX/Flax research stack."""
