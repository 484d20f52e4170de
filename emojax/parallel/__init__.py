"""Mesh construction, logical-axis rules, sharding of state and batches, multi-host init,
host-memory retention for XLA:CPU."""

from emojax.parallel.axes import LOGICAL_AXIS_NAMES, LOGICAL_AXIS_RULES, MESH_AXES
from emojax.parallel.distributed import initialize_distributed
from emojax.parallel.host_memory import retain_freed_host_memory
from emojax.parallel.mesh import make_mesh, mesh_shape
from emojax.parallel.sharding import (
    batch_sharding,
    bytes_per_device,
    data_parallel_size,
    global_batch,
    mirror_shardings,
    replicated,
    strip_boxes,
    tree_shardings,
)

__all__ = [
    "LOGICAL_AXIS_NAMES",
    "LOGICAL_AXIS_RULES",
    "MESH_AXES",
    "batch_sharding",
    "bytes_per_device",
    "data_parallel_size",
    "global_batch",
    "initialize_distributed",
    "make_mesh",
    "mesh_shape",
    "mirror_shardings",
    "replicated",
    "retain_freed_host_memory",
    "strip_boxes",
    "tree_shardings",
]
