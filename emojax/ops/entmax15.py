"""1.5-entmax (Peters et al. 2019) without sorting.

With z = (x - max x) / 2 the output is p = [z - tau]_+^2 where
f(tau) = sum_i [z_i - tau]_+^2 - 1 = 0.
f is convex and decreasing, so Newton's method from the lower bound tau = -1 increases
monotonically to the root without overshooting. Once it has stalled, tau is recomputed in closed
form (the smaller root of the quadratic) on the support it found, which makes the result exact.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from emojax.ops import _common, _compact, _jacobian

_MAX_NEWTON = 60


def _newton_threshold(z: jax.Array, start=None) -> jax.Array:
    """z: [..., d] with max 0 (-inf = excluded) -> tau: [..., 1].

    start: optional lower bound on tau ([..., 1]); -1 (always one) when None.
    """

    def newton(tau):
        gap = jnp.maximum(z - tau, 0)
        f = jnp.sum(gap * gap, axis=-1, keepdims=True) - 1
        slope = 2 * jnp.sum(gap, axis=-1, keepdims=True)
        return tau + f / slope

    tol = 4 * jnp.finfo(z.dtype).eps

    def cond(state):
        tau, prev, it = state
        return jnp.any(tau - prev > tol * (1 + jnp.abs(tau))) & (it < _MAX_NEWTON)

    def body(state):
        tau, _, it = state
        return newton(tau), tau, it + 1

    tau0 = jnp.full(z.shape[:-1] + (1,), -1.0, z.dtype)
    if start is not None:
        tau0 = jnp.maximum(tau0, start)
    tau, _, _ = jax.lax.while_loop(cond, body, (newton(tau0), tau0, jnp.int32(1)))
    return _closed_form(z, tau)


def _closed_form(z: jax.Array, tau: jax.Array) -> jax.Array:
    """Smaller root of sum_{i in S} (z_i - t)^2 = 1 on the support S = {z > tau}."""
    gap = jnp.maximum(z - tau, 0)
    k = jnp.sum(jnp.sign(gap), axis=-1, keepdims=True)
    g1 = jnp.sum(gap, axis=-1, keepdims=True)
    g2 = jnp.sum(gap * gap, axis=-1, keepdims=True)
    # mean_S(z) - tau = g1 / k and sum_S (z - mean)^2 = g2 - g1^2 / k
    return tau + g1 / k - jnp.sqrt(jnp.maximum((1 - g2 + g1 * g1 / k) / k, 0))


@jax.custom_jvp
def entmax15_last(x: jax.Array) -> jax.Array:
    """1.5-entmax over the last axis of a float32/float64 array (-inf = excluded). [..., d]."""
    rows = x.reshape(-1, x.shape[-1]) / 2  # halving is exact: (x - max x) / 2 = x / 2 - max(x / 2)
    m, tau, total = _compact.rowwise(_row_thresholds)(rows)
    # rows with no finite entry: x - m = -inf everywhere, so p = 0 there
    gap = jnp.maximum((rows - m) - tau, 0)
    return (gap * gap * (1 / total)).reshape(x.shape)


def _squares_total(z: jax.Array, tau: jax.Array) -> jax.Array:
    gap = jnp.maximum(z - tau, 0)
    return jnp.sum(gap * gap, axis=-1, keepdims=True)


def _row_thresholds(z: jax.Array):
    """z: [R, d] (x / 2) -> (row max, tau, normaliser), each [R, 1]."""
    return _compact.threshold(
        z, (), solve=_newton_threshold, outside=lambda v, tau: v <= tau, total=_squares_total
    )


@entmax15_last.defjvp
def _entmax15_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    p = entmax15_last(x)
    return p, _jacobian.tangent(p, dx, None, 0.5)


def entmax15(x, axis: int = -1, mask=None, *, return_support: bool = False):
    """1.5-entmax along ``axis`` (sparse, between softmax and sparsemax).

    x: [..., d, ...] float (bf16/f16 computed in float32, output in x's dtype).
    mask: optional boolean, broadcastable to x; False entries get probability 0. Rows with no
    unmasked finite entry return all zeros.
    return_support: also return the support size, int32 of x's shape without ``axis``.
    """
    xc, axis = _common.prepare(x, axis, mask, "entmax15")
    p = _common.finish(entmax15_last(xc), axis, jnp.asarray(x).dtype)
    return (p, _common.support_size(p, axis)) if return_support else p
