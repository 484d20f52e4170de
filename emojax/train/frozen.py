"""A method's frozen variables: loaded once per run, saved once per workdir, sharded.

First start: ``Method.init_frozen`` loads them (from a file, a converted checkpoint or another
run through :func:`emojax.train.init_from.read_checkpoint`); they are written once to
``WORKDIR/frozen`` with their logical axis names in ``WORKDIR/frozen/axes.json``. Every later
start of the same workdir (a resume) reads them back from there, so the run keeps the teacher it
started with even if its source moves on. They never enter the train state: no optimizer state,
no weight decay, not in the step checkpoints.
"""

from __future__ import annotations

import json
import os

import flax.linen as nn
import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import traverse_util

from emojax.models.base import overrides
from emojax.parallel import strip_boxes, tree_shardings
from emojax.train.checkpoint import read_tree
from emojax.train.init_from import read_checkpoint
from emojax.train.workdir import as_path

FROZEN_DIR = "frozen"


def _axes_by_path(boxed) -> dict[str, list | None]:
    flat = traverse_util.flatten_dict(dict(boxed), sep="/")  # boxes are leaves here
    return {
        k: list(v.names) if isinstance(v, nn.LogicallyPartitioned) else None
        for k, v in flat.items()
    }


def _rebox(tree: dict, axes: dict[str, list | None]):
    flat = traverse_util.flatten_dict(tree, sep="/")
    boxed = {
        k: nn.LogicallyPartitioned(v, tuple(axes[k])) if axes.get(k) else v for k, v in flat.items()
    }
    return traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in boxed.items()})


def load_frozen(method, workdir: str | os.PathLike, mesh, rules, seed: int):
    """The frozen variables of ``method`` for the run in ``workdir``, on the mesh ({} if none)."""
    directory = as_path(workdir) / FROZEN_DIR
    if (directory / "axes.json").is_file():
        axes = json.loads((directory / "axes.json").read_text())
        boxed = _rebox(read_tree(directory / "tree"), axes)
    else:
        if not overrides(method, "init_frozen"):
            return {}
        with jax.transfer_guard("allow"):  # loading is host work with intended transfers
            boxed = method.init_frozen(jax.random.key(seed + 2), read_checkpoint)
        if not jax.tree.leaves(boxed):
            return {}
        axes = _axes_by_path(boxed)
        tree = jax.tree.map(np.asarray, strip_boxes(boxed))
        with ocp.StandardCheckpointer() as checkpointer:
            checkpointer.save(directory / "tree", tree)
            checkpointer.wait_until_finished()
        if jax.process_index() == 0:
            (directory / "axes.json").write_text(json.dumps(axes, indent=1))
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype),
        boxed,
        is_leaf=lambda x: not isinstance(x, dict | nn.meta.AxisMetadata),
    )
    with nn.logical_axis_rules(rules):
        shardings = tree_shardings(abstract, mesh, rules)
    return jax.device_put(jax.tree.map(np.asarray, strip_boxes(boxed)), shardings)
