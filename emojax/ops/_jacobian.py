"""The entmax tangent rule shared by every mapping (Correia et al. 2019, Peters et al. 2019).

For alpha-entmax p = [(alpha-1) x - tau]_+^(1/(alpha-1)) with s_i = p_i^(2-alpha) on the support
(0 outside) and pt = s / sum(s):
  dp = s * dx - pt * <s, dx>                                   (x direction)
  dp = (p psi - pt <p, psi>) * dalpha                          (alpha direction)
with p_i psi_i = (p_i - s_i - (alpha-1) p_i log p_i) / (alpha-1)^2, evaluated by its Taylor series
near alpha = 1 so that alpha == 1 (softmax) is exact and continuous. Everything is computed from the
output p alone, so the rule is itself differentiable (hessians) and linear in the tangents.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# psi_i = L_i^2 g(v_i) with v = (alpha-1) log p_i and
# g(v) = (1 - v - e^-v) / v^2 = sum_k (-1)^(k+1) v^k / (k+2)!
_G_SERIES = (-1 / 2, 1 / 6, -1 / 24, 1 / 120, -1 / 720, 1 / 5040, -1 / 40320, 1 / 362880)
_SERIES_RADIUS = 0.25


def _g_series(v: jax.Array) -> jax.Array:
    acc = jnp.full_like(v, _G_SERIES[-1])
    for coef in _G_SERIES[-2::-1]:
        acc = acc * v + coef
    return acc


def scores(p: jax.Array, eps: jax.Array | float) -> tuple[jax.Array, jax.Array]:
    """s = p^(1-eps) on the support (0 elsewhere) and its log-safe log p. p: [..., d]."""
    on = p > 0
    logp = jnp.log(jnp.where(on, p, 1))
    if isinstance(eps, float) and eps == 1.0:
        s = on.astype(p.dtype)
    elif isinstance(eps, float) and eps == 0.5:
        s = jnp.sqrt(p)
    else:
        s = jnp.where(on, jnp.exp((1 - eps) * logp), 0)
    return s, logp


def p_psi(p: jax.Array, s: jax.Array, logp: jax.Array, eps: jax.Array) -> jax.Array:
    """p_i * d log p_i / d alpha at fixed threshold parameter (see module doc). [..., d]."""
    on = p > 0
    v = eps * logp
    small = jnp.abs(v) < _SERIES_RADIUS
    series = p * logp * logp * _g_series(jnp.where(small, v, 0))
    eps_safe = jnp.where(small, 1, eps)
    direct = (p - s - p * jnp.where(small, 0, v)) / (eps_safe * eps_safe)
    return jnp.where(on, jnp.where(small, series, direct), 0)


def tangent(p, dx, dalpha, eps):
    """Tangent of p = entmax(x, alpha) along (dx, dalpha); either may be None (zero).

    p, dx: [..., d]; dalpha, eps: [..., 1] or scalars.
    """
    s, logp = scores(p, eps)
    total = jnp.sum(s, axis=-1, keepdims=True)
    pt = s / jnp.where(total > 0, total, 1)
    out = jnp.zeros_like(p)
    if dx is not None:
        sdx = s * jnp.where(p > 0, dx, 0)
        out = out + sdx - pt * jnp.sum(sdx, axis=-1, keepdims=True)
    if dalpha is not None:
        ppsi = p_psi(p, s, logp, eps)
        out = out + (ppsi - pt * jnp.sum(ppsi, axis=-1, keepdims=True)) * dalpha
    return out
