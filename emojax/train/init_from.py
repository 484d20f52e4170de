"""Weights from another run: ``config.init_from`` and the frozen variables of a method.

``config.init_from``::

    path       a workdir, its checkpoints/ directory, or one step directory ("" = off)
    step       which step of a workdir / checkpoints directory (-1: the newest)
    subtrees   "/"-separated prefixes of the train state to load, e.g. ("params/encoder",)
    dont_load  regular expressions of leaf paths to keep at their fresh value (full match)

It applies only when the run has no checkpoint of its own: resuming always takes precedence.
Loaded leaves go through ``Method.init_from_surgery`` and must then exist in the fresh state
with the same shape; otherwise one error lists every missing and mis-shaped weight.
"""

from __future__ import annotations

import os
import re

import flax.serialization
import jax
import numpy as np
from etils import epath
from flax import traverse_util

from emojax.train.checkpoint import checkpoint_steps, read_tree
from emojax.train.workdir import as_path


class InitFromError(ValueError):
    """``config.init_from`` names weights that are missing or mis-shaped."""


def resolve_step_dir(path: str | os.PathLike, step: int = -1) -> epath.Path:
    """The step directory (holding ``state/``) a workdir / checkpoints dir / step dir means."""
    path = as_path(path)  # a local path or a URL (gs://...)
    if (path / "state").is_dir():
        return path
    directory = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    steps = checkpoint_steps(directory)
    if not steps:
        raise FileNotFoundError(
            f"init_from: no checkpoint under {path} (expected a workdir, its checkpoints/ "
            "directory or a step directory with state/ inside)"
        )
    if step is None or step < 0:
        return directory / str(steps[-1])
    if step not in steps:
        raise FileNotFoundError(f"init_from: {directory} has no step {step}; it has {steps}")
    return directory / str(step)


def _subtree(tree: dict, prefix: str, where: epath.Path):
    node = tree
    walked = []
    for key in filter(None, prefix.split("/")):
        if not isinstance(node, dict) or key not in node:
            known = sorted(node) if isinstance(node, dict) else []
            raise InitFromError(
                f"init_from: {where} has no {'/'.join(walked + [key])!r}; "
                f"{'/'.join(walked) or 'the state'} holds {known}"
            )
        node = node[key]
        walked.append(key)
    return node


def read_checkpoint(path: str | os.PathLike, subtree: str = "", step: int = -1):
    """A subtree (e.g. ``"params/teacher"``) of another run's saved train state, as NumPy."""
    step_dir = resolve_step_dir(path, step)
    return _subtree(read_tree(step_dir / "state"), subtree, step_dir)


def _nest(flat: dict[str, np.ndarray]) -> dict:
    return traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in flat.items()})


def load_into(method, state, config_init_from, shardings):
    """``state`` with the configured subtrees replaced by another run's weights (sharded like
    the fresh state). Raises :class:`InitFromError` naming every missing / mis-shaped weight."""
    c = config_init_from
    step_dir = resolve_step_dir(c.path, c.step)
    saved = read_tree(step_dir / "state")
    fresh = flax.serialization.to_state_dict(state)
    fresh_flat = traverse_util.flatten_dict(fresh, sep="/", keep_empty_nodes=True)
    dont_load = [re.compile(p) for p in c.dont_load]
    loaded_flat: dict[str, np.ndarray] = {}
    for prefix in c.subtrees:
        sub = _subtree(saved, prefix, step_dir)
        sub_flat = traverse_util.flatten_dict(sub, sep="/") if isinstance(sub, dict) else {"": sub}
        for key, value in sub_flat.items():
            path = "/".join(filter(None, [prefix.strip("/"), key]))
            if not any(p.fullmatch(path) for p in dont_load):
                loaded_flat[path] = value
    target = _nest(
        {
            k: jax.ShapeDtypeStruct(v.shape, v.dtype)
            for k, v in fresh_flat.items()
            if v is not traverse_util.empty_node
        }
    )
    loaded_flat = traverse_util.flatten_dict(
        method.init_from_surgery(_nest(loaded_flat), target), sep="/"
    )
    problems = []
    for path, value in loaded_flat.items():
        if path not in fresh_flat or fresh_flat[path] is traverse_util.empty_node:
            problems.append(f"{path}: not in this run's state")
        elif tuple(np.shape(value)) != tuple(fresh_flat[path].shape):
            problems.append(
                f"{path}: shape {tuple(np.shape(value))} in {step_dir}, "
                f"{tuple(fresh_flat[path].shape)} here"
            )
    if problems:
        raise InitFromError(
            f"init_from {step_dir}: {len(problems)} weight(s) do not fit "
            "(fix config.init_from.subtrees / dont_load or override Method.init_from_surgery):\n  "
            + "\n  ".join(problems[:50])
        )
    shardings_flat = traverse_util.flatten_dict(
        flax.serialization.to_state_dict(shardings), sep="/", keep_empty_nodes=True
    )
    for path, value in loaded_flat.items():
        dtype = fresh_flat[path].dtype
        fresh_flat[path] = jax.device_put(np.asarray(value, dtype), shardings_flat[path])
    return flax.serialization.from_state_dict(state, _nest(fresh_flat)), sorted(loaded_flat)
