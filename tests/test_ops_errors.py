"""Bad input to emojax.ops gets a clear error naming the argument."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

from emojax import ops

X = jnp.zeros((3, 4), jnp.float32)


@pytest.mark.parametrize("fn", [ops.sparsemax, ops.entmax15, ops.entmax_bisect, ops.softmax])
def test_integer_x_and_bad_axis_and_mask(fn):
    with pytest.raises(TypeError, match="x must be a floating-point array"):
        fn(jnp.zeros((3, 4), jnp.int32))
    with pytest.raises(ValueError, match="axis=2 is out of range"):
        fn(X, axis=2)
    with pytest.raises(ValueError, match=r"mask of shape \(3, 5\) does not broadcast"):
        fn(X, mask=jnp.ones((3, 5), bool))
    with pytest.raises(TypeError, match="mask must be boolean"):
        fn(X, mask=jnp.ones((3, 4)))
    with pytest.raises(ValueError, match="at least one dimension"):
        fn(jnp.float32(1.0))


@pytest.mark.parametrize("alpha", [0.5, 0.999, -1, float("nan"), float("inf")])
def test_alpha_below_one_python_number(alpha):
    with pytest.raises(ValueError, match="alpha must be a finite number >= 1"):
        ops.entmax_bisect(X, alpha)
    with pytest.raises(ValueError, match="alpha must be a finite number >= 1"):
        ops.entmax_bisect_loss(X, jnp.zeros(3, jnp.int32), alpha)


def test_alpha_arrays():
    with pytest.raises(ValueError, match="every alpha must be >= 1"):
        ops.entmax_bisect(X, np.array([[1.5], [0.9], [2.0]]))
    with pytest.raises(ValueError, match=r"must broadcast to \(3, 1\)"):
        ops.entmax_bisect(X, jnp.full((3, 4), 1.5))
    with pytest.raises(TypeError, match="bool"):
        ops.entmax_bisect(X, True)
    # traced alpha below 1 cannot raise: it is used as 1 (softmax), documented
    p = jax.jit(ops.entmax_bisect)(X, jnp.float32(0.5))
    np.testing.assert_allclose(p, 0.25)
    with pytest.raises(ValueError, match="n_iter must be a positive int"):
        ops.entmax_bisect(X, 1.5, n_iter=0)


def test_loss_targets_and_options():
    with pytest.raises(ValueError, match=r"integer labels must have the logits' shape without"):
        ops.sparsemax_loss(X, jnp.zeros((3, 4), jnp.int32))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        ops.sparsemax_loss(X, np.asarray([0, 4, 1]))
    with pytest.raises(ValueError, match="target distributions must have the logits' shape"):
        ops.entmax15_loss(X, jnp.zeros((3, 5)))
    with pytest.raises(TypeError, match="targets must be int labels or float"):
        ops.entmax15_loss(X, jnp.zeros((3,), bool))
    with pytest.raises(ValueError, match="reduction must be one of"):
        ops.entmax15_loss(X, jnp.zeros(3, jnp.int32), reduction="avg")
    with pytest.raises(ValueError, match="weights of shape"):
        ops.entmax15_loss(X, jnp.zeros(3, jnp.int32), weights=jnp.ones(4))
    with pytest.raises(TypeError, match="logits must be a floating-point"):
        ops.entmax15_loss(jnp.zeros((3, 4), jnp.int32), jnp.zeros(3, jnp.int32))


def test_alpha_helper_range():
    with pytest.raises(ValueError, match="need 1 <= min_alpha < max_alpha"):
        ops.alpha_from_raw(0.0, min_alpha=0.5)
    with pytest.raises(ValueError, match="strictly inside"):
        ops.raw_from_alpha(2.5)


def test_device_values_are_not_read_but_checkify_sees_them():
    """Value checks run on host (NumPy) inputs only; jax Arrays are never read on the host (no
    sync), eagerly or under jit. Under ops.device_checks() + checkify the same messages return."""
    labels = jax.device_put(np.asarray([0, 4, 1], np.int32))
    alpha = jax.device_put(np.asarray([[1.5], [0.9], [2.0]], np.float32))
    with jax.transfer_guard_device_to_host("disallow"):
        ops.sparsemax_loss(X, labels)  # out-of-range label: not read, no error
        ops.entmax_bisect(X, alpha)  # alpha < 1: used as 1
        ops.raw_from_alpha(jax.device_put(np.float32(2.5)))
    with ops.device_checks():
        err, _ = jax.jit(checkify.checkify(lambda t: ops.sparsemax_loss(X, t)))(labels)
        with pytest.raises(checkify.JaxRuntimeError, match=r"labels must lie in \[0, 4\).*max 4"):
            err.throw()
        err, _ = checkify.checkify(lambda a: ops.entmax_bisect(X, a))(alpha)  # eager checkify
        with pytest.raises(checkify.JaxRuntimeError, match="every alpha must be >= 1"):
            err.throw()
        err, _ = jax.jit(checkify.checkify(lambda a: ops.entmax_bisect(X, a)))(alpha + 1)
        assert err.get() is None
    # without the opt-in nothing is staged: the jitted computation has no checks (no effects)
    assert not jax.make_jaxpr(lambda a: ops.entmax_bisect(X, a))(alpha).effects
