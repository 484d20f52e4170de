"""SigLIP over a device ring (``ppermute``) in memory linear in the local batch.

Same value and gradients as :func:`emojax.losses.siglip_loss` on the gathered batch. With labels
``-1`` off the diagonal and ``+1`` on it, ``softplus(-z_ii) = softplus(z_ii) - z_ii``, so

    loss = ( sum_ij softplus(z_ij) - sum_i z_ii ) / B,     z = s x_n y_n^T + b

every block is the same negatives-only sum and the positives are an O(b D) term. The forward ring
passes ``y`` chunks to the next device (the open_clip / big_vision ring, one direction) and sums
``[b_local, chunk]`` blocks; the backward (``custom_vjp``) runs the ring again, recomputes each
block (dz = sigmoid(z) / B) and sends ``dL/dy`` around with its chunk. Residuals are the inputs
only: no block is kept for the backward pass (open_clip's autograd keeps every block).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from emojax.losses import _ring
from emojax.losses._common import (
    clamped_scale,
    maybe_normalize,
)


def _forward_chunk(x_l, y_c, total, scale, bias, c):
    def body(j, total):
        y_sub = jax.lax.dynamic_slice_in_dim(y_c, j * c, c)
        return total + jnp.sum(jax.nn.softplus(scale * (x_l @ y_sub.T) + bias))

    return jax.lax.fori_loop(0, y_c.shape[0] // c, body, total)


def _backward_chunk(x_l, y_c, dy_c, acc, scale, bias, weight, c):
    def body(j, carry):
        dy_c, (dx, ds, db) = carry
        y_sub = jax.lax.dynamic_slice_in_dim(y_c, j * c, c)
        g = jax.nn.sigmoid(scale * (x_l @ y_sub.T) + bias) * weight  # [b, c]
        gy = g @ y_sub
        dy_sub = jax.lax.dynamic_slice_in_dim(dy_c, j * c, c) + scale * (g.T @ x_l)
        dy_c = jax.lax.dynamic_update_slice_in_dim(dy_c, dy_sub, j * c, 0)
        return dy_c, (dx + scale * gy, ds + jnp.sum(gy * x_l), db + jnp.sum(g))

    return jax.lax.fori_loop(0, y_c.shape[0] // c, body, (dy_c, acc))


def _local_forward(x_l, y_l, scale, bias, *, axes, n, c, batch):
    total = _ring.varying(jnp.zeros((), jnp.float32), axes)
    total = _forward_chunk(x_l, y_l, total, scale, bias, c)

    def step(_, carry):
        y_c = _ring.shift(carry[0], axes, n)
        return y_c, _forward_chunk(x_l, y_c, carry[1], scale, bias, c)

    _, total = jax.lax.fori_loop(1, n, step, (y_l, total))
    positives = scale * jnp.sum(x_l * y_l) + bias * x_l.shape[0]
    return (jax.lax.psum(total - positives, axes) / batch,)  # no saved vectors


def _local_backward(x_l, y_l, scale, bias, g, *, axes, n, c, batch):
    weight = g / batch
    acc, dy = _ring.zero_grads(x_l, y_l, axes)
    dy, acc = _backward_chunk(x_l, y_l, dy, acc, scale, bias, weight, c)

    def step(_, carry):
        y_c, dy_c = _ring.shift(carry[:2], axes, n)
        dy_c, acc = _backward_chunk(x_l, y_c, dy_c, carry[2], scale, bias, weight, c)
        return y_c, dy_c, acc

    _, dy, (dx, ds, db) = jax.lax.fori_loop(1, n, step, (y_l, dy, acc))
    dy = _ring.shift(dy, axes, n)
    # the positives' -z_ii term
    return _ring.with_positives((dx, dy, ds, db), x_l, y_l, scale, weight, axes)


def siglip_loss_ring(
    x: jax.Array,
    y: jax.Array,
    log_scale: jax.Array | float,
    bias: jax.Array | float,
    *,
    mesh=None,
    axis_name: str | tuple[str, ...] = "data",
    max_scale: float | None = None,
    normalize: bool = True,
    chunk_size: int = 1024,
) -> jax.Array:
    """:func:`siglip_loss` with the batch split over ``axis_name`` and ``y`` passed on a ring.

    Args:
      x, y: [batch, dim] global embeddings; the batch must divide by the devices on the axes.
      log_scale, bias, max_scale, normalize: as in :func:`siglip_loss`.
      mesh: the device mesh; default the one installed with ``jax.set_mesh``.
      axis_name: mesh axis, or tuple of axes, forming the ring.
      chunk_size: width of the logits blocks; the per-device temporary is ``[batch / n, chunk]``.
    Returns:
      scalar float32, replicated.
    """
    mesh, axes, n, chunk = _ring.prepare(x, y, log_scale, bias, mesh, axis_name, chunk_size)
    core = _ring.ring_loss(
        mesh, axes, n, chunk, x.shape[0], _local_forward, _local_backward, num_saved=0
    )
    xn, yn = maybe_normalize(x, normalize), maybe_normalize(y, normalize)
    scale = clamped_scale(log_scale, max_scale)
    return core(xn, yn, scale, jnp.asarray(bias, jnp.float32))
