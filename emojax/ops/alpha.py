"""Keep a learnable alpha in a safe range.

A raw, unconstrained alpha drifts below 1 during training, where alpha-entmax is undefined (the
PyTorch package returns NaN), and far above 2, where p^(2-alpha) in the gradient blows up near the
support boundary and float32 becomes unstable. Parametrise alpha = min_alpha + (max_alpha -
min_alpha) * sigmoid(raw) instead: every raw value maps into [min_alpha, max_alpha], the gradient
never vanishes abruptly (unlike a clamp), and raw = 0 gives the midpoint (1.5 with the defaults).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from emojax.ops import _validate


def _check_range(min_alpha: float, max_alpha: float, fn: str) -> None:
    if not 1.0 <= min_alpha < max_alpha:
        raise ValueError(
            f"{fn}: need 1 <= min_alpha < max_alpha, got min_alpha={min_alpha}, "
            f"max_alpha={max_alpha}."
        )


def alpha_from_raw(raw, *, min_alpha: float = 1.0, max_alpha: float = 2.0) -> jax.Array:
    """alpha = min_alpha + (max_alpha - min_alpha) * sigmoid(raw), elementwise, in (min, max)."""
    _check_range(min_alpha, max_alpha, "alpha_from_raw")
    raw = jnp.asarray(raw)
    return min_alpha + (max_alpha - min_alpha) * jax.nn.sigmoid(raw)


def raw_from_alpha(alpha, *, min_alpha: float = 1.0, max_alpha: float = 2.0) -> jax.Array:
    """Inverse of :func:`alpha_from_raw` (to initialise the raw parameter at a chosen alpha)."""
    _check_range(min_alpha, max_alpha, "raw_from_alpha")
    # host alphas raise; jax Arrays are not read (no host sync): outside the range gives NaN/inf
    _validate.check(
        alpha,
        lambda xp, a: xp.all((a > min_alpha) & (a < max_alpha)),
        f"raw_from_alpha: alpha must lie strictly inside ({min_alpha}, {max_alpha}), got "
        "{alpha}.",
        alpha=lambda xp, a: a,
    )
    alpha = jnp.asarray(alpha, jnp.result_type(float))
    frac = (alpha - min_alpha) / (max_alpha - min_alpha)
    return jnp.log(frac) - jnp.log1p(-frac)
