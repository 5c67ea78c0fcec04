"""Meshes: every device once, in the devices' order, and multi-slice meshes that keep slices apart."""

import dataclasses

import jax
import numpy as np
import pytest

from scratchpad.train import sharding


@dataclasses.dataclass(frozen=True)
class FakeDevice:
  """A device of a multi-slice job as mesh_utils sees one (no TPU coordinates: a CPU-like device)."""
  id: int
  slice_index: int
  platform: str = "cpu"
  device_kind: str = "cpu"
  process_index: int = 0


def test_a_mesh_holds_every_device_once_in_order():
  mesh = sharding.make_mesh((2, -1, 2))
  assert mesh.devices.shape == (2, 2, 2) and mesh.axis_names == sharding.MESH_AXES
  np.testing.assert_array_equal(mesh.devices.flatten(), np.asarray(jax.devices()))


def test_a_multi_slice_mesh_puts_each_slice_on_its_own_stretch_of_the_data_axis():
  devices = [FakeDevice(i, slice_index=i // 4) for i in range(8)]
  mesh = sharding.make_mesh((4, 2, 1), devices, dcn_shape=(2, 1, 1))
  slices = np.vectorize(lambda d: d.slice_index)(mesh.devices)
  np.testing.assert_array_equal(slices[:2], 0)
  np.testing.assert_array_equal(slices[2:], 1)
  assert sorted(d.id for d in mesh.devices.flatten()) == list(range(8))


@pytest.mark.parametrize("dcn, message", [((2, 1, 1), "asks for 2 slices, but the devices form 1"),
                                          ((3, 1, 1), "each dividing the mesh shape"),
                                          ((2, 1), "must have 3 entries")])
def test_a_dcn_shape_that_does_not_fit_the_slices_is_a_one_line_error(dcn, message):
  with pytest.raises(ValueError, match=message) as e:
    sharding.make_mesh((4, 2, 1), dcn_shape=dcn)
  assert "\n" not in str(e.value)
