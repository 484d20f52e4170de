"""Symmetric InfoNCE (CLIP / CLAP / senses<->emotion) on one device or under GSPMD.

    logits = s * x_n y_n^T + b,         s = min(exp(log_scale), max_scale)
    loss   = ( CE_rows(logits, T) + CE_rows(logits^T, T^T) ) / 2

with ``x_n, y_n`` the L2-normalised embeddings and ``T`` the identity (paired data) or a soft /
multi-positive target matrix. Reference: Radford et al. 2021; open_clip ``ClipLoss``.

The core is a ``custom_vjp`` that keeps the ``[B, B]`` logits as its one residual and builds the
logit gradient of both directions in a single elementwise pass, so forward + backward cost exactly
the three ``B x B x D`` products (``x y^T``, ``G y``, ``G^T x``). Its memory is quadratic in the
batch; :func:`emojax.losses.clip_loss_sharded` is the linear-memory version for large batches.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp

from emojax.losses._common import (
    check_finite,
    check_pair,
    check_scalar,
    clamped_scale,
    maybe_normalize,
)

CLIP_INIT_LOG_SCALE = float(jnp.log(1.0 / 0.07))


def _target_matrices(targets: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Row-normalised targets for x->y and for y->x (the transposed direction)."""
    t = jax.lax.stop_gradient(targets.astype(jnp.float32))
    row = t / jnp.maximum(jnp.sum(t, axis=1, keepdims=True), 1e-12)
    col = t / jnp.maximum(jnp.sum(t, axis=0, keepdims=True), 1e-12)  # column j is y_j's target
    return row, col


def _clip_forward(xn, yn, scale, bias, t_row, t_col):
    logits = scale * (xn @ yn.T) + bias
    lse_row = jax.nn.logsumexp(logits, axis=1)
    lse_col = jax.nn.logsumexp(logits, axis=0)
    n = xn.shape[0]
    if t_row is None:
        # the diagonal in O(B D): no extra pass over the [B, B] logits
        positives = 2.0 * (scale * jnp.sum(xn * yn) + n * bias)
    else:
        positives = jnp.sum((t_row + t_col) * logits)
    loss = (jnp.sum(lse_row) + jnp.sum(lse_col) - positives) / (2.0 * n)
    return loss, logits, lse_row, lse_col


@jax.custom_vjp
def _clip_core(xn, yn, scale, bias, t_row, t_col):
    return _clip_forward(xn, yn, scale, bias, t_row, t_col)[0]


def _clip_core_fwd(xn, yn, scale, bias, t_row, t_col):
    loss, logits, lse_row, lse_col = _clip_forward(xn, yn, scale, bias, t_row, t_col)
    return loss, (xn, yn, scale, logits, lse_row, lse_col, t_row, t_col)


def _clip_core_bwd(res, g):
    xn, yn, scale, logits, lse_row, lse_col, t_row, t_col = res
    n = xn.shape[0]
    weight = g / (2.0 * n)
    # dL/dlogits = (softmax_rows + softmax_cols - targets) * weight, one elementwise pass
    probs = jnp.exp(logits - lse_row[:, None]) + jnp.exp(logits - lse_col[None, :])
    if t_row is not None:
        probs = probs - t_row - t_col
    grad_logits = probs * weight
    gy = grad_logits @ yn
    gx = grad_logits.T @ xn
    d_bias = jnp.sum(grad_logits)
    if t_row is None:  # the identity targets' -2I, applied in O(B D)
        gy = gy - 2.0 * weight * yn
        gx = gx - 2.0 * weight * xn
        d_bias = d_bias - 2.0 * weight * n
    d_scale = jnp.sum(gy * xn)  # sum_ij G_ij <x_i, y_j> without another B x B pass
    zeros = (None, None) if t_row is None else (jnp.zeros_like(t_row), jnp.zeros_like(t_col))
    return (scale * gy, scale * gx, d_scale, d_bias) + zeros


_clip_core.defvjp(_clip_core_fwd, _clip_core_bwd)


def clip_loss(
    x: jax.Array,
    y: jax.Array,
    log_scale: jax.Array | float,
    *,
    bias: jax.Array | float | None = None,
    max_scale: float | None = 100.0,
    targets: jax.Array | None = None,
    normalize: bool = True,
) -> jax.Array:
    """Symmetric InfoNCE between two aligned batches; scalar float32 loss.

    Args:
      x: [batch, dim] embeddings of the first modality (e.g. image / audio / senses).
      y: [batch, dim] embeddings of the second modality; row i of ``y`` pairs with row i of ``x``.
      log_scale: scalar learnable log temperature; scale = min(exp(log_scale), max_scale).
        CLIP initialises it at ``log(1/0.07)`` (:data:`CLIP_INIT_LOG_SCALE`).
      bias: optional scalar added to every logit.
      max_scale: clamp of the scale (CLIP: 100); None disables the clamp.
      targets: optional [batch, batch] non-negative soft / multi-positive targets; row i says which
        ``y`` are positives of ``x_i``. x->y uses row-normalised targets, y->x column-normalised
        ones. Default: the identity (row i pairs with row i). Treated as constants.
      normalize: L2-normalise ``x`` and ``y`` first (default True).
    """
    check_pair(x, y, "x", "y")
    check_scalar("log_scale", log_scale)
    check_scalar("bias", bias)
    if targets is not None and targets.shape != (x.shape[0], x.shape[0]):
        raise ValueError(
            f"targets must have shape [batch, batch] = {(x.shape[0], x.shape[0])}, "
            f"got {targets.shape}"
        )
    check_finite(x=x, y=y, log_scale=log_scale, bias=bias, targets=targets)
    xn, yn = maybe_normalize(x, normalize), maybe_normalize(y, normalize)
    scale = clamped_scale(log_scale, max_scale)
    b = jnp.zeros((), jnp.float32) if bias is None else jnp.asarray(bias, jnp.float32)
    t_row, t_col = (None, None) if targets is None else _target_matrices(targets)
    return _clip_core(xn, yn, scale, b, t_row, t_col)


def clip_loss_multi(
    embeddings: Mapping[str, jax.Array] | Sequence[jax.Array],
    log_scale: jax.Array | float,
    *,
    pairs: Sequence[tuple] | None = None,
    **kwargs,
) -> jax.Array:
    """Mean :func:`clip_loss` over modality pairs (CLIP for more than two modalities).

    Args:
      embeddings: modality name (or index) -> [batch, dim] embeddings.
      log_scale: shared scalar log temperature.
      pairs: pairs of keys to contrast; default all unordered pairs.
      kwargs: passed to :func:`clip_loss` (bias, max_scale, targets, normalize).
    """
    items = dict(embeddings) if isinstance(embeddings, Mapping) else dict(enumerate(embeddings))
    if len(items) < 2:
        raise ValueError(f"clip_loss_multi needs at least two modalities, got {list(items)}")
    pairs = list(itertools.combinations(items, 2)) if pairs is None else list(pairs)
    if not pairs:
        raise ValueError("pairs is empty: name at least one (a, b) modality pair")
    for a, b in pairs:
        if a not in items or b not in items:
            raise ValueError(f"pair {(a, b)} names a modality not in {list(items)}")
    losses = [clip_loss(items[a], items[b], log_scale, **kwargs) for a, b in pairs]
    return jnp.mean(jnp.stack(losses))
