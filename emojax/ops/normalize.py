"""L2 normalisation along an axis: the single implementation shared by emojax.nn and losses."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from emojax.ops import _common


def l2_normalize(x, eps: float = 1e-12, axis: int = -1) -> jax.Array:
    """``x / max(||x||_2, eps)`` along ``axis`` (``torch.nn.functional.normalize``).

    Computed and returned in float32 (float64 inputs stay float64), whatever the input float
    dtype: embeddings are compared in float32 by every loss and similarity in emojax.
    """
    x = jnp.asarray(x)
    x = x.astype(_common.compute_dtype(x.dtype))
    norm = jnp.sqrt(jnp.sum(x * x, axis=axis, keepdims=True))
    return x / jnp.maximum(norm, eps)
