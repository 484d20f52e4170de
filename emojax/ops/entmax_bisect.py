"""alpha-entmax for any alpha >= 1 with a differentiable (learnable) alpha.

p_i = [(alpha-1) x_i - tau]_+^(1/(alpha-1)). Writing eps = alpha - 1, u = x - max(x) and
tau = eps (max(x) + c) - 1, this is p_i = [1 + eps (u_i - c)]_+^(1/eps) = exp(log1p(eps y_i) / eps)
with y = u - c, which tends to exp(u_i - c) as eps -> 0: at alpha == 1 it IS softmax (c = logsumexp)
and nothing divides by ~0 near it. The unknown c lies in [0, (1 - n^-eps) / eps] (n = unmasked
entries). It is found by a safeguarded Newton iteration on ((sum_i p_i(c))^(eps/2) - 1) / (eps/2)
started from c = 0 (-> log sum_i p_i as eps -> 0, so the step is exact for softmax); it falls back
to bisection whenever a step would leave the current bracket. The output is renormalised
to sum to 1.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from emojax.ops import _common, _compact, _jacobian, _validate

# alpha - 1 is floored here: log1p(eps y) / eps is then exactly y (softmax) in float32/64
_TINY_EPS = 1e-30


def _probabilities(u, eps, c):
    """p(c) and s(c) = p^(1-eps) on [..., d]; u: [..., d], eps (> 0, see _TINY_EPS), c: [..., 1].

    Written with max/log1p/exp (no divisions): XLA:CPU vectorises this well.
    log1p keeps p = exp(log1p(eps y) / eps) accurate for tiny eps, down to exact softmax.
    """
    log_base = jnp.log1p(jnp.maximum(eps * (u - c), -1))  # -inf outside the support
    r = 1 / eps
    p = jnp.exp(log_base * r)
    # s is computed from log_base, not from p: reusing p in a second reduction makes XLA:CPU
    # recompute or materialise it (several times slower)
    s = jnp.exp(jnp.where(log_base > -jnp.inf, log_base * (r - 1), -jnp.inf))
    return p, s


def _solve(u, eps, n_iter: int, start=None):
    """u: [..., d] (max 0, -inf excluded), eps: [..., 1] >= 0 -> c: [..., 1].

    start: optional lower bound on c ([..., 1]), e.g. the threshold of a subset of the entries.

    Newton on H(c) = (S(c)^a - 1) / a with S(c) = sum_i p_i(c) and a = eps / 2 (H -> log S as
    eps -> 0: exact in one step for softmax). S^eps = ||[1 + eps (u - c)]_+||_r (r = 1/eps) is
    convex for alpha <= 2; its square root S^(eps/2) bends less, and Newton on it takes about one
    pass fewer on typical rows (4 instead of 5 at alpha = 1.5, d = 32000) but may overshoot: a
    bracket [lo, hi] is kept and a step leaving it bisects instead. Rows with alpha > 2 bisect the
    bracket (up to n_iter halvings), as Newton is not reliable there.
    """
    dtype = u.dtype
    # Newton converges quadratically: once a step is below ~sqrt(machine eps), the step just taken
    # leaves an error ~step^2 below round-off, so we stop there instead of confirming it.
    tol = 0.1 * float(np.sqrt(8 * np.finfo(dtype).eps))
    log_n = jnp.log(jnp.sum(u > -jnp.inf, axis=-1, keepdims=True).astype(dtype))
    bisect_tol = 4 * float(np.finfo(dtype).eps)
    newton = eps <= 1
    hi = -jnp.expm1(-eps * log_n) / eps
    lo = jnp.zeros_like(hi) if start is None else jnp.clip(start, 0, hi)
    power = eps / 2

    def body(state):
        c, lo, hi, _, it = state
        p, s = _probabilities(u, eps, c)
        log_total = jnp.log(jnp.sum(p, axis=-1, keepdims=True))
        h = jnp.expm1(power * log_total) / power
        lo = jnp.where(h >= 0, c, lo)
        hi = jnp.where(h <= 0, c, hi)
        slope = jnp.sum(s, axis=-1, keepdims=True) * jnp.exp((power - 1) * log_total)
        new = c + h / slope
        mid = (lo + hi) / 2
        # alpha <= 2: Newton inside the bracket; a converged row never bisects (round-off may put
        # a tiny step just outside the bracket). alpha > 2: H is not convex and a huge slope can
        # make Newton steps tiny far from the root, so those rows bisect (like the reference).
        newton_done = jnp.abs(new - c) <= tol * (1 + jnp.abs(c))
        outside = ~((new > lo) & (new < hi))
        new = jnp.where(newton & ~(outside & ~newton_done), new, mid)
        done = jnp.where(newton, newton_done, hi - lo <= bisect_tol * (1 + jnp.abs(mid)))
        return new, lo, hi, jnp.all(done), it + 1

    def cond(state):
        *_, done, it = state
        return ~done & (it < n_iter)

    c, *_ = jax.lax.while_loop(cond, body, (lo, lo, hi, jnp.array(False), jnp.int32(0)))
    return c


def _total(u, c, eps):
    """Sum of the unnormalised output at threshold c. u: [r, n], c, eps: [r, 1] -> [r, 1]."""
    return jnp.sum(_probabilities(u, eps, c)[0], axis=-1, keepdims=True)


def _outside(v, c, eps):
    """v (shifted like u) gets probability 0 at c: the test the output's max(., -1) makes."""
    return eps * (v - c) <= -1


def _row_thresholds(x, eps, n_iter: int):
    """x: [R, d], eps: [R, 1] -> (row max, c, normaliser), each [R, 1]."""
    solve = functools.partial(_solve, n_iter=n_iter)
    return _compact.threshold(x, (eps,), solve=solve, outside=_outside, total=_total)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def entmax_last(x: jax.Array, alpha: jax.Array, n_iter: int) -> jax.Array:
    """alpha-entmax over the last axis. x: [..., d] (-inf = excluded), alpha: [..., 1] >= 1."""
    eps = jnp.maximum(alpha - 1, _TINY_EPS).astype(x.dtype)
    rows = x.reshape(-1, x.shape[-1])
    eps_rows = jnp.broadcast_to(eps, x.shape[:-1] + (1,)).reshape(-1, 1)
    thresholds = _compact.rowwise(functools.partial(_row_thresholds, n_iter=n_iter))
    m, c, total = thresholds(rows, eps_rows)
    # rows with no finite entry: x - m = -inf everywhere, so p = 0 there
    log_base = jnp.log1p(jnp.maximum(eps_rows * ((rows - m) - c), -1))
    p = jnp.exp(log_base / eps_rows) * (1 / total)
    return p.reshape(x.shape)


def _entmax_jvp(n_iter, primals, tangents):
    x, alpha = primals
    dx, dalpha = (None if _is_zero(t) else t for t in tangents)
    p = entmax_last(x, alpha, n_iter)
    eps = jnp.maximum(alpha - 1, 0).astype(p.dtype)
    if dalpha is not None:  # alpha < 1 is used as 1: no gradient there
        dalpha = jnp.where(alpha >= 1, dalpha, 0).astype(p.dtype)
    return p, _jacobian.tangent(p, dx, dalpha, eps)


# symbolic zeros: a fixed alpha (the common case) skips the alpha part of the tangent entirely
entmax_last.defjvp(_entmax_jvp, symbolic_zeros=True)


def _is_zero(t) -> bool:
    return isinstance(t, jax.custom_derivatives.SymbolicZero)


def _check_alpha(alpha, shape: tuple[int, ...], axis: int, dtype) -> jax.Array:
    """alpha: scalar or array broadcastable to x with size 1 on axis -> [..., 1] (axis last)."""
    fn = "entmax_bisect"
    if isinstance(alpha, (bool, np.bool_)):
        raise TypeError(f"{fn}: alpha must be a number or a float array, got a bool.")
    if isinstance(alpha, (int, float, np.integer, np.floating)):
        if not np.isfinite(alpha) or alpha < 1:
            raise ValueError(
                f"{fn}: alpha must be a finite number >= 1 (1 = softmax, 2 = sparsemax), got "
                f"{alpha}. For a learnable alpha use emojax.ops.alpha_from_raw."
            )
    # host (NumPy) alphas raise here; jax Arrays are not read (no host sync, see ops/_validate.py)
    _validate.check(
        alpha,
        lambda xp, a: xp.all(a >= 1),
        f"{fn}: every alpha must be >= 1 (and not NaN), got min {{low}}.",
        low=lambda xp, a: xp.min(a),
    )
    alpha = jnp.asarray(alpha)
    target = tuple(1 if i == axis else n for i, n in enumerate(shape))
    try:
        ok = jnp.broadcast_shapes(alpha.shape, target) == target
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"{fn}: alpha of shape {alpha.shape} must broadcast to {target} (x's shape "
            f"{tuple(shape)} with size 1 on axis {axis}): one alpha per row, not per entry."
        )
    alpha = jnp.broadcast_to(alpha.astype(dtype), target)
    return jnp.moveaxis(alpha, axis, -1)


def entmax_bisect(
    x, alpha=1.5, axis: int = -1, n_iter: int = 50, mask=None, *, return_support: bool = False
):
    """alpha-entmax along ``axis``, differentiable w.r.t. x and alpha (jvp, grad, jacfwd, hessian).

    x: [..., d, ...] float (bf16/f16 computed in float32, output in x's dtype).
    alpha: >= 1; a scalar or an array broadcastable to x with size 1 on ``axis`` (per row/head).
      1 is softmax, 1.5 is entmax15, 2 is sparsemax. Python numbers and NumPy arrays < 1 raise;
      jax Arrays are not read (no host sync): their values < 1 are treated as 1 (use
      ``alpha_from_raw`` to keep a learned alpha in range; ``device_checks`` + checkify to check).
    n_iter: cap on the safeguarded Newton iterations (it stops earlier at machine precision).
    mask: optional boolean broadcastable to x; False entries get 0. Rows with no unmasked finite
      entry return all zeros.
    return_support: also return the support size, int32 of x's shape without ``axis``.
    """
    fn = "entmax_bisect"
    xc, axis = _common.prepare(x, axis, mask, fn)
    if not isinstance(n_iter, (int, np.integer)) or n_iter < 1:
        raise ValueError(f"{fn}: n_iter must be a positive int, got {n_iter!r}.")
    shape = jnp.shape(x)
    alpha_last = _check_alpha(alpha, shape, axis, xc.dtype)
    p = _common.finish(entmax_last(xc, alpha_last, int(n_iter)), axis, jnp.asarray(x).dtype)
    return (p, _common.support_size(p, axis)) if return_support else p
