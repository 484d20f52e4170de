"""Orbax checkpoints of the train state and the grain iterator position.

Layout: ``WORKDIR/checkpoints/<step>/{state,data}``; WORKDIR may be a URL (``gs://...``, see
:mod:`emojax.train.workdir`). Saves are asynchronous (training goes on while arrays are written),
atomic (locally Orbax writes a temporary directory and renames it; on object stores, which have
no rename, a step counts only once its ``commit_success.txt`` is written; leftovers of a killed
run are removed at start, ``cleanup_tmp_directories=True``), and
retained by "the last ``keep_last`` plus the best by ``keep_best_metric``". Restore walks back
from the newest step: an unreadable checkpoint is reported, moved aside to
``WORKDIR/checkpoints_corrupt/<step>`` and the previous one is used.
"""

from __future__ import annotations

import os
import time
import warnings

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils
from orbax.checkpoint.checkpoint_managers import preservation_policy as ocp_keep

from emojax.train.workdir import as_path, move_tree


class CorruptCheckpointWarning(UserWarning):
    """The newest checkpoint could not be read; an older one is used."""


def _preservation(keep_last: int, best_metric: str, best_mode: str):
    policies = [ocp_keep.LatestN(n=keep_last)]
    if best_metric:
        policies.append(
            ocp_keep.BestN(
                get_metric_fn=lambda metrics: metrics[best_metric],
                # BestN keeps the *last* n after sorting; reverse puts the smallest last.
                reverse=best_mode == "min",
                n=1,
                keep_checkpoints_without_metrics=False,
            )
        )
    return ocp_keep.AnyPreservationPolicy(policies)


class Checkpointer:
    """Saves/restores ``{"state": TrainState, "data": grain iterator}`` under ``directory``."""

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        keep_last: int = 3,
        best_metric: str = "",
        best_mode: str = "min",
        async_save: bool = True,
    ):
        self.directory = as_path(directory)
        self.best_metric = best_metric
        options = ocp.CheckpointManagerOptions(
            preservation_policy=_preservation(keep_last, best_metric, best_mode),
            enable_async_checkpointing=async_save,
            cleanup_tmp_directories=True,
            create=True,
        )
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=options,
            item_handlers={
                "state": ocp.StandardCheckpointHandler(),
                "data": grain.checkpoint.CheckpointHandler(),
            },
        )

    def all_steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def save(self, step: int, state, data_iterator=None, metrics: dict | None = None) -> None:
        """Start an async save of ``state`` (and the iterator position) at ``step``."""
        items = {"state": ocp.args.StandardSave(state)}
        if data_iterator is not None:
            items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
        if self.best_metric and (metrics is None or self.best_metric not in metrics):
            metrics = None  # ranked only when the keep-best metric is known at this step
        self.manager.save(step, args=ocp.args.Composite(**items), metrics=metrics, force=True)

    def restore_latest(self, abstract_state, data_iterator=None):
        """(step, state) from the newest readable checkpoint, or None when there is none.

        ``abstract_state``: ShapeDtypeStructs with shardings (the target mesh may differ from
        the one that saved). ``data_iterator``: restored in place when given.
        """
        for step in reversed(self.all_steps()):
            try:
                return step, self.restore(step, abstract_state, data_iterator)
            except Exception as err:  # noqa: BLE001 - any read failure means "unusable"
                self._set_aside(step, err)
        return None

    def restore(self, step: int, abstract_state, data_iterator=None):
        items = {"state": ocp.args.StandardRestore(abstract_state)}
        if data_iterator is not None:
            items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
        return self.manager.restore(step, args=ocp.args.Composite(**items)).state

    def _set_aside(self, step: int, err: Exception) -> None:
        message = (
            f"checkpoint {self.directory / str(step)} is unreadable "
            f"({type(err).__name__}: {str(err)[:300]}); moving it to "
            f"{self.directory.parent / 'checkpoints_corrupt'} and using the previous one"
        )
        logging.warning(message)
        warnings.warn(message, CorruptCheckpointWarning, stacklevel=3)
        if jax.process_index() == 0:
            target = self.directory.parent / "checkpoints_corrupt" / f"{step}-{int(time.time())}"
            move_tree(self.directory / str(step), target)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices(f"emojax_set_aside_{step}")
        self.manager.reload()

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()


def read_tree(item_dir: str | os.PathLike) -> dict:
    """A saved pytree item (a ``StandardCheckpointer`` directory such as ``<step>/state``) as a
    nested dict of NumPy arrays, without a target structure or mesh."""
    path = as_path(item_dir)
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    with ocp.StandardCheckpointer() as checkpointer:
        metadata = checkpointer.metadata(path)
        tree = getattr(metadata, "item_metadata", metadata)
        # A target on one local device: works whatever topology saved the checkpoint.
        target = jax.tree.map(
            lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), tree
        )
        restored = checkpointer.restore(path, target)
    return jax.tree.map(np.asarray, restored)


def checkpoint_steps(checkpoint_dir: str | os.PathLike) -> list[int]:
    """The finished steps under a ``checkpoints/`` directory, ascending (on object stores a
    step folder without ``commit_success.txt``, from a save that was cut short, is skipped)."""
    checkpoint_dir = as_path(checkpoint_dir)
    if not checkpoint_dir.is_dir():
        return []
    return sorted(
        int(p.name)
        for p in checkpoint_dir.iterdir()
        if p.name.isdigit() and ocp.utils.is_checkpoint_finalized(p)
    )


def read_state(checkpoint_dir: str | os.PathLike, step: int | None = None) -> dict:
    """The saved train state of ``step`` (default: newest) as a nested dict of numpy arrays,
    without a target structure or mesh (for inspection, tests and conversion)."""
    checkpoint_dir = as_path(checkpoint_dir)
    steps = checkpoint_steps(checkpoint_dir)
    if not steps:
        raise FileNotFoundError(f"no checkpoints in {checkpoint_dir}")
    step = steps[-1] if step is None else step
    return read_tree(checkpoint_dir / str(step) / "state")
