"""UniEmoX's semantic guidance from a frozen CLIP teacher (Chen et al. 2024; REFERENCES.md).

    L_img    = 1 - cos(f, g)
    L_prompt = 1 - cos(n(s f T^T), n(s g T^T))

``f [batch, dim]``: the student's feature; ``g [batch, dim]``: the teacher's image embedding
(no gradient); ``T [prompts, dim]``: the batch's prompt text features, L2-normalised; ``n`` the
L2-normalisation of each row (not a softmax), so the logit scale ``s`` and the norm of ``f``
cancel. Both return per-example values ``[batch]``; take the mean for the loss.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from emojax.losses._common import check_finite, check_pair
from emojax.ops.normalize import l2_normalize


def _cosine(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.sum(l2_normalize(a) * l2_normalize(b), axis=-1)


def feature_alignment_loss(f: jax.Array, g: jax.Array) -> jax.Array:
    """``1 - cos(f_i, g_i)`` per example: f, g ``[batch, dim]`` -> ``[batch]`` (g detached)."""
    check_pair(f, g, "f", "g")
    check_finite(f=f, g=g)
    f, g = f.astype(jnp.float32), jax.lax.stop_gradient(g.astype(jnp.float32))
    return 1.0 - _cosine(f, g)


def prompt_similarity_loss(f: jax.Array, g: jax.Array, text: jax.Array) -> jax.Array:
    """``1 - cos(n(f T^T), n(g T^T))`` per example.

    f, g: ``[batch, dim]``; text: ``[prompts, dim]`` (normalised here; detached, as g).
    Returns ``[batch]``.
    """
    check_pair(f, g, "f", "g")
    if text.ndim != 2 or text.shape[-1] != f.shape[-1]:
        raise ValueError(f"text must be [prompts, {f.shape[-1]}], got shape {text.shape}")
    check_finite(f=f, g=g, text=text)
    t = jax.lax.stop_gradient(l2_normalize(text.astype(jnp.float32)))
    g = jax.lax.stop_gradient(g.astype(jnp.float32))
    return 1.0 - _cosine(f.astype(jnp.float32) @ t.T, g @ t.T)
