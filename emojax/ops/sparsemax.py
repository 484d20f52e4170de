"""sparsemax (Martins & Astudillo 2016): Euclidean projection onto the simplex, without sorting.

The threshold tau solves sum_i [u_i - tau]_+ = 1 with u = x - max(x). Newton's method on this
piecewise-linear convex decreasing function, started from the lower bound tau = -1, is the
Michelot fixed point tau <- (sum_{u_i > tau} u_i - 1) / #{u_i > tau}: it increases monotonically,
never overshoots, and stops exactly once the support stops shrinking (a handful of passes).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from emojax.ops import _common, _compact, _jacobian


def _michelot_threshold(u: jax.Array, start=None) -> jax.Array:
    """u: [..., d] with max 0 (-inf = excluded) -> tau: [..., 1], exact.

    start: optional lower bound on tau ([..., 1]); -1 (always one) when None.
    """
    max_iter = u.shape[-1] + 1

    # Arithmetic (max/sign) instead of compare+select: XLA:CPU fuses and vectorises it far better.
    def step(tau):
        gap = jnp.maximum(u - tau, 0)
        k = jnp.sum(jnp.sign(gap), axis=-1, keepdims=True)
        return tau + (jnp.sum(gap, axis=-1, keepdims=True) - 1) / k, k

    def cond(state):
        _, k, k_prev, it = state
        return jnp.any(k != k_prev) & (it < max_iter)

    def body(state):
        tau, k, _, it = state
        new_tau, new_k = step(tau)
        return new_tau, new_k, k, it + 1

    tau0 = jnp.full(u.shape[:-1] + (1,), -1.0, u.dtype)
    if start is not None:
        tau0 = jnp.maximum(tau0, start)
    tau1, k1 = step(tau0)
    state = (tau1, k1, jnp.full_like(k1, -1), jnp.int32(1))
    tau, *_ = jax.lax.while_loop(cond, body, state)
    return tau


@jax.custom_jvp
def sparsemax_last(x: jax.Array) -> jax.Array:
    """sparsemax over the last axis of a float32/float64 array (-inf = excluded). [..., d]."""
    rows = x.reshape(-1, x.shape[-1])
    m, tau, _ = _compact.rowwise(_row_thresholds)(rows)
    # rows with no finite entry: x - m = -inf everywhere, so p = 0 there
    return jnp.maximum((rows - m) - tau, 0).reshape(x.shape)


def _row_thresholds(x: jax.Array):
    """x: [R, d] -> (row max, tau, unused normaliser), each [R, 1]."""
    return _compact.threshold(
        x,
        (),
        solve=_michelot_threshold,
        outside=lambda v, tau: v <= tau,
        total=lambda u, tau: jnp.ones_like(tau),  # sparsemax sums to 1 exactly: no normaliser
    )


@sparsemax_last.defjvp
def _sparsemax_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    p = sparsemax_last(x)
    return p, _jacobian.tangent(p, dx, None, 1.0)


def sparsemax(x, axis: int = -1, mask=None, *, return_support: bool = False):
    """sparsemax along ``axis``: the Euclidean projection of x onto the probability simplex.

    x: [..., d, ...] float (bf16/f16 computed in float32, output in x's dtype).
    mask: optional boolean, broadcastable to x; False entries get probability 0. Rows with no
    unmasked finite entry (all masked or all -inf) return all zeros.
    return_support: also return the support size, int32 of x's shape without ``axis``.
    """
    xc, axis = _common.prepare(x, axis, mask, "sparsemax")
    p = _common.finish(sparsemax_last(xc), axis, jnp.asarray(x).dtype)
    return (p, _common.support_size(p, axis)) if return_support else p
