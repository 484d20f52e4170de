"""Grain pipelines: any random-access source -> per-process batches with checkpointable state.

The stream is defined *globally* and each process reads its rows of every global batch, so
the global batch at step ``s`` is the same whatever the number of processes (1 process x 8
devices and 2 processes x 4 devices train on identical batches)::

    source -> shuffle(seed, reshuffled every epoch) -> repeat(num_epochs)
           -> per-example transforms (random ones seeded by the global index)
           -> rows [p*L, (p+1)*L) of every global batch of B = P*L examples (process p of P)
           -> batch(L) -> thread prefetch -> optional multiprocess prefetch (worker_count)

The returned :class:`grain.DatasetIterator` has ``get_state``/``set_state``; Orbax saves it
with ``grain.checkpoint.CheckpointSave(iterator)`` and the stream after a restore is identical.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grain
import jax
from absl import flags

Transform = grain.transforms.Map | grain.transforms.RandomMap | Callable[[Any], Any]


class ProcessRowsMapDataset(grain.MapDataset):
    """Process ``p``'s rows of every global batch of ``global_batch_size`` examples.

    Local index ``j`` -> global index ``b*B + p*L + k`` with ``b, k = divmod(j, L)``,
    ``L = B // P``. The processes' views are disjoint and their union is the whole parent;
    a last, partial global batch is split the same way (later processes may get fewer rows).
    """

    _MUTATES_ELEMENT_SPEC = False

    def __init__(
        self, parent: grain.MapDataset, global_batch_size: int, process_index: int, count: int
    ):
        super().__init__(parent)
        self._global = global_batch_size
        self._local = global_batch_size // count
        self._offset = process_index * self._local
        full, rest = divmod(len(parent), global_batch_size)
        self._length = full * self._local + min(max(rest - self._offset, 0), self._local)

    def __len__(self) -> int:
        return self._length

    def _global_index(self, index: int) -> int:
        batch, row = divmod(index, self._local)
        return batch * self._global + self._offset + row

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        with self._stats.record_self_time():
            parent_index = self._global_index(index)
        return self._parent[parent_index]

    def _getitems(self, indices: Sequence[int]):
        return self._parent._getitems([self._global_index(i) for i in indices])  # noqa: SLF001

    def __str__(self) -> str:
        return f"ProcessRowsMapDataset(B={self._global}, rows {self._offset}+{self._local})"


def _check_source(source) -> int:
    if not (hasattr(source, "__len__") and hasattr(source, "__getitem__")):
        raise TypeError(
            f"data source {type(source).__name__} must be random access (len + getitem), e.g. "
            "tfds.data_source(name, split=..., file_format='array_record') or a list of dicts"
        )
    size = len(source)
    if size == 0:
        raise ValueError("data source is empty: check the split name and the data directory")
    return size


def _process_layout(global_batch_size: int, process_index, process_count) -> tuple[int, int]:
    if process_index is None or process_count is None:
        process_index, process_count = jax.process_index(), jax.process_count()
    if global_batch_size <= 0:
        raise ValueError(f"data.global_batch_size must be positive, got {global_batch_size}")
    if global_batch_size % process_count:
        raise ValueError(
            f"data.global_batch_size={global_batch_size} is not divisible by the "
            f"{process_count} processes; choose a multiple of {process_count}"
        )
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    return process_index, process_count


def _apply_transform(ds: grain.MapDataset, transform: Transform, seed: int) -> grain.MapDataset:
    if isinstance(transform, grain.transforms.RandomMap):
        return ds.random_map(transform, seed=seed)
    if isinstance(transform, grain.transforms.Map) or callable(transform):
        return ds.map(transform)
    raise TypeError(f"transform {transform!r} is not a grain Map/RandomMap or a callable")


def make_dataset(
    source,
    *,
    global_batch_size: int,
    seed: int = 0,
    shuffle: bool = True,
    num_epochs: int | None = 1,
    transforms: Sequence[Transform] = (),
    drop_remainder: bool = True,
    worker_count: int = 0,
    process_index: int | None = None,
    process_count: int | None = None,
    read_threads: int = 4,
    prefetch_buffer_size: int = 64,
    batch_fn: Callable[[Sequence[Any]], Any] | None = None,
) -> grain.IterDataset:
    """This process's batched :class:`grain.IterDataset` (see the module docstring).

    Args:
      source: random access (``len``/``__getitem__``) source of examples (dicts of arrays).
      global_batch_size: examples per global batch B; each process yields ``B // P`` rows.
      seed: shuffle seed and the base seed of random transforms.
      num_epochs: passes over the data (``None``: repeat forever); each epoch is reshuffled.
      transforms: per-example grain ``Map``/``RandomMap`` (or plain callables), in order.
      drop_remainder: drop the last partial global batch (keep it for evaluation).
      worker_count: multiprocess prefetch workers (0: in-process threads only).
      process_index, process_count: default ``jax.process_index()/process_count()``.
      batch_fn: ``list of examples -> batch`` for variable-size examples (padding to fixed
        buckets with masks; a method's ``collate``); default: stack equal shapes.
    """
    size = _check_source(source)
    process_index, process_count = _process_layout(global_batch_size, process_index, process_count)
    if num_epochs is not None and num_epochs <= 0:
        raise ValueError(f"data.num_epochs must be positive or None (forever), got {num_epochs}")
    ds = grain.MapDataset.source(source)
    if shuffle:
        ds = ds.shuffle(seed=seed)
    if num_epochs != 1:
        ds = ds.repeat(num_epochs)
    for position, transform in enumerate(transforms):
        ds = _apply_transform(ds, transform, seed + 1 + position)
    if drop_remainder and num_epochs is not None:
        ds = ds[: (len(ds) // global_batch_size) * global_batch_size]
    if (num_epochs is not None) and drop_remainder and len(ds) == 0:
        raise ValueError(
            f"{size * num_epochs} examples make no full global batch of {global_batch_size}; "
            "lower data.global_batch_size or set drop_remainder=False"
        )
    ds = ProcessRowsMapDataset(ds, global_batch_size, process_index, process_count)
    ds = ds.batch(
        global_batch_size // process_count, drop_remainder=drop_remainder, batch_fn=batch_fn
    )
    read = grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=prefetch_buffer_size)
    iter_ds = ds.to_iter_dataset(read)
    if worker_count > 0:
        # grain's worker processes read absl flags; outside an absl app nobody parsed them.
        if not flags.FLAGS.is_parsed():
            flags.FLAGS.mark_as_parsed()
        iter_ds = iter_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
    return iter_ds


def make_data_iterator(source, **kwargs) -> grain.DatasetIterator:
    """A checkpointable iterator over this process's batches; arguments as :func:`make_dataset`.

    Batches are dicts of numpy arrays ``[global_batch_size // process_count, ...]``. Save and
    restore the position with Orbax (``grain.checkpoint.CheckpointSave/CheckpointRestore``)
    or ``iterator.get_state()`` / ``iterator.set_state(state)``.
    """
    return iter(make_dataset(source, **kwargs))
