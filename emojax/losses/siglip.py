"""Pairwise sigmoid loss (SigLIP) on one device or under GSPMD.

    z    = s * x_n y_n^T + b,     labels l = 2 I - 1
    loss = -sum_ij log sigmoid(l_ij z_ij) / B

Reference: Zhai et al. 2023 (arXiv 2303.15343); open_clip ``SigLipLoss`` (sum over the block
divided by the local batch). Init: ``log_scale = log 10``, ``bias = -10``.

Like :func:`emojax.losses.clip_loss`, the core is a ``custom_vjp`` that keeps the ``[B, B]``
logits and costs the three unavoidable ``B x B x D`` products; :func:`siglip_loss_ring` is the
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
    l2_normalize,
)

SIGLIP_INIT_LOG_SCALE = math.log(10.0)
SIGLIP_INIT_BIAS = -10.0


def _signed_logits(xn, yn, scale, bias, positive_diagonal: bool):
    """``l * z`` for one block: labels +1 on the diagonal when the block is the paired one."""
    z = scale * (xn @ yn.T) + bias
    if positive_diagonal:
        eye = jnp.eye(xn.shape[0], yn.shape[0], dtype=jnp.float32)
        return z * (2.0 * eye - 1.0)
    return -z


def sigmoid_block_sum(xn, yn, scale, bias, positive_diagonal: bool) -> jax.Array:
    """``-sum log sigmoid(l * z)`` over one [rows, cols] block (plain autodiff-able helper)."""
    return jnp.sum(jax.nn.softplus(-_signed_logits(xn, yn, scale, bias, positive_diagonal)))


def sigmoid_block_grads(xn, yn, scale, bias, positive_diagonal: bool, weight):
    """Gradients of ``weight * sigmoid_block_sum`` w.r.t. (xn, yn, scale, bias), recomputing z.

    dL/dz = -l * sigmoid(-l z) * weight; the three products are z, G y and G^T x.
    """
    signed = _signed_logits(xn, yn, scale, bias, positive_diagonal)
    if positive_diagonal:
        sign = 2.0 * jnp.eye(xn.shape[0], yn.shape[0], dtype=jnp.float32) - 1.0
        grad_z = -sign * jax.nn.sigmoid(-signed) * weight
    else:
        grad_z = jax.nn.sigmoid(-signed) * weight
    gy = grad_z @ yn
    gx = grad_z.T @ xn
    return scale * gy, scale * gx, jnp.sum(gy * xn), jnp.sum(grad_z)


@jax.custom_vjp
def _siglip_core(xn, yn, scale, bias):
    return sigmoid_block_sum(xn, yn, scale, bias, True) / xn.shape[0]


def _siglip_core_fwd(xn, yn, scale, bias):
    signed = _signed_logits(xn, yn, scale, bias, True)
    loss = jnp.sum(jax.nn.softplus(-signed)) / xn.shape[0]
    return loss, (xn, yn, scale, signed)


def _siglip_core_bwd(res, g):
    xn, yn, scale, signed = res
    n = xn.shape[0]
    sign = 2.0 * jnp.eye(n, dtype=jnp.float32) - 1.0
    grad_z = -sign * jax.nn.sigmoid(-signed) * (g / n)  # one elementwise pass over the residual
    gy = grad_z @ yn
    gx = grad_z.T @ xn
    return scale * gy, scale * gx, jnp.sum(gy * xn), jnp.sum(grad_z)


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
    xn = l2_normalize(x) if normalize else x.astype(jnp.float32)
    yn = l2_normalize(y) if normalize else y.astype(jnp.float32)
    scale = clamped_scale(log_scale, max_scale)
    return _siglip_core(xn, yn, scale, jnp.asarray(bias, jnp.float32))
