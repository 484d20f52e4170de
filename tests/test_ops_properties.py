"""Property tests (hypothesis) and edge cases for emojax.ops' sparse mappings and losses."""

import functools

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from emojax import ops

settings.register_profile("ops", max_examples=25, deadline=None, derandomize=True)
settings.load_profile("ops")

ALPHAS = (1.2, 1.5, 2.0, 3.0)


@functools.cache
def _jitted(name):
    if name == "sparsemax":
        return jax.jit(lambda x, a: ops.sparsemax(x))
    if name == "entmax15":
        return jax.jit(lambda x, a: ops.entmax15(x))
    return jax.jit(lambda x, a: ops.entmax_bisect(x, a))


@functools.cache
def _masked(name):
    fn = {"sparsemax": ops.sparsemax, "entmax15": ops.entmax15}.get(name)
    if fn is None:
        return jax.jit(lambda x, m, a: ops.entmax_bisect(x, a, mask=m))
    return jax.jit(lambda x, m, a: fn(x, mask=m))


def _alpha(name, alpha):
    return {"sparsemax": 2.0, "entmax15": 1.5}.get(name, alpha)


rows = st.sampled_from([1, 2, 5, 16]).flatmap(
    lambda d: hnp.arrays(np.float32, (3, d), elements=st.floats(-20, 20, width=32))
)
mapping = st.sampled_from(["sparsemax", "entmax15", "bisect"])
alphas = st.sampled_from(ALPHAS)


@given(x=rows, name=mapping, alpha=alphas)
def test_on_simplex_and_thresholded(x, name, alpha):
    """p >= 0, sum 1, and p = [(a-1) x - tau]_+^(1/(a-1)) for ONE tau per row (the KKT form)."""
    a = _alpha(name, alpha)
    p = np.asarray(_jitted(name)(x, jnp.float32(a)), np.float64)
    assert np.all(p >= 0) and np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(-1), 1, atol=1e-5)
    z = (a - 1) * x.astype(np.float64)
    for zr, pr in zip(z, p, strict=True):
        on = pr > 1e-6
        taus = zr[on] - pr[on] ** (a - 1)
        assert np.ptp(taus) < 1e-3 * max(1.0, np.abs(zr).max())
        assert np.all(zr[pr == 0] <= taus.mean() + 1e-3 * max(1.0, np.abs(zr).max()))


@given(x=rows)
def test_special_alphas(x):
    bisect = _jitted("bisect")
    np.testing.assert_allclose(bisect(x, 2.0), _jitted("sparsemax")(x, 2.0), atol=2e-5)
    np.testing.assert_allclose(bisect(x, 1.5), _jitted("entmax15")(x, 1.5), atol=2e-5)
    soft = jax.nn.softmax(x)
    np.testing.assert_allclose(bisect(x, 1.0), soft, atol=1e-5)
    gaps = [np.abs(bisect(x, 1 + e) - soft).max() for e in (1e-1, 1e-2, 1e-3)]
    assert gaps[2] <= gaps[1] + 1e-6 <= gaps[0] + 2e-6 and gaps[2] < 2e-2


@given(x=rows, name=mapping, alpha=alphas, seed=st.integers(0, 2**16))
def test_permutation_equivariance(x, name, alpha, seed):
    perm = np.random.default_rng(seed).permutation(x.shape[-1])
    f = _jitted(name)
    a = jnp.float32(_alpha(name, alpha))
    np.testing.assert_allclose(
        f(x[:, perm], a), np.asarray(f(x, a))[:, perm], atol=1e-5
    )  # sums in another order


@given(x=rows, name=mapping, alpha=alphas, seed=st.integers(0, 2**16))
def test_mask_equals_dropping_entries(x, name, alpha, seed):
    keep = np.random.default_rng(seed).random(x.shape[-1]) < 0.6
    keep[0] = True
    a = _alpha(name, alpha)
    p = np.asarray(_masked(name)(x, jnp.asarray(keep), jnp.float32(a)))
    np.testing.assert_array_equal(p[:, ~keep], 0)
    np.testing.assert_allclose(p[:, keep], _jitted(name)(x[:, keep], a), atol=1e-5)


EDGE_CASES = {
    "huge": np.array([[1e30, 1e30, -1e30, 0.0], [3e38, -3e38, 1.0, 2.0]], np.float32),
    "ties": np.full((2, 4), 7.0, np.float32),
    "d1": np.array([[3.0], [-1e30]], np.float32),
    "neg_inf": np.array([[-np.inf, 1.0, 0.5, -np.inf], [-np.inf] * 4], np.float32),
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
@pytest.mark.parametrize("name", ["sparsemax", "entmax15", "bisect"])
def test_edge_cases_finite_values_and_gradients(case, name):
    x = EDGE_CASES[case]
    f = _jitted(name)
    p = np.asarray(f(x, 1.7))
    grad = jax.jit(jax.grad(lambda x: jnp.sum(f(x, 1.7) * jnp.arange(x.shape[-1]))))(x)
    assert np.all(np.isfinite(p)) and np.all(np.isfinite(np.asarray(grad)))
    row_ok = np.isfinite(x).any(-1) | (x > -np.inf).any(-1)
    np.testing.assert_allclose(p.sum(-1), np.where(row_ok, 1.0, 0.0), atol=1e-6)
    if case == "ties":
        np.testing.assert_allclose(p, 0.25, atol=1e-6)
    if case == "d1":
        np.testing.assert_allclose(p, 1.0)
    if case == "huge":
        np.testing.assert_allclose(p[0], [0.5, 0.5, 0, 0], atol=1e-6)


@pytest.mark.parametrize("fn", [ops.sparsemax, ops.entmax15, ops.entmax_bisect, ops.softmax])
def test_fully_masked_rows_are_zero_with_zero_gradient(fn):
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 6)), jnp.float32)
    mask = jnp.asarray([[True] * 6, [False] * 6, [True, False] * 3])
    run = jax.jit(lambda x: fn(x, mask=mask))
    p = np.asarray(run(x))
    np.testing.assert_array_equal(p[1], 0)
    np.testing.assert_allclose(p.sum(-1), [1, 0, 1], atol=1e-6)
    g = jax.jit(jax.grad(lambda x: jnp.sum(run(x) * jnp.arange(6.0))))(x)
    assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[1] == 0)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("fn", [ops.sparsemax, ops.entmax15, ops.entmax_bisect])
def test_half_precision_keeps_dtype_no_nan(fn, dtype):
    x = jnp.asarray([[60000.0, -60000.0, 3.0], [1.0, 1.0, 1.0]], dtype)
    p = jax.jit(fn)(x)
    assert p.dtype == dtype
    assert np.all(np.isfinite(np.asarray(p, np.float32)))
    np.testing.assert_allclose(np.asarray(p, np.float32).sum(-1), 1, atol=1e-2)


def test_support_size_and_any_axis():
    x = jnp.asarray(np.random.default_rng(1).normal(size=(4, 7, 3)) * 3, jnp.float32)
    for fn in (ops.sparsemax, ops.entmax15, ops.entmax_bisect):
        p, k = fn(x, axis=1, return_support=True)
        assert k.shape == (4, 3) and k.dtype == jnp.int32
        np.testing.assert_array_equal(k, (np.asarray(p) > 0).sum(1))
        np.testing.assert_allclose(
            p, np.moveaxis(np.asarray(fn(jnp.moveaxis(x, 1, -1))), -1, 1), atol=1e-6, rtol=1e-5
        )


@pytest.mark.parametrize("name", ["sparsemax", "entmax15", "bisect"])
def test_jacfwd_equals_jacrev_and_check_grads(name):
    with jax.enable_x64(True):
        x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 6)) * 2)
        f = {"sparsemax": ops.sparsemax, "entmax15": ops.entmax15}.get(name)
        f = f or (lambda x: ops.entmax_bisect(x, 1.3))
        f = jax.jit(f)
        np.testing.assert_allclose(jax.jit(jax.jacfwd(f))(x), jax.jit(jax.jacrev(f))(x), atol=1e-12)
        check_grads(f, (x,), order=1, modes=("fwd", "rev"), eps=1e-6)


def test_alpha_derivatives_jacfwd_jacrev_hessian():
    with jax.enable_x64(True):
        x = jnp.asarray(np.random.default_rng(3).normal(size=(3, 5)) * 2)
        alpha = jnp.asarray([[1.0], [1.4], [2.6]])
        f = jax.jit(lambda a: ops.entmax_bisect(x, a))
        fwd, rev = jax.jit(jax.jacfwd(f))(alpha), jax.jit(jax.jacrev(f))(alpha)
        np.testing.assert_allclose(fwd, rev, atol=1e-10)
        check_grads(f, (alpha + 0.05,), order=2, modes=("rev",), eps=1e-5)
        h = jax.jit(jax.hessian(lambda x: jnp.sum(ops.entmax_bisect(x, 1.5) ** 2)))(x)
        assert np.all(np.isfinite(h))


def test_alpha_gradient_continuous_at_one():
    with jax.enable_x64(True):
        x = jnp.asarray(np.random.default_rng(4).normal(size=(4, 6)))
        g = jax.jit(jax.grad(lambda a: jnp.sum(ops.entmax_bisect(x, a) * jnp.arange(6.0))))
        np.testing.assert_allclose(g(1.0), g(1.0 + 1e-7), rtol=1e-5)
        assert np.isfinite(g(1.0))


def test_vmap_and_shard_consistent():
    x = jnp.asarray(np.random.default_rng(5).normal(size=(8, 4, 9)), jnp.float32)
    alpha = jnp.linspace(1.1, 2.5, 8)[:, None, None]
    full = jax.jit(ops.entmax_bisect)(x, alpha)
    vm = jax.vmap(lambda xi, ai: ops.entmax_bisect(xi, ai))(x, alpha)
    np.testing.assert_allclose(vm, full, atol=1e-5)
    mesh = jax.make_mesh((8,), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))
    sharded = jax.jit(ops.entmax_bisect)(
        jax.device_put(x, sharding), jax.device_put(alpha, sharding)
    )
    np.testing.assert_allclose(sharded, full, atol=1e-5)


def test_alpha_from_raw_is_bounded_and_invertible():
    raw = jnp.asarray([-1e4, -3.0, 0.0, 2.0, 1e4])
    alpha = ops.alpha_from_raw(raw, max_alpha=2.0)
    assert np.all((alpha >= 1) & (alpha <= 2))
    np.testing.assert_allclose(alpha[2], 1.5)
    np.testing.assert_allclose(ops.raw_from_alpha(alpha[1:4]), raw[1:4], atol=1e-4)
    x = jnp.asarray(np.random.default_rng(6).normal(size=(5, 4)), jnp.float32)
    g = jax.grad(lambda r: jnp.sum(ops.entmax_bisect(x, ops.alpha_from_raw(r)[:, None]) ** 2))(raw)
    assert np.all(np.isfinite(g)) and np.any(g != 0)


@st.composite
def _soft_targets(draw):
    z = draw(hnp.arrays(np.float64, (4, 6), elements=st.floats(-5, 5)))
    q = draw(hnp.arrays(np.float64, (4, 6), elements=st.floats(0, 1)))
    q[:, 0] += 0.1
    return z, q / q.sum(-1, keepdims=True)


LOSSES = {
    "sparsemax": (ops.sparsemax_loss, ops.sparsemax, 2.0),
    "entmax15": (ops.entmax15_loss, ops.entmax15, 1.5),
    "bisect": (
        lambda z, q, **k: ops.entmax_bisect_loss(z, q, 1.3, **k),
        lambda z: ops.entmax_bisect(z, 1.3),
        1.3,
    ),
}


@settings(max_examples=10)
@given(data=_soft_targets(), name=st.sampled_from(sorted(LOSSES)))
def test_fenchel_young_soft_targets(data, name):
    z, q = data
    with jax.enable_x64(True):
        z, q = jnp.asarray(z), jnp.asarray(q)
        per_example, grad, p, at_optimum = _loss_checks(name)(z, q)
        assert np.all(np.asarray(per_example) >= -1e-9)
        np.testing.assert_allclose(grad, p - q, atol=1e-9)
        np.testing.assert_allclose(at_optimum, 0, atol=1e-9)


@functools.cache
def _loss_checks(name):
    loss, mapping, _ = LOSSES[name]

    @jax.jit
    def run(z, q):
        grad = jax.grad(lambda z: loss(z, q, reduction="sum"))(z)
        p = mapping(z)
        return loss(z, q, reduction="none"), grad, p, loss(z, p, reduction="none")

    return run


def test_loss_weights_ignore_where_axis_and_alpha_one():
    rng = np.random.default_rng(7)
    z = jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)
    y = jnp.asarray([0, 3, -100, 1, -1])
    per = ops.entmax15_loss(z, y, reduction="none")
    np.testing.assert_array_equal(per[jnp.asarray([2, 4])], 0)
    kept = np.asarray(per)[[0, 1, 3]]
    np.testing.assert_allclose(ops.entmax15_loss(z, y), kept.mean(), rtol=1e-5)
    w = jnp.asarray([1.0, 2.0, 5.0, 0.5, 1.0])
    expected = (kept * np.array([1.0, 2.0, 0.5])).sum() / 3.5
    np.testing.assert_allclose(ops.entmax15_loss(z, y, weights=w), expected, rtol=1e-6)
    where = jnp.asarray([True, False, True, True, True])
    np.testing.assert_allclose(ops.entmax15_loss(z, y, where=where), kept[[0, 2]].mean(), rtol=1e-5)
    np.testing.assert_allclose(ops.entmax15_loss(z, y, reduction="sum"), kept.sum(), rtol=1e-5)
    np.testing.assert_allclose(ops.entmax15_loss(z.T, y, axis=0, reduction="none"), per, atol=1e-5)
    ce = -jax.nn.log_softmax(z)[jnp.arange(2), y[:2]]
    np.testing.assert_allclose(
        ops.entmax_bisect_loss(z[:2], y[:2], 1.0, reduction="none"), ce, atol=1e-5
    )
