"""CLIP InfoNCE with global negatives over a device mesh, in memory linear in the local batch.

Same value and gradients as :func:`emojax.losses.clip_loss` on the gathered batch, computed with
``jax.shard_map`` over the mesh axes holding the batch:

* forward: each device streams the global columns past its local rows (``y`` travels around the
  ring with ``ppermute``), one ``[b_local, chunk]`` logits block at a time. Row logsumexps
  accumulate locally with an online (streaming) logsumexp; the column logsumexp of each chunk
  travels *with* the chunk and is complete when the chunk comes home after ``n`` shifts.
* backward (``custom_vjp``): the ring runs again and recomputes each block from ``x``, ``y`` and the
  two logsumexp vectors; ``dL/dx`` accumulates locally and ``dL/dy`` travels with its chunk. The
  positives (the diagonal) are handled with O(b D) terms outside the blocks.

Residuals are ``x, y`` (``[b, D]`` per device) and two ``[b]`` vectors; the only quadratic
temporary is one ``[b_local, chunk]`` block, so per-device memory is linear in the local batch.
The gradient is exact (no device-count scaling): the loss is the global mean, each block's
gradient is written explicitly and the scale/bias gradients are ``psum``-ed once.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from emojax.losses import _ring
from emojax.losses._common import (
    clamped_scale,
    maybe_normalize,
)


def _forward_chunk(x_l, y_c, col_lse_c, row_lse, scale, bias, c):
    """Fold the logits block ``x_l y_c^T`` (column sub-chunks of width c) into both logsumexps."""

    def body(j, carry):
        row_lse, col_lse_c = carry
        y_sub = jax.lax.dynamic_slice_in_dim(y_c, j * c, c)
        z = scale * (x_l @ y_sub.T) + bias  # [b, c]
        row_lse = jnp.logaddexp(row_lse, jax.nn.logsumexp(z, axis=1))
        col_sub = jax.lax.dynamic_slice_in_dim(col_lse_c, j * c, c)
        col_sub = jnp.logaddexp(col_sub, jax.nn.logsumexp(z, axis=0))
        return row_lse, jax.lax.dynamic_update_slice_in_dim(col_lse_c, col_sub, j * c, 0)

    return jax.lax.fori_loop(0, y_c.shape[0] // c, body, (row_lse, col_lse_c))


def _backward_chunk(x_l, y_c, col_lse_c, dy_c, acc, row_lse, scale, bias, weight, c):
    """Recompute the block, add its gradient to dx/ds/db (acc) and to the travelling dy_c."""

    def body(j, carry):
        dy_c, (dx, ds, db) = carry
        y_sub = jax.lax.dynamic_slice_in_dim(y_c, j * c, c)
        col_sub = jax.lax.dynamic_slice_in_dim(col_lse_c, j * c, c)
        z = scale * (x_l @ y_sub.T) + bias
        g = (jnp.exp(z - row_lse[:, None]) + jnp.exp(z - col_sub[None, :])) * weight
        gy = g @ y_sub  # [b, D]
        dy_sub = jax.lax.dynamic_slice_in_dim(dy_c, j * c, c) + scale * (g.T @ x_l)
        dy_c = jax.lax.dynamic_update_slice_in_dim(dy_c, dy_sub, j * c, 0)
        return dy_c, (dx + scale * gy, ds + jnp.sum(gy * x_l), db + jnp.sum(g))

    return jax.lax.fori_loop(0, y_c.shape[0] // c, body, (dy_c, acc))


def _local_forward(x_l, y_l, scale, bias, *, axes, n, c, batch):
    row_lse = jnp.full((x_l.shape[0],), -jnp.inf, jnp.float32)
    col_lse = jnp.full((y_l.shape[0],), -jnp.inf, jnp.float32)
    row_lse, col_lse = _ring.varying((row_lse, col_lse), axes)
    row_lse, col_lse = _forward_chunk(x_l, y_l, col_lse, row_lse, scale, bias, c)

    def step(_, carry):
        y_c, col_c, row_lse = _ring.shift(carry[:2], axes, n) + (carry[2],)
        row_lse, col_c = _forward_chunk(x_l, y_c, col_c, row_lse, scale, bias, c)
        return y_c, col_c, row_lse

    _, col_lse, row_lse = jax.lax.fori_loop(1, n, step, (y_l, col_lse, row_lse))
    col_lse = _ring.shift(col_lse, axes, n)  # the home chunk's column statistics come back
    positives = scale * jnp.sum(x_l * y_l) + bias * x_l.shape[0]
    local = jnp.sum(row_lse) + jnp.sum(col_lse) - 2.0 * positives
    loss = jax.lax.psum(local, axes) / (2.0 * batch)
    return loss, row_lse, col_lse


def _local_backward(x_l, y_l, scale, bias, row_lse, col_lse, g, *, axes, n, c, batch):
    weight = g / (2.0 * batch)
    zero_acc, dy0 = _ring.zero_grads(x_l, y_l, axes)
    dy, acc = _backward_chunk(x_l, y_l, col_lse, dy0, zero_acc, row_lse, scale, bias, weight, c)

    def step(_, carry):
        y_c, col_c, dy_c = _ring.shift(carry[:3], axes, n)
        dy_c, acc = _backward_chunk(
            x_l, y_c, col_c, dy_c, carry[3], row_lse, scale, bias, weight, c
        )
        return y_c, col_c, dy_c, acc

    _, _, dy, (dx, ds, db) = jax.lax.fori_loop(1, n, step, (y_l, col_lse, dy, acc))
    dy = _ring.shift(dy, axes, n)
    # the positives: -2 * weight on the diagonal
    return _ring.with_positives((dx, dy, ds, db), x_l, y_l, scale, 2.0 * weight, axes)


def clip_loss_sharded(
    x: jax.Array,
    y: jax.Array,
    log_scale: jax.Array | float,
    *,
    mesh=None,
    axis_name: str | tuple[str, ...] = "data",
    bias: jax.Array | float | None = None,
    max_scale: float | None = 100.0,
    normalize: bool = True,
    chunk_size: int = 1024,
) -> jax.Array:
    """:func:`clip_loss` with global negatives, batch split over ``axis_name`` of ``mesh``.

    Args:
      x, y: [batch, dim] global embeddings (any sharding; they are laid out as rows over
        ``axis_name`` inside). The global batch must divide by the number of devices on the axes.
      log_scale, bias, max_scale, normalize: as in :func:`clip_loss` (hard diagonal targets only).
      mesh: the device mesh; default the one installed with ``jax.set_mesh``.
      axis_name: mesh axis, or tuple of axes, the batch is split over (the ring).
      chunk_size: width of the logits blocks each device works on; the per-device temporary is
        ``[batch / n, chunk]``.
    Returns:
      scalar float32, replicated.
    """
    mesh, axes, n, chunk = _ring.prepare(x, y, log_scale, bias, mesh, axis_name, chunk_size)
    core = _ring.ring_loss(
        mesh, axes, n, chunk, x.shape[0], _local_forward, _local_backward, num_saved=2
    )
    xn, yn = maybe_normalize(x, normalize), maybe_normalize(y, normalize)
    scale = clamped_scale(log_scale, max_scale)
    b = jnp.zeros((), jnp.float32) if bias is None else jnp.asarray(bias, jnp.float32)
    return core(xn, yn, scale, b)
