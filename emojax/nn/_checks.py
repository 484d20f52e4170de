"""Input checks shared by the encoders."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def check_indices(name: str, indices, upper: int, what: str) -> None:
    """Integer dtype always; values in ``[0, upper)`` when they are concrete (eager calls).

    Under jit the values are unknown here, and JAX's gathers would silently mishandle an
    out-of-range index (``nn.Embed``: NaN rows, or rows from the end for negative ids; graph
    gathers clamp, scatters drop) where PyTorch raises: validate inputs where they are built, or
    run one batch eagerly.
    """
    if not jnp.issubdtype(indices.dtype, jnp.integer):
        raise TypeError(f"{name} must hold integers, got dtype {indices.dtype}")
    if isinstance(indices, jax.core.Tracer) or indices.size == 0:
        return
    values = np.asarray(indices)  # numpy, not jnp: inside an outer trace jnp.min would be staged
    low, high = int(values.min()), int(values.max())
    if low < 0 or high >= upper:
        raise ValueError(f"{name} values must be in [0, {upper}) ({what}), got [{low}, {high}]")
