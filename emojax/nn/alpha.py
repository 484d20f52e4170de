"""Learnable entmax alpha: a raw parameter mapped into (min_alpha, max_alpha) by a sigmoid.

The parameter stored in the tree is the raw value; ``ops.alpha_from_raw`` turns it into alpha on
every call, so gradient steps can never leave the range. Used by the EmoSense head and views and
(one alpha per head) by ``entmax_bisect`` attention.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from emojax import ops


def _check_init(alpha: float, min_alpha: float, max_alpha: float) -> None:
    if not min_alpha < alpha < max_alpha:
        raise ValueError(f"alpha_init={alpha} must lie in ({min_alpha}, {max_alpha})")


def alpha_init_fn(alpha: float, *, min_alpha: float = 1.0, max_alpha: float = 2.0):
    """Initializer of a raw alpha parameter so that ``ops.alpha_from_raw(raw) == alpha``.

    ``min_alpha``/``max_alpha`` must be the range later given to ``ops.alpha_from_raw``.
    """
    _check_init(alpha, min_alpha, max_alpha)

    def init(key, shape, dtype=jnp.float32):
        del key
        raw = ops.raw_from_alpha(alpha, min_alpha=min_alpha, max_alpha=max_alpha)
        return jnp.full(shape, raw, dtype)

    return init


def learnable_alpha(
    module: nn.Module,
    name: str,
    init: float,
    *,
    shape: Sequence[int] = (),
    axes: Sequence[str | None] | None = None,
    min_alpha: float = 1.0,
    max_alpha: float = 2.0,
) -> jax.Array:
    """A learned alpha of ``shape`` (a scalar by default) in (min_alpha, max_alpha).

    Declares the float32 raw parameter ``name`` on ``module`` (call it from ``setup`` or an
    ``nn.compact`` method), initialised so that alpha starts at ``init``, and returns alpha.
    ``axes``: logical axis names of the parameter (one per dimension of ``shape``) for sharding.
    """
    shape = tuple(shape)
    initializer = alpha_init_fn(init, min_alpha=min_alpha, max_alpha=max_alpha)
    if axes is not None:
        if len(axes) != len(shape):
            raise ValueError(f"axes={tuple(axes)} must name each dimension of shape={shape}")
        initializer = nn.with_logical_partitioning(initializer, tuple(axes))
    raw = module.param(name, initializer, shape, jnp.float32)
    return ops.alpha_from_raw(raw, min_alpha=min_alpha, max_alpha=max_alpha)
