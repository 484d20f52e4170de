"""Masked softmax with the same conventions as the sparse mappings (masked rows -> all zeros)."""

from __future__ import annotations

import jax.numpy as jnp

from emojax.ops import _common


def softmax(x, axis: int = -1, mask=None):
    """softmax along ``axis``; False mask entries get 0 and fully masked rows give all zeros.

    x: [..., d, ...] float (bf16/f16 computed in float32, output in x's dtype).
    """
    xc, axis = _common.prepare(x, axis, mask, "softmax")
    u, valid = _common.shift_by_max(xc)
    e = jnp.exp(u)
    total = jnp.sum(e, axis=-1, keepdims=True)
    p = jnp.where(valid, e / jnp.where(valid, total, 1), 0)
    return _common.finish(p, axis, jnp.asarray(x).dtype)
