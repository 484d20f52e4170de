"""Multi-positive (supervised-contrastive) InfoNCE: all examples sharing an emotion are positives.

Positive weights ``w_ij = [label_i == label_j]`` for integer labels, or the soft-label overlap
``w_ij = <p_i, p_j>`` for label distributions.

* Cross-modal (``y`` given): :func:`clip_loss` with ``targets = w`` — each direction's row target is
  ``w`` normalised over the row (the standard multi-positive CLIP loss).
* One modality (``y=None``): SupCon (Khosla et al. 2020, the "L_out" form): anchors ``x_i``,
  candidates ``x_a`` with ``a != i``;
  ``loss_i = -sum_p w_ip log softmax_a(s x_i.x_a)_p / sum_p w_ip``,
  averaged over anchors that have at least one positive.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from emojax.losses._common import (
    check_finite,
    check_rank,
    check_scalar,
    clamped_scale,
    l2_normalize,
)
from emojax.losses.clip import clip_loss


def positive_weights(labels: jax.Array, batch: int) -> jax.Array:
    """[batch, batch] positive weights from int labels [batch] or soft labels [batch, classes]."""
    if labels.ndim == 1 and jnp.issubdtype(labels.dtype, jnp.integer):
        if labels.shape[0] != batch:
            raise ValueError(f"labels has {labels.shape[0]} entries, the batch has {batch} rows")
        return (labels[:, None] == labels[None, :]).astype(jnp.float32)
    if labels.ndim == 2 and jnp.issubdtype(labels.dtype, jnp.floating):
        if labels.shape[0] != batch:
            raise ValueError(f"labels has {labels.shape[0]} rows, the batch has {batch} rows")
        p = labels.astype(jnp.float32)
        return p @ p.T
    raise ValueError(
        "labels must be integer class ids [batch] or float label distributions [batch, classes]; "
        f"got dtype {labels.dtype} with shape {labels.shape}"
    )


def multi_positive_nce(
    x: jax.Array,
    y: jax.Array | None,
    labels: jax.Array,
    log_scale: jax.Array | float,
    *,
    max_scale: float | None = 100.0,
    normalize: bool = True,
) -> jax.Array:
    """Multi-positive InfoNCE; scalar float32.

    Args:
      x: [batch, dim] embeddings.
      y: [batch, dim] embeddings of a second modality, or None for single-modality SupCon.
      labels: int [batch] emotion ids, or float [batch, classes] soft labels.
      log_scale: scalar log inverse temperature (SupCon's tau = 0.1 is log_scale = log 10).
      max_scale: clamp of exp(log_scale); None disables it.
      normalize: L2-normalise the embeddings first.
    """
    check_rank("x", x, 2, "[batch, dim]")
    check_scalar("log_scale", log_scale)
    weights = jax.lax.stop_gradient(positive_weights(jnp.asarray(labels), x.shape[0]))
    if y is not None:
        return clip_loss(x, y, log_scale, max_scale=max_scale, targets=weights, normalize=normalize)
    check_finite(x=x, log_scale=log_scale, labels=labels)
    xn = l2_normalize(x) if normalize else x.astype(jnp.float32)
    n = x.shape[0]
    off_diag = 1.0 - jnp.eye(n, dtype=jnp.float32)
    logits = clamped_scale(log_scale, max_scale) * (xn @ xn.T)
    logits = jnp.where(off_diag > 0, logits, -jnp.inf)
    log_prob = jax.nn.log_softmax(logits, axis=1)
    w = weights * off_diag
    count = jnp.sum(w, axis=1)
    per_anchor = -jnp.sum(jnp.where(w > 0, w * log_prob, 0.0), axis=1) / jnp.maximum(count, 1e-12)
    has_positive = count > 0
    return jnp.sum(jnp.where(has_positive, per_anchor, 0.0)) / jnp.maximum(jnp.sum(has_positive), 1)
