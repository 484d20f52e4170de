"""Input checks shared by the encoders (validation design: ``emojax/ops/_validate.py``)."""

from __future__ import annotations

import jax.numpy as jnp

from emojax.ops import _validate


def check_indices(name: str, indices, upper: int, what: str) -> None:
    """Integer dtype always; values in ``[0, upper)`` when they are host (NumPy / Python) values.

    jax Arrays are not read (that would be a device->host sync; under jit the values are unknown),
    and JAX's gathers silently mishandle an out-of-range index (``nn.Embed``: NaN rows, or rows
    from the end for negative ids; graph gathers clamp, scatters drop) where PyTorch raises:
    validate ids where they are built (the tokenizer / graph builder hands NumPy arrays to the
    model, which are checked here), or trace under ``emojax.ops.device_checks()`` and wrap with
    ``checkify.checkify``.
    """
    if not jnp.issubdtype(indices.dtype, jnp.integer):
        raise TypeError(f"{name} must hold integers, got dtype {indices.dtype}")
    _validate.check(
        indices,
        lambda xp, v: (xp.min(v) >= 0) & (xp.max(v) < upper),
        f"{name} values must be in [0, {upper}) ({what}), got [{{low}}, {{high}}]",
        low=lambda xp, v: xp.min(v),
        high=lambda xp, v: xp.max(v),
    )
