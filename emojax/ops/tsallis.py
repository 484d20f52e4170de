"""Tsallis alpha-entropy H_alpha(p) = (1 - sum_i p_i^alpha) / (alpha (alpha - 1)) and d/dalpha.

Written as H = -sum_i p_i L_i k(eps L_i) / (1 + eps) with L = log p, eps = alpha - 1 and
k(v) = expm1(v) / v, so that alpha == 1 gives the Shannon entropy exactly and nothing divides by
~0 near it (Taylor series of k and k' for small |v|). Zero entries contribute 0.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

_RADIUS = 0.5
_K = tuple(1 / math.factorial(n + 1) for n in range(10))  # k(v) = sum_n v^n / (n+1)!
_DK = tuple((n + 1) / math.factorial(n + 2) for n in range(9))  # k'(v)


def _poly(coefs, v):
    acc = jnp.full_like(v, coefs[-1])
    for coef in coefs[-2::-1]:
        acc = acc * v + coef
    return acc


def _k_and_dk(v):
    small = jnp.abs(v) < _RADIUS
    vs = jnp.where(small, 1.0, v)
    em1 = jnp.expm1(vs)
    k = jnp.where(small, _poly(_K, jnp.where(small, v, 0)), em1 / vs)
    dk = jnp.where(small, _poly(_DK, jnp.where(small, v, 0)), (vs * (em1 + 1) - em1) / (vs * vs))
    return k, dk


def tsallis_entropy(p: jax.Array, eps) -> jax.Array:
    """p: [..., d] on the simplex, eps = alpha - 1 >= 0 (scalar or [..., 1]) -> [...]."""
    on = p > 0
    log_p = jnp.log(jnp.where(on, p, 1))
    k, _ = _k_and_dk(eps * log_p)
    return -jnp.sum(jnp.where(on, p * log_p * k, 0) / (1 + eps), axis=-1)


def tsallis_entropy_dalpha(p: jax.Array, eps) -> jax.Array:
    """Partial derivative of H_alpha(p) w.r.t. alpha at fixed p. Shapes as tsallis_entropy."""
    on = p > 0
    log_p = jnp.log(jnp.where(on, p, 1))
    k, dk = _k_and_dk(eps * log_p)
    one_eps = 1 + eps
    terms = jnp.where(on, p * log_p * (dk * log_p * one_eps - k), 0) / (one_eps * one_eps)
    return -jnp.sum(terms, axis=-1)
