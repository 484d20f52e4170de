"""Mesh construction, logical-axis rules, sharding of state and batches, multi-host init."""

from emojax.parallel.axes import LOGICAL_AXIS_NAMES, LOGICAL_AXIS_RULES, MESH_AXES

__all__ = ["LOGICAL_AXIS_NAMES", "LOGICAL_AXIS_RULES", "MESH_AXES"]
