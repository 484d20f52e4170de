"""The entmax tangent rule shared by every mapping (Correia et al. 2019, Peters et al. 2019).

For alpha-entmax p = [(alpha-1) x - tau]_+^(1/(alpha-1)) with s_i = p_i^(2-alpha) on the support
(0 outside) and pt = s / sum(s):
  dp = s * dx - pt * <s, dx>                                   (x direction)
  dp = (p psi - pt <p, psi>) * dalpha                          (alpha direction)
with p_i psi_i = (p_i - s_i - (alpha-1) p_i log p_i) / (alpha-1)^2, evaluated by its Taylor series
near alpha = 1 so that alpha == 1 (softmax) is exact and continuous. Everything is computed from the
output p alone, so the rule is itself differentiable (hessians) and linear in the tangents.

Off the support everything is made 0 arithmetically (sign(p), log of max(p, tiny) times p = 0)
instead of with where/select, and per-row divisions are reciprocals times entries: XLA:CPU fuses
such elementwise work into its row reductions, whereas selects split those fusions and materialise
full-size intermediates. The only select left picks the Taylor or direct form of p psi.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# psi_i = L_i^2 g(v_i) with v = (alpha-1) log p_i and
# g(v) = (1 - v - e^-v) / v^2 = sum_k (-1)^(k+1) v^k / (k+2)!
_G_SERIES = (-1 / 2, 1 / 6, -1 / 24, 1 / 120, -1 / 720, 1 / 5040, -1 / 40320, 1 / 362880)
_SERIES_RADIUS = 0.25


def _g_series(v: jax.Array) -> jax.Array:
    acc = _G_SERIES[-1]
    for coef in _G_SERIES[-2::-1]:
        acc = acc * v + coef
    return acc


def _safe_log(p: jax.Array) -> jax.Array:
    """log p on the support, log(tiny) off it (so p * f(log p) is 0 there). p: [..., d]."""
    return jnp.log(jnp.maximum(p, np.finfo(p.dtype).tiny))


def _scores(p: jax.Array, logp: jax.Array | None, eps: jax.Array | float) -> jax.Array:
    """s = p^(1-eps) on the support, 0 elsewhere. p: [..., d]."""
    if isinstance(eps, float) and eps == 1.0:
        return jnp.sign(p)
    if isinstance(eps, float) and eps == 0.5:
        return jnp.sqrt(p)
    # the exponent is capped so that off the support (where it may be +large) 0 * exp(.) stays 0
    cap = float(np.log(np.finfo(p.dtype).max))
    return jnp.sign(p) * jnp.exp(jnp.minimum((1 - eps) * logp, cap))


def _p_psi(p: jax.Array, s: jax.Array, logp: jax.Array, eps: jax.Array) -> jax.Array:
    """p_i * d log p_i / d alpha at fixed threshold parameter (see module doc). [..., d].

    The Taylor branch (|eps log p| < radius) or the direct formula is picked per entry. Both stay
    finite (so do their derivatives, which a select does not mask): eps is floored at the smallest
    value for which the direct branch can be chosen (|log p| <= -log(tiny)).
    """
    v = eps * logp
    series = p * logp * logp * _g_series(v)
    eps_floor = _SERIES_RADIUS / float(-np.log(np.finfo(p.dtype).tiny))
    eps_safe = jnp.maximum(eps, eps_floor)
    direct = (p - s - p * v) * (1 / (eps_safe * eps_safe))
    return jnp.where(jnp.abs(v) < _SERIES_RADIUS, series, direct)


def tangent(p, dx, dalpha, eps):
    """Tangent of p = entmax(x, alpha) along (dx, dalpha); either may be None (zero).

    p, dx: [..., d]; dalpha, eps: [..., 1] or scalars.
    """
    needs_log = dalpha is not None or not isinstance(eps, float)
    logp = _safe_log(p) if needs_log else None
    s = _scores(p, logp, eps)
    inv_total = 1 / jnp.maximum(jnp.sum(s, axis=-1, keepdims=True), np.finfo(p.dtype).tiny)
    # dp = s * (dx - <s, dx> / sum s) + (p psi - s <p psi> / sum s) * dalpha
    shift = 0
    out = 0
    if dx is not None:
        shift = jnp.sum(s * dx, axis=-1, keepdims=True) * inv_total
        out = s * dx
    if dalpha is not None:
        ppsi = _p_psi(p, s, logp, eps)
        shift = shift + jnp.sum(ppsi, axis=-1, keepdims=True) * inv_total * dalpha
        out = out + ppsi * dalpha
    if dx is None and dalpha is None:
        return jnp.zeros_like(p)
    return out - s * shift
