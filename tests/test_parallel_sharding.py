"""emojax.parallel: mesh sizes, logical shardings, optimizer-state mirroring, multi-host env."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from emojax.parallel import (
    LOGICAL_AXIS_RULES,
    bytes_per_device,
    global_batch,
    initialize_distributed,
    make_mesh,
    mesh_shape,
    mirror_shardings,
    strip_boxes,
    tree_shardings,
)


def test_mesh_fill_and_errors():
    assert mesh_shape({"data": -1, "fsdp": 2, "tensor": 1}, 8) == (4, 2, 1)
    assert mesh_shape({"data": 1, "fsdp": -1, "tensor": 2}, 8) == (1, 4, 2)
    with pytest.raises(ValueError, match="needs 4 devices but 8 are available"):
        mesh_shape({"data": 2, "fsdp": 2, "tensor": 1}, 8)
    with pytest.raises(ValueError, match="at most one may be -1"):
        mesh_shape({"data": -1, "fsdp": -1, "tensor": 1}, 8)
    with pytest.raises(ValueError, match="not divisible"):
        mesh_shape({"data": -1, "fsdp": 3, "tensor": 1}, 8)
    with pytest.raises(ValueError, match="unknown axes"):
        mesh_shape({"model": 2}, 8)


class Mlp(nn.Module):
    @nn.compact
    def __call__(self, x):
        init = nn.initializers.lecun_normal()
        hidden = nn.Dense(32, kernel_init=nn.with_logical_partitioning(init, ("embed", "mlp")))
        out = nn.Dense(16, kernel_init=nn.with_logical_partitioning(init, ("mlp", "embed")))
        return out(nn.relu(hidden(x)))


def test_logical_names_map_to_mesh_axes_and_adam_moments_follow_params():
    mesh = make_mesh({"data": 1, "fsdp": 4, "tensor": 2})
    with jax.set_mesh(mesh), nn.logical_axis_rules(LOGICAL_AXIS_RULES):
        boxed = jax.eval_shape(lambda: Mlp().init(jax.random.key(0), jnp.zeros((2, 16))))
        shardings = tree_shardings(boxed["params"], mesh)
        params = strip_boxes(boxed["params"])
        opt_state = jax.eval_shape(optax.adamw(1e-3).init, params)
        opt_shardings = mirror_shardings(opt_state, params, shardings, mesh)
    assert shardings["Dense_0"]["kernel"].spec == P("fsdp", "tensor")
    assert shardings["Dense_1"]["kernel"].spec == P("tensor", "fsdp")
    mu = opt_shardings[0].mu
    assert mu["Dense_0"]["kernel"].spec == P("fsdp", "tensor")
    assert opt_shardings[0].count.spec == P()  # counters replicated


def test_global_batch_is_sharded_over_data_and_fsdp():
    mesh = make_mesh({"data": 2, "fsdp": 4, "tensor": 1})
    local = {"x": np.arange(16 * 3, dtype=np.float32).reshape(16, 3)}
    batch = global_batch(local, mesh)
    assert batch["x"].sharding.spec == P(("data", "fsdp"))
    assert len(batch["x"].addressable_shards) == 8
    assert all(s.data.shape == (2, 3) for s in batch["x"].addressable_shards)
    np.testing.assert_array_equal(batch["x"], local["x"])
    assert set(bytes_per_device(batch).values()) == {2 * 3 * 4}


def test_distributed_settings_must_be_complete(monkeypatch):
    for name in (
        "EMOJAX_COORDINATOR_ADDRESS",
        "EMOJAX_NUM_PROCESSES",
        "EMOJAX_PROCESS_ID",
        "EMOJAX_DISTRIBUTED",
        "SLURM_NTASKS",
        "TPU_WORKER_HOSTNAMES",
    ):
        monkeypatch.delenv(name, raising=False)
    assert initialize_distributed() == "none"
    monkeypatch.setenv("EMOJAX_COORDINATOR_ADDRESS", "127.0.0.1:1234")
    with pytest.raises(ValueError, match="needs all of coordinator address"):
        initialize_distributed()
    monkeypatch.setenv("EMOJAX_NUM_PROCESSES", "two")
    with pytest.raises(ValueError, match="EMOJAX_NUM_PROCESSES='two' must be an integer"):
        initialize_distributed()
    monkeypatch.setenv("EMOJAX_NUM_PROCESSES", "1")
    monkeypatch.setenv("EMOJAX_PROCESS_ID", "0")
    assert initialize_distributed() == "none"  # one process: nothing to start
