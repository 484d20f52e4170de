"""The device mesh from config: axes (data, fsdp, tensor), one size may be -1 (= fill)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import jax
import numpy as np

from emojax.parallel.axes import MESH_AXES


def mesh_shape(sizes: Mapping[str, int], num_devices: int) -> tuple[int, ...]:
    """Mesh shape in :data:`MESH_AXES` order; at most one size is -1 and takes the rest.

    Raises a ValueError naming the config field when the sizes do not multiply to the
    number of devices.
    """
    unknown = set(sizes) - set(MESH_AXES)
    if unknown:
        raise ValueError(f"config.mesh has unknown axes {sorted(unknown)}; known: {MESH_AXES}")
    shape = [int(sizes.get(axis, 1)) for axis in MESH_AXES]
    fill = [axis for axis, size in zip(MESH_AXES, shape, strict=True) if size == -1]
    bad = [f"mesh.{a}={s}" for a, s in zip(MESH_AXES, shape, strict=True) if s == 0 or s < -1]
    if bad or len(fill) > 1:
        raise ValueError(
            f"invalid mesh sizes {bad or fill}: each of config.mesh.{{data,fsdp,tensor}} must be "
            "a positive int, and at most one may be -1 (fill)"
        )
    fixed = math.prod(s for s in shape if s != -1)
    if fill:
        if num_devices % fixed:
            raise ValueError(
                f"config.mesh {dict(zip(MESH_AXES, shape, strict=True))}: {num_devices} devices "
                f"are not divisible by the fixed axes' product {fixed}"
            )
        shape[MESH_AXES.index(fill[0])] = num_devices // fixed
    elif fixed != num_devices:
        raise ValueError(
            f"config.mesh {dict(zip(MESH_AXES, shape, strict=True))} needs {fixed} devices but "
            f"{num_devices} are available; set one axis to -1 to fill"
        )
    return tuple(shape)


def make_mesh(
    sizes: Mapping[str, int], devices: Sequence[jax.Device] | None = None
) -> jax.sharding.Mesh:
    """A :class:`jax.sharding.Mesh` over ``devices`` (default: all) with Auto axis types."""
    devices = jax.devices() if devices is None else list(devices)
    shape = mesh_shape(sizes, len(devices))
    axis_types = (jax.sharding.AxisType.Auto,) * len(MESH_AXES)
    if len(devices) == len(jax.devices()):
        return jax.make_mesh(shape, MESH_AXES, axis_types=axis_types)
    return jax.sharding.Mesh(np.asarray(devices).reshape(shape), MESH_AXES, axis_types=axis_types)
