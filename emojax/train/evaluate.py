"""Whole-split evaluation with a method's evaluators (the trainer and ``emojax eval`` share it).

Each process reads its rows of every global batch of the split (no shuffle, one epoch, the last
partial batch kept); the local batch is zero-padded to a fixed size with a validity mask, so
every process runs the same number of jitted ``predict`` calls whatever its share of the split.
The per-example outputs are gathered to every host (``process_allgather``), and the valid rows,
in the split's order, go to the evaluator's host-side buffer: no example is dropped or counted
twice, with any number of devices and processes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import numpy as np
from jax.experimental import multihost_utils

from emojax.models.base import Evaluator
from emojax.train.step import loss_variables


def pad_local_batch(local: Mapping | None, size: int, spec: Mapping) -> tuple[dict, np.ndarray]:
    """``local`` (``n <= size`` rows, or None for no rows) zero-padded to ``size`` rows, and the
    ``[size]`` validity mask. ``spec``: the method's example batch (shapes/dtypes of a row)."""
    if local is None:
        rows = 0
        local = {k: np.zeros((0,) + tuple(s.shape[1:]), s.dtype) for k, s in spec.items()}
    else:
        rows = len(next(iter(local.values())))
    if rows > size:
        raise ValueError(f"a local eval batch has {rows} rows, more than {size}")

    def pad(x):
        x = np.asarray(x)
        if x.shape[0] == size:
            return x
        return np.concatenate([x, np.zeros((size - x.shape[0],) + x.shape[1:], x.dtype)])

    return {k: pad(v) for k, v in local.items()}, np.arange(size) < rows


def _to_host(tree):
    """Global arrays -> NumPy on every process (all rows, in global order)."""
    if jax.process_count() == 1:
        return jax.tree.map(np.asarray, jax.device_get(tree))
    return multihost_utils.process_allgather(tree, tiled=True)


def make_predict(evaluator: Evaluator, model, state_shardings, batch_sharding):
    """``predict(state, frozen, batch) -> per-example outputs`` jitted with explicit shardings."""

    def predict(state, frozen, batch):
        variables = loss_variables(state.params, state.model_state, frozen, state.extra)
        return evaluator.predict(model, variables, batch)

    return jax.jit(predict, in_shardings=(state_shardings, None, batch_sharding))


def num_eval_batches(split_size: int, global_batch_size: int, limit: int = 0) -> int:
    """Global batches covering the split (the last one partial); ``limit`` > 0 caps it."""
    batches = math.ceil(split_size / global_batch_size)
    return min(batches, limit) if limit else batches


def collect_outputs(evaluators, predict_fns, state, frozen, batches, *, to_global) -> list:
    """Each evaluator's per-example outputs over padded ``(local_batch, local_valid)`` batches:
    one buffer per evaluator holding the valid rows only, in the split's order.

    ``to_global``: local host batch -> global sharded batch.
    """
    buffers = [ev.new_buffer() for ev in evaluators]
    for local, valid in batches:
        batch = to_global(local)
        valid_all = _to_host(to_global({"valid": valid})["valid"])
        for buffer, predict in zip(buffers, predict_fns, strict=True):
            buffer.add(_to_host(predict(state, frozen, batch)), valid_all)
    return buffers


def merge_metrics(evaluators, results) -> dict[str, float]:
    """One flat dict of the evaluators' metrics; a name reported twice is an error."""
    metrics: dict[str, float] = {}
    for ev, result in zip(evaluators, results, strict=True):
        for name, value in result.items():
            if name in metrics:
                raise ValueError(
                    f"two evaluators report the metric {name!r} ({ev.name}); rename one"
                )
            metrics[name] = float(value)
    return metrics
