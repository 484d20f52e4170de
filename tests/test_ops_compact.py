"""Long rows (d >= 256): thresholds solved on the compact candidate set, and its fallbacks.

Outputs and gradients are checked against the PyTorch ``entmax`` package (float64 1e-9,
float32 1e-5) on rows that pass the candidate check, rows that fail it (many tied maxima, alpha
near 1), more failing rows than one fallback chunk, padded lengths and vmapped calls.
"""

import importlib

import entmax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from test_ops_parity import _compare, _data

from emojax import ops

compact = importlib.import_module("emojax.ops._compact")

MAPPINGS = {
    "sparsemax": (lambda x, a: ops.sparsemax(x), lambda t, a: entmax.sparsemax(t, dim=-1)),
    "entmax15": (lambda x, a: ops.entmax15(x), lambda t, a: entmax.entmax15(t, dim=-1)),
    "entmax_bisect": (
        lambda x, a: ops.entmax_bisect(x, a),
        lambda t, a: entmax.entmax_bisect(t, a, dim=-1, n_iter=80),
    ),
}


def test_plan_pads_to_64_and_keeps_enough_groups():
    assert compact.plan(255) is None
    assert compact.plan(1024) == (1024, (8, 4))  # 32 groups
    padded, factors = compact.plan(1000)
    assert padded == 1024 and int(np.prod(factors)) == 32
    padded, factors = compact.plan(32000)
    assert padded == 32000 and 32000 // int(np.prod(factors)) >= 125


def test_top_values_are_the_largest_of_each_interleaved_group():
    x = _data((3, 512), np.float32)
    x[0, :64] = 7.0  # ties are kept as values
    factors = (8, 4)
    tops = np.stack([np.asarray(t) for t in compact.top_values(jnp.asarray(x), factors)], -1)
    groups = 512 // 32
    # group g holds entries g + groups * j
    expected = -np.sort(-x.reshape(3, 32, groups).transpose(0, 2, 1), axis=-1)[..., :4]
    np.testing.assert_array_equal(tops, expected)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape,axis", [((24, 1000), -1), ((2, 512, 3), 1)])
@pytest.mark.parametrize("name", ["sparsemax", "entmax15"])
def test_long_rows_match_entmax(name, dtype, shape, axis):
    _compare(name, dtype, shape, axis, None)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_long_rows_entmax_bisect_per_row_alpha_matches(dtype):
    alpha = np.linspace(1.1, 2.4, 16).astype(dtype).reshape(16, 1)
    _compare("entmax_bisect", dtype, (16, 768), -1, alpha)


def _groups(d: int) -> int:
    padded, factors = compact.plan(d)
    return padded // int(np.prod(factors))


def _hard_rows(rows: int, d: int) -> np.ndarray:
    """Rows whose support puts more than KEEP entries in one group: 12 tied maxima in group 0."""
    x = _data((rows, d), np.float64)
    x[:, :: _groups(d)][:, :12] = 9.0
    return x


@pytest.mark.parametrize("name", list(MAPPINGS))
@pytest.mark.parametrize("rows", [5, 70])  # 70 > one fallback chunk (8 rows)
def test_rows_failing_the_candidate_check_are_exact(name, rows):
    x = np.concatenate([_hard_rows(rows, 512), _data((rows, 512), np.float64)])
    alpha = 1.5
    ours, theirs = MAPPINGS[name]
    ref = theirs(torch.tensor(x), alpha).numpy()
    with jax.enable_x64(True):
        got = np.asarray(jax.jit(ours)(jnp.asarray(x), alpha))
    in_group_0 = (got[:rows, :: _groups(512)] > 0).sum(-1)
    assert in_group_0.min() > compact.KEEP  # these rows really failed the check
    np.testing.assert_allclose(got, ref, atol=1e-9, rtol=0)


def test_alpha_near_one_dense_rows_fall_back_and_match():
    x = _data((40, 1024), np.float64)
    alpha = np.full((40, 1), 1.02)
    ref = entmax.entmax_bisect(torch.tensor(x), torch.tensor(alpha), dim=-1, n_iter=80).numpy()
    with jax.enable_x64(True):
        got = np.asarray(jax.jit(ops.entmax_bisect)(jnp.asarray(x), jnp.asarray(alpha)))
    assert (got > 0).sum(-1).min() > 900
    np.testing.assert_allclose(got, ref, atol=1e-9, rtol=0)


@pytest.mark.parametrize("name", list(MAPPINGS))
def test_vmap_folds_batch_into_rows(name):
    ours, _ = MAPPINGS[name]
    x = jnp.asarray(np.concatenate([_hard_rows(3, 512), _data((5, 512), np.float64)]))
    x = x.astype(jnp.float32).reshape(2, 4, 512)
    alpha = jnp.asarray([[1.3], [1.7]], jnp.float32)
    batched = jax.jit(jax.vmap(lambda xi, ai: ours(xi, ai[:, None])))(x, alpha)
    looped = jnp.stack([ours(x[i], alpha[i][:, None]) for i in range(2)])
    np.testing.assert_allclose(batched, looped, atol=1e-5)  # jit+vmap vs eager: 512-long sums
    shared = jax.vmap(lambda xi: ours(xi, 1.5))(x)  # alpha not batched
    np.testing.assert_allclose(shared, ours(x, 1.5), atol=1e-5)


def test_masks_infinities_and_huge_logits_on_long_rows():
    x = _data((6, 640), np.float32)
    x[1] = -np.inf
    x[2, ::2] = -np.inf
    x[3, 5] = 1e30
    mask = np.ones_like(x, bool)
    mask[4] = False
    mask[5, 100:] = False
    for name, (ours, _) in MAPPINGS.items():
        p = np.asarray(ours(jnp.asarray(x), 1.5) if name != "entmax_bisect" else ours(x, 1.5))
        assert np.isfinite(p).all(), name
        assert (p[1] == 0).all() and (p[2, ::2] == 0).all(), name
        assert p[3, 5] == 1 and p[3].sum() == 1, name
        np.testing.assert_allclose(p[[0, 2, 3, 5]].sum(-1), 1, atol=1e-5, err_msg=name)  # 640 terms
    pm = np.asarray(ops.entmax_bisect(x, 1.5, mask=mask))
    assert (pm[4] == 0).all() and (pm[5, 100:] == 0).all()
    np.testing.assert_allclose(pm[5].sum(), 1, atol=1e-5)


def test_forward_and_reverse_jacobians_agree_on_long_rows():
    x = jnp.asarray(_data((2, 300), np.float32))
    alpha = jnp.asarray([[1.4], [1.8]], jnp.float32)
    f = lambda x, a: ops.entmax_bisect(x, a)  # noqa: E731
    fwd = jax.jacfwd(f, argnums=(0, 1))(x, alpha)
    rev = jax.jacrev(f, argnums=(0, 1))(x, alpha)
    for a, b in zip(fwd, rev, strict=True):
        np.testing.assert_allclose(a, b, atol=2e-6, rtol=1e-5)


def test_bfloat16_long_rows_against_float64():
    x = _data((8, 1024), np.float32)
    got = np.asarray(ops.entmax15(jnp.asarray(x, jnp.bfloat16)).astype(jnp.float32))
    ref = entmax.entmax15(torch.tensor(np.asarray(jnp.asarray(x, jnp.bfloat16), np.float64)), -1)
    np.testing.assert_allclose(got, ref.numpy(), atol=1e-2)


@pytest.mark.parametrize("spec", [("batch", None), (None, "batch")])
def test_sharded_rows_or_columns_match_unsharded(spec):
    x = np.concatenate([_hard_rows(4, 512), _data((12, 512), np.float64)]).astype(np.float32)
    mesh = jax.make_mesh((8,), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(*spec))
    for name, (ours, _) in MAPPINGS.items():
        f = jax.jit(lambda x, ours=ours: ours(x, 1.5))
        np.testing.assert_allclose(
            f(jax.device_put(x, sharding)), f(jnp.asarray(x)), atol=1e-5, err_msg=name
        )
