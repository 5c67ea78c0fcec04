"""Meshes and logical-axis sharding rules (MaxText style).

Parameters name their logical axes (`logical_axes` metadata); a config's rules
table maps each logical name to mesh axes, e.g. ("embed", "fsdp"). A logical
axis with no rule, or whose mesh axes are already used by an earlier dimension
of the same array, or that the mesh size does not divide, is replicated. That
last test is why the mapping is ours rather than Flax's `logical_to_mesh_axes`,
which keeps an axis the mesh does not divide (the small presets' 4 heads on a
tensor axis of 8, say) and leaves the compiler to refuse it.
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import jax
from flax import nnx
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from scratchpad import errors

MESH_AXES = ("data", "fsdp", "tensor")


def mesh_shape(shape: Sequence[int], num_devices: int) -> tuple[int, ...]:
  """`shape` with its -1 entry (at most one) resolved to the remaining devices.

  Raises ValueError, with what a shape must be, if it does not fit `num_devices`.
  """
  shape = tuple(shape)
  allowed = (f"{len(MESH_AXES)} entries ({', '.join(MESH_AXES)}), each > 0 or one -1 for the remaining devices, "
             f"whose product is the {num_devices} devices")
  if (len(shape) != len(MESH_AXES) or shape.count(-1) > 1
      or not all(isinstance(n, int) and (n > 0 or n == -1) for n in shape)):
    raise errors.InputError(f"must have {allowed}")
  known = math.prod(n for n in shape if n != -1)
  if num_devices % known or (-1 not in shape and known != num_devices):
    raise errors.InputError(f"does not fit the {num_devices} devices: it must have {allowed}")
  return tuple(num_devices // known if n == -1 else n for n in shape)


def make_mesh(shape: Sequence[int], devices=None, dcn_shape: Sequence[int] = (1, 1, 1)) -> Mesh:
  """A (data, fsdp, tensor) mesh in the devices' physical order; one -1 entry takes the remaining
  devices. `dcn_shape` says how many slices (multi-slice TPU, linked by the data-center network)
  each axis spans: within a slice the devices follow the chips' torus (`mesh_utils`), across
  slices the slow links carry that axis only (usually data)."""
  devices = list(jax.devices() if devices is None else devices)
  try:
    resolved = mesh_shape(shape, len(devices))
  except ValueError as e:
    raise errors.InputError(f"mesh shape {tuple(shape)} {e}") from None
  dcn = tuple(dcn_shape)
  if len(dcn) != len(MESH_AXES) or any(n < 1 or size % n for n, size in zip(dcn, resolved)):
    raise errors.InputError(f"mesh dcn_shape {dcn} must have {len(MESH_AXES)} entries, each dividing the mesh "
                            f"shape {resolved}")
  if math.prod(dcn) == 1:
    return Mesh(mesh_utils.create_device_mesh(resolved, devices, allow_split_physical_axes=True), MESH_AXES)
  slices = {getattr(d, "slice_index", 0) for d in devices}
  if len(slices) != math.prod(dcn):
    raise errors.InputError(f"mesh dcn_shape {dcn} asks for {math.prod(dcn)} slices, but the devices form "
                            f"{len(slices)}")
  ici = tuple(size // n for size, n in zip(resolved, dcn))
  return Mesh(mesh_utils.create_hybrid_device_mesh(ici, dcn, devices, allow_split_physical_axes=True), MESH_AXES)


def mesh_axes(rules, name: str | None) -> tuple[str, ...]:
  """The mesh axes `rules` ((logical name, mesh axis | axes | None), ...) map a logical axis to."""
  axes = dict((rule_name, axes) for rule_name, axes in rules).get(name)
  return (axes,) if isinstance(axes, str) else tuple(axes or ())


def logical_to_mesh_spec(logical_axes, rules, mesh: Mesh, shape) -> PartitionSpec:
  used, spec = set(), []
  for name, dim in zip(logical_axes, shape):
    axes = tuple(a for a in mesh_axes(rules, name) if a not in used and mesh.shape[a] > 1)
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
  return NamedSharding(mesh, PartitionSpec(mesh_axes(rules, "batch") or None, None))


def under_mesh(fn, mesh: Mesh):
  """`fn`, traced with `mesh` as the context's abstract mesh: what a kernel without partitioning
  rules (splash attention) reads to run on each device's own shard (`shard_map`)."""

  @functools.wraps(fn)
  def traced(*args, **kwargs):
    with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
      return fn(*args, **kwargs)

  return traced


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())
