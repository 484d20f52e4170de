"""Pairwise sigmoid loss (SigLIP) on one device or under GSPMD.

    z    = s * x_n y_n^T + b,     labels l = 2 I - 1
    loss = -sum_ij log sigmoid(l_ij z_ij) / B

Reference: Zhai et al. 2023 (arXiv 2303.15343); open_clip ``SigLipLoss`` (sum over the block
divided by the local batch). Init: ``log_scale = log 10``, ``bias = -10``.

Like :func:`emojax.losses.clip_loss`, the core is a ``custom_vjp`` that keeps the ``[B, B]``
logits and costs the three unavoidable ``B x B x D`` products; the positives (diagonal) are
handled in O(B D) so the ``[B, B]`` passes need no label matrix. :func:`siglip_loss_ring` is the
linear-memory ring version.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from emojax.losses._common import (
    check_finite,
    check_pair,
    check_scalar,
    clamped_scale,
    maybe_normalize,
)

SIGLIP_INIT_LOG_SCALE = math.log(10.0)
SIGLIP_INIT_BIAS = -10.0


def _siglip_forward(xn, yn, scale, bias):
    """``(sum_ij softplus(z_ij) - sum_i z_ii) / B``: -log sigmoid(-z) off the diagonal and
    -log sigmoid(z_ii) = softplus(z_ii) - z_ii on it, so the [B, B] pass needs no label mask."""
    z = scale * (xn @ yn.T) + bias
    positives = scale * jnp.sum(xn * yn) + xn.shape[0] * bias
    return (jnp.sum(jax.nn.softplus(z)) - positives) / xn.shape[0], z


@jax.custom_vjp
def _siglip_core(xn, yn, scale, bias):
    return _siglip_forward(xn, yn, scale, bias)[0]


def _siglip_core_fwd(xn, yn, scale, bias):
    loss, z = _siglip_forward(xn, yn, scale, bias)
    return loss, (xn, yn, scale, z)


def _siglip_core_bwd(res, g):
    xn, yn, scale, z = res
    n = xn.shape[0]
    weight = g / n
    grad_z = jax.nn.sigmoid(z) * weight  # one elementwise pass over the residual
    gy = grad_z @ yn - weight * yn  # the diagonal's -1, in O(B D)
    gx = grad_z.T @ xn - weight * xn
    return scale * gy, scale * gx, jnp.sum(gy * xn), jnp.sum(grad_z) - weight * n


_siglip_core.defvjp(_siglip_core_fwd, _siglip_core_bwd)


def siglip_loss(
    x: jax.Array,
    y: jax.Array,
    log_scale: jax.Array | float,
    bias: jax.Array | float,
    *,
    max_scale: float | None = None,
    normalize: bool = True,
) -> jax.Array:
    """SigLIP pairwise sigmoid loss; scalar float32 (sum over all B^2 pairs divided by B).

    Args:
      x: [batch, dim] first-modality embeddings.
      y: [batch, dim] second-modality embeddings, row-aligned with ``x``.
      log_scale: scalar learnable log scale (init :data:`SIGLIP_INIT_LOG_SCALE` = log 10).
      bias: scalar learnable bias (init :data:`SIGLIP_INIT_BIAS` = -10).
      max_scale: optional clamp of exp(log_scale) (SigLIP does not clamp: default None).
      normalize: L2-normalise the embeddings first (default True).
    """
    check_pair(x, y, "x", "y")
    check_scalar("log_scale", log_scale)
    check_scalar("bias", bias)
    check_finite(x=x, y=y, log_scale=log_scale, bias=bias)
    xn, yn = maybe_normalize(x, normalize), maybe_normalize(y, normalize)
    scale = clamped_scale(log_scale, max_scale)
    return _siglip_core(xn, yn, scale, jnp.asarray(bias, jnp.float32))
