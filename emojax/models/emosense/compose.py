"""Composition of the five sense vectors on the complex plane (seed 000, section 7.3).

Sense ``k`` (k = 0..4: sight, sound, touch, smell, taste) is rotated by ``zeta**k`` with
``zeta = exp(2*pi*i/5)`` and scaled by a weight ``w_k``; the rotated vectors are summed:

    V = sum_k w_k * zeta**k * v_k        (a complex vector of the sense dimension)

Because ``1 + zeta + ... + zeta**4 = 0``, equal weights on identical vectors cancel: only the
differences between senses survive, and changing one weight moves ``V`` along that sense's
direction in the plane. ``V`` is then split into real and imaginary parts and projected into the
shared embedding space by :class:`ComplexComposition`.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

SENSES = ("sight", "sound", "touch", "smell", "taste")
NUM_SENSES = len(SENSES)


def roots_of_unity(n: int = NUM_SENSES) -> tuple[np.ndarray, np.ndarray]:
    """Real and imaginary parts of ``zeta**k``, k = 0..n-1, zeta = exp(2*pi*i/n): ([n], [n])."""
    angles = 2.0 * np.pi * np.arange(n) / n
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def compose_senses(senses: jnp.ndarray, weights: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Weighted sum of sense vectors rotated onto the five roots of unity.

    senses: [..., 5, dim] real sense vectors; weights: [..., 5] (broadcastable) real weights.
    Returns (real, imag), each [..., dim]: the complex composition ``sum_k w_k zeta^k v_k``.
    """
    if senses.ndim < 2 or senses.shape[-2] != NUM_SENSES:
        raise ValueError(
            f"compose_senses: senses must have shape [..., {NUM_SENSES}, dim] "
            f"(one vector per sense {SENSES}), got {senses.shape}"
        )
    weights = jnp.asarray(weights, senses.dtype)
    if weights.shape[-1:] != (NUM_SENSES,):
        raise ValueError(
            f"compose_senses: weights must end in a sense axis of size {NUM_SENSES}, "
            f"got shape {weights.shape}"
        )
    cos, sin = roots_of_unity()
    weighted = senses * weights[..., :, None]
    real = jnp.einsum("...kd,k->...d", weighted, jnp.asarray(cos, senses.dtype))
    imag = jnp.einsum("...kd,k->...d", weighted, jnp.asarray(sin, senses.dtype))
    return real, imag


class ComplexComposition(nn.Module):
    """Compose sense vectors on the complex plane and project into the shared space.

    The per-sense weights are learned (softplus of a raw parameter, initialised to 1) unless the
    caller passes ``weights`` (e.g. the inversion step, or a user steering one sense).
    """

    out_dim: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, senses: jnp.ndarray, weights: jnp.ndarray | None = None) -> jnp.ndarray:
        """senses: [batch, 5, dim]; weights: optional [batch, 5] or [5] -> [batch, out_dim]."""
        if weights is None:
            # softplus(0.5413) == 1.0: start from equal unit weights.
            raw = self.param("raw_weights", nn.initializers.constant(0.5413), (NUM_SENSES,))
            weights = nn.softplus(raw)
        real, imag = compose_senses(senses.astype(jnp.float32), weights)
        # The sum of rotated vectors alone is blind to a common offset shared by all senses
        # (it cancels); the projection sees both parts of the plane.
        features = jnp.concatenate([real, imag], axis=-1)
        return nn.Dense(self.out_dim, dtype=self.dtype, name="project")(features)


def learned_weights(composition_params) -> jnp.ndarray:
    """The learned per-sense weights w_k > 0 from a ComplexComposition's params: [5]."""
    return nn.softplus(composition_params["raw_weights"])
