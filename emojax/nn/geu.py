"""Gated Embedding Unit (Miech et al. 2018; used by MCN): a linear layer then context gating.

``y = W1 x + b1``; ``out = y * sigmoid(W2 y + b2)``; optionally L2-normalised.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from emojax.nn.transformer import dense

Dtype = Any


class ContextGating(nn.Module):
    """``x * sigmoid(W x + b)``, ``x: [..., dim]`` -> ``[..., dim]``. Param ``fc``."""

    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fc = dense(x.shape[-1], ("mlp", "embed"), dtype=self.dtype, name="fc")
        gate = fc(x)
        return x * jax.nn.sigmoid(gate)


class GatedEmbeddingUnit(nn.Module):
    """``x: [..., in_dim]`` -> ``[..., features]``: linear ``fc``, then :class:`ContextGating`
    ``gating``; ``normalize=True`` divides by the L2 norm (as MCN does)."""

    features: int
    normalize: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fc = dense(self.features, ("embed", "mlp"), dtype=self.dtype, name="fc")
        y = ContextGating(self.dtype, name="gating")(fc(x))
        if not self.normalize:
            return y
        y = y.astype(jnp.float32)
        return y / jnp.maximum(jnp.linalg.norm(y, axis=-1, keepdims=True), 1e-12)
