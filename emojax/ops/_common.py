"""Shared input handling for the sparse mappings: validation, dtype, axis, mask.

Every mapping computes its threshold on the LAST axis in a float32 (float64 for float64 inputs)
working copy; masked entries become ``-inf`` so they can never enter the support.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def compute_dtype(dtype) -> jnp.dtype:
    """float64 stays float64; every other float (bf16, f16, f32) is computed in float32."""
    return jnp.dtype(jnp.float64) if jnp.dtype(dtype) == jnp.float64 else jnp.dtype(jnp.float32)


def check_float(x, name: str, fn: str) -> jax.Array:
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"{fn}: {name} must be a floating-point array, got dtype {x.dtype} "
            f"(cast it first, e.g. {name}.astype(jnp.float32))."
        )
    return x


def normalize_axis(axis: int, ndim: int, fn: str) -> int:
    if not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{fn}: axis must be an int, got {type(axis).__name__}.")
    if ndim == 0:
        raise ValueError(f"{fn}: x must have at least one dimension, got a scalar.")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{fn}: axis={axis} is out of range for x with {ndim} dimensions.")
    return int(axis) % ndim


def check_mask(mask, shape: tuple[int, ...], fn: str) -> jax.Array:
    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_:
        raise TypeError(
            f"{fn}: mask must be boolean (True = keep), got dtype {mask.dtype}; "
            "use mask.astype(bool) if it holds 0/1."
        )
    try:
        out = jnp.broadcast_shapes(mask.shape, shape)
    except ValueError:
        out = None
    if out != tuple(shape):
        raise ValueError(
            f"{fn}: mask of shape {mask.shape} does not broadcast to x's shape {tuple(shape)}."
        )
    return mask


def prepare(x, axis: int, mask, fn: str) -> tuple[jax.Array, int]:
    """Validate; return (working copy with the mapped axis last and masked entries -inf, axis)."""
    x = check_float(x, "x", fn)
    axis = normalize_axis(axis, x.ndim, fn)
    xc = x.astype(compute_dtype(x.dtype))
    if mask is not None:
        mask = check_mask(mask, x.shape, fn)
        xc = jnp.where(mask, xc, -jnp.inf)
    return jnp.moveaxis(xc, axis, -1), axis


def finish(p: jax.Array, axis: int, dtype) -> jax.Array:
    """Move the mapped axis back and cast to the input dtype."""
    return jnp.moveaxis(p, -1, axis).astype(dtype)


def row_max(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """x: [..., n] -> (max over the last axis, 0 on rows with no finite entry; valid), [..., 1]."""
    m = jnp.max(x, axis=-1, keepdims=True)
    valid = m > -jnp.inf
    return jnp.where(valid, m, 0), valid


def shift(x: jax.Array, m: jax.Array, valid: jax.Array) -> jax.Array:
    """x - m on valid rows (max 0, -inf kept), 0 on rows with no finite entry. [..., n]."""
    return jnp.where(valid, x - m, 0)


def shift_by_max(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """u = x - max(x) on the last axis; rows with no finite entry get u = 0 and valid = False.

    x: [..., d] -> u: [..., d] (max 0, -inf where excluded), valid: [..., 1].
    """
    m, valid = row_max(x)
    return shift(x, m, valid), valid


def support_size(p: jax.Array, axis: int) -> jax.Array:
    """Number of non-zero entries along ``axis`` (int32)."""
    return jnp.sum(p > 0, axis=axis, dtype=jnp.int32)
