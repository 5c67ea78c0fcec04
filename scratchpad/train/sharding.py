"""Meshes and logical-axis sharding rules (MaxText style).

Parameters name their logical axes (`logical_axes` metadata); a config's rules
table maps each logical name to mesh axes, e.g. ("embed", "fsdp"). A logical
axis with no rule, or whose mesh axes are already used by an earlier dimension
of the same array, or that the mesh size does not divide, is replicated.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")


def make_mesh(shape: Sequence[int], devices=None) -> Mesh:
  """A (data, fsdp, tensor) mesh; one -1 entry takes the remaining devices."""
  devices = np.asarray(jax.devices() if devices is None else devices)
  shape = list(shape)
  if len(shape) != len(MESH_AXES):
    raise ValueError(f"mesh shape {tuple(shape)} must have {len(MESH_AXES)} entries {MESH_AXES}")
  if shape.count(-1) == 1:
    rest = math.prod(s for s in shape if s != -1)
    shape[shape.index(-1)] = devices.size // rest
  if math.prod(shape) != devices.size:
    raise ValueError(f"mesh shape {tuple(shape)} does not use the {devices.size} devices there are")
  return Mesh(devices.reshape(shape), MESH_AXES)


def logical_to_mesh_spec(logical_axes, rules, mesh: Mesh, shape) -> PartitionSpec:
  rules = dict((name, axes) for name, axes in rules)
  used, spec = set(), []
  for name, dim in zip(logical_axes, shape):
    axes = rules.get(name)
    axes = (axes,) if isinstance(axes, str) else tuple(axes or ())
    axes = tuple(a for a in axes if a not in used and mesh.shape[a] > 1)
    if axes and dim % math.prod(mesh.shape[a] for a in axes) == 0:
      used.update(axes)
      spec.append(axes[0] if len(axes) == 1 else axes)
    else:
      spec.append(None)
  return PartitionSpec(*spec)


def param_shardings(abstract_state: nnx.State, rules, mesh: Mesh):
  """NamedShardings for an nnx parameter State, as a pure dict like its values."""

  def one(variable):
    axes = variable.get_metadata().get("logical_axes") or (None,) * variable.get_value().ndim
    return NamedSharding(mesh, logical_to_mesh_spec(axes, rules, mesh, variable.get_value().shape))

  shardings = jax.tree.map(one, abstract_state, is_leaf=lambda x: isinstance(x, nnx.Variable))
  return nnx.to_pure_dict(shardings)


def batch_sharding(mesh: Mesh, rules) -> NamedSharding:
  """Sharding of a [batch, length] array: batch over the rule for "batch"."""
  axes = dict((name, axes) for name, axes in rules).get("batch", ())
  axes = (axes,) if isinstance(axes, str) else tuple(axes or ())
  return NamedSharding(mesh, PartitionSpec(axes or None, None))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())
