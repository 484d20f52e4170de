"""Shardings of train state and batches from the logical-axis table.

Parameters carry logical names (``nn.with_logical_partitioning``); :func:`tree_shardings`
maps an abstract (``jax.eval_shape``) tree of boxed values to ``NamedSharding`` s with
:data:`~emojax.parallel.axes.LOGICAL_AXIS_RULES`. Optimizer-state leaves that mirror a
parameter (Adam moments, ...) get the parameter's sharding (matched by key-path suffix and
shape), everything else (step counters, scalars) is replicated.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from emojax.parallel.axes import LOGICAL_AXIS_RULES


def tree_shardings(abstract_boxed, mesh: jax.sharding.Mesh, rules=LOGICAL_AXIS_RULES):
    """NamedShardings for a tree whose leaves may be Flax ``LogicallyPartitioned`` boxes.

    Unannotated leaves are replicated.
    """
    specs = nn.get_partition_spec(abstract_boxed)
    return nn.logical_to_mesh_sharding(specs, mesh, rules)


def strip_boxes(tree):
    """The values inside Flax ``AxisMetadata`` boxes (no sharding constraint applied), so it
    works on abstract trees under an active mesh."""
    is_box = lambda x: isinstance(x, nn.meta.AxisMetadata)
    return jax.tree.map(lambda x: x.value if is_box(x) else x, tree, is_leaf=is_box)


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def mirror_shardings(abstract_tree, params_abstract, params_shardings, mesh):
    """Shardings for ``abstract_tree`` (e.g. an optimizer state): a leaf whose key path ends
    with a parameter's key path and has its shape gets that parameter's sharding; the rest
    are replicated."""
    by_path = {}
    flat_params = jax.tree_util.tree_leaves_with_path(params_abstract)
    flat_shardings = jax.tree_util.tree_leaves(
        params_shardings, is_leaf=lambda x: isinstance(x, NamedSharding)
    )
    for (path, leaf), sharding in zip(flat_params, flat_shardings, strict=True):
        by_path[tuple(path)] = (leaf.shape, sharding)

    def pick(path, leaf):
        path = tuple(path)
        for start in range(len(path)):
            match = by_path.get(path[start:])
            if match is not None and match[0] == getattr(leaf, "shape", None):
                return match[1]
        return replicated(mesh)

    return jax.tree_util.tree_map_with_path(pick, abstract_tree)


def batch_spec(rules=LOGICAL_AXIS_RULES) -> PartitionSpec:
    """PartitionSpec of a batch's leading axis (the logical ``batch`` axis)."""
    return nn.logical_to_mesh_axes(("batch",), rules)


def batch_sharding(mesh: jax.sharding.Mesh, rules=LOGICAL_AXIS_RULES) -> NamedSharding:
    return NamedSharding(mesh, batch_spec(rules))


def data_parallel_size(mesh: jax.sharding.Mesh, rules=LOGICAL_AXIS_RULES) -> int:
    """How many ways the batch axis is split (product of its mesh axes)."""
    axes = batch_spec(rules)[0]
    axes = (axes,) if isinstance(axes, str) else (axes or ())
    return int(np.prod([mesh.shape[a] for a in axes]))


def global_batch(local_batch: Mapping, mesh: jax.sharding.Mesh, rules=LOGICAL_AXIS_RULES):
    """This process's rows ``[B // process_count, ...]`` -> global arrays ``[B, ...]`` sharded
    over the batch axes (``jax.make_array_from_process_local_data``)."""
    sharding = batch_sharding(mesh, rules)
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_batch
    )


def bytes_per_device(tree) -> dict[jax.Device, int]:
    """Bytes each addressable device holds for the arrays of ``tree`` (from their shards)."""
    totals: dict[jax.Device, int] = defaultdict(int)
    for leaf in jax.tree.leaves(tree):
        if isinstance(leaf, jax.Array):
            for shard in leaf.addressable_shards:
                totals[shard.device] += shard.data.nbytes
    return dict(totals)
