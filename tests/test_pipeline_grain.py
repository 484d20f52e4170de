"""emojax.data.pipeline: shuffling, per-process sharding, epochs, transforms, exact resume."""

import grain
import numpy as np
import orbax.checkpoint as ocp
import pytest

from emojax.data.pipeline import make_data_iterator

SOURCE = [{"id": np.int64(i), "x": np.full((2,), i, np.float32)} for i in range(37)]


def ids(iterator, limit=None):
    out = []
    for batch in iterator:
        out.append(batch["id"].tolist())
        if limit is not None and len(out) == limit:
            break
    return out


def test_shuffle_is_seeded_and_each_epoch_is_a_permutation():
    a = ids(make_data_iterator(SOURCE, global_batch_size=37, seed=3, num_epochs=2))
    b = ids(make_data_iterator(SOURCE, global_batch_size=37, seed=3, num_epochs=2))
    c = ids(make_data_iterator(SOURCE, global_batch_size=37, seed=4, num_epochs=2))
    assert a == b and a != c
    assert len(a) == 2 and sorted(a[0]) == sorted(a[1]) == list(range(37))
    assert a[0] != a[1]  # reshuffled every epoch


@pytest.mark.parametrize("count", [2, 3, 4])
def test_process_shards_are_disjoint_complete_and_rebuild_the_global_batches(count):
    kwargs = dict(global_batch_size=12, seed=0, num_epochs=1, drop_remainder=False)
    single = ids(make_data_iterator(SOURCE, process_index=0, process_count=1, **kwargs))
    shards = [
        ids(make_data_iterator(SOURCE, process_index=p, process_count=count, **kwargs))
        for p in range(count)
    ]
    seen = [i for shard in shards for batch in shard for i in batch]
    assert sorted(seen) == list(range(37))  # disjoint and complete, remainder included
    # Global batch k = concatenation of the processes' k-th batches: same as one process.
    for k, global_batch in enumerate(single):
        rows = [i for shard in shards if k < len(shard) for i in shard[k]]
        assert rows == global_batch


def test_drop_remainder_and_finite_epochs():
    full = ids(make_data_iterator(SOURCE, global_batch_size=8, num_epochs=1))
    assert [len(b) for b in full] == [8] * 4
    kept = ids(make_data_iterator(SOURCE, global_batch_size=8, num_epochs=1, drop_remainder=False))
    assert [len(b) for b in kept] == [8] * 4 + [5]
    forever = make_data_iterator(SOURCE, global_batch_size=8, num_epochs=None)
    assert len(ids(forever, limit=20)) == 20


class AddNoise(grain.transforms.RandomMap):
    def random_map(self, element, rng: np.random.Generator):
        return {**element, "x": element["x"] + rng.standard_normal(2).astype(np.float32)}


class Double(grain.transforms.Map):
    def map(self, element):
        return {**element, "x": 2 * element["x"]}


def test_random_transforms_do_not_depend_on_the_process_count():
    kwargs = dict(global_batch_size=8, seed=1, num_epochs=1, transforms=[Double(), AddNoise()])
    single = next(make_data_iterator(SOURCE, process_index=0, process_count=1, **kwargs))
    halves = [
        next(make_data_iterator(SOURCE, process_index=p, process_count=2, **kwargs))
        for p in range(2)
    ]
    np.testing.assert_array_equal(np.concatenate([h["x"] for h in halves]), single["x"])
    clean = next(make_data_iterator(SOURCE, global_batch_size=8, seed=1, num_epochs=1))
    noise = single["x"] - 2 * clean["x"]
    assert np.all(np.abs(noise) > 0) and np.all(np.abs(noise) < 6)


def test_state_restore_gives_the_identical_stream():
    kwargs = dict(global_batch_size=5, seed=2, num_epochs=None, transforms=[AddNoise()])
    iterator = make_data_iterator(SOURCE, **kwargs)
    ids(iterator, limit=9)  # crosses an epoch boundary later
    state = iterator.get_state()
    expected = [next(iterator)["x"] for _ in range(6)]
    resumed = make_data_iterator(SOURCE, **kwargs)
    resumed.set_state(state)
    for want in expected:
        np.testing.assert_array_equal(next(resumed)["x"], want)


def test_orbax_saves_and_restores_the_iterator(tmp_path):
    kwargs = dict(global_batch_size=4, seed=5, num_epochs=None)
    iterator = make_data_iterator(SOURCE, **kwargs)
    ids(iterator, limit=7)
    with ocp.CheckpointManager(
        tmp_path, item_handlers={"data": grain.checkpoint.CheckpointHandler()}
    ) as manager:
        manager.save(7, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(iterator)))
        manager.wait_until_finished()
        expected = ids(iterator, limit=5)
        fresh = make_data_iterator(SOURCE, **kwargs)
        manager.restore(7, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(fresh)))
    assert ids(fresh, limit=5) == expected


@pytest.mark.slow
def test_multiprocess_prefetch_gives_the_same_stream_and_state():
    kwargs = dict(global_batch_size=4, seed=0, num_epochs=2)
    reference = ids(make_data_iterator(SOURCE, **kwargs))
    iterator = make_data_iterator(SOURCE, worker_count=2, **kwargs)
    try:
        head = ids(iterator, limit=5)
        state = iterator.get_state()
        tail = ids(iterator)
    finally:
        iterator.close()
    assert head + tail == reference
    resumed = make_data_iterator(SOURCE, worker_count=2, **kwargs)
    try:
        resumed.set_state(state)
        assert ids(resumed) == tail
    finally:
        resumed.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(global_batch_size=6, process_index=0, process_count=4), "not divisible by the 4"),
        (dict(global_batch_size=0), "must be positive"),
        (dict(global_batch_size=64, num_epochs=1), "no full global batch"),
        (dict(global_batch_size=4, num_epochs=0), "num_epochs must be positive"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_data_iterator(SOURCE, **kwargs)


def test_non_random_access_and_empty_sources_are_rejected():
    with pytest.raises(TypeError, match="random access"):
        make_data_iterator(iter(SOURCE), global_batch_size=4)
    with pytest.raises(ValueError, match="empty"):
        make_data_iterator([], global_batch_size=4)
