"""Shared helpers for the losses: validation, normalisation, the clamped logit scale.

Validation policy (the same for every loss in this package):

* Shapes are checked statically (they are known under ``jax.jit`` too), so a mismatched batch, a
  wrong embedding width or a wrongly shaped label array raises ``ValueError`` at trace time.
* Finiteness is data: it can only be checked on concrete arrays. Each loss checks its float inputs
  when it is called eagerly (arguments are not tracers) and raises ``ValueError`` naming the input.
  Under ``jit`` no check runs (a data-dependent raise is impossible there); non-finite inputs then
  give a non-finite loss, which the trainer's NaN guard sees. :func:`check_finite` is the public
  eager helper for data pipelines.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _is_concrete(a) -> bool:
    return not isinstance(a, jax.core.Tracer)


def check_finite(**arrays) -> None:
    """Raise ``ValueError`` if any named array holds NaN or Inf (eager only; tracers are skipped).

    Example: ``check_finite(image_emb=x, text_emb=y)``.
    """
    for name, a in arrays.items():
        if a is None or not _is_concrete(a):
            continue
        a = np.asarray(a)
        if not np.issubdtype(a.dtype, np.inexact):
            continue
        if not np.isfinite(a).all():
            bad = int(np.size(a) - np.isfinite(a).sum())
            raise ValueError(
                f"{name} has {bad} non-finite value(s) (NaN/Inf) in an array of shape {a.shape}; "
                "check the encoder outputs (learning rate, fp16 overflow) before the loss."
            )


def check_rank(name: str, a, ndim: int, layout: str) -> None:
    """Raise ``ValueError`` unless ``a`` has ``ndim`` dims (``layout`` e.g. "[batch, dim]")."""
    if jnp.ndim(a) != ndim:
        raise ValueError(f"{name} must have shape {layout}, got shape {jnp.shape(a)}")


def check_pair(x, y, x_name: str = "x", y_name: str = "y") -> None:
    """Two embedding batches ``[batch, dim]`` with the same batch and width."""
    check_rank(x_name, x, 2, "[batch, dim]")
    check_rank(y_name, y, 2, "[batch, dim]")
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"batch size mismatch: {x_name} has {x.shape[0]} rows, {y_name} has {y.shape[0]}; "
            "the pairs must be aligned row by row"
        )
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"embedding width mismatch: {x_name} is {x.shape[1]}-d, {y_name} is {y.shape[1]}-d; "
            "project both into the same space first"
        )


def check_scalar(name: str, a) -> None:
    if a is not None and jnp.ndim(a) != 0:
        raise ValueError(f"{name} must be a scalar, got shape {jnp.shape(a)}")


def l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    """``x / max(||x||, eps)`` along the last axis in float32. x: [..., dim]."""
    x = x.astype(jnp.float32)
    norm = jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True))
    return x / jnp.maximum(norm, eps)


def maybe_normalize(x: jax.Array, normalize: bool) -> jax.Array:
    """``x: [..., dim]`` L2-normalised when ``normalize``, else as is; float32 either way."""
    return l2_normalize(x) if normalize else x.astype(jnp.float32)


def clamped_scale(log_scale, max_scale: float | None) -> jax.Array:
    """``min(exp(log_scale), max_scale)`` in float32 (no clamp when ``max_scale`` is None)."""
    scale = jnp.exp(jnp.asarray(log_scale, jnp.float32))
    if max_scale is not None:
        scale = jnp.minimum(scale, jnp.float32(max_scale))
    return scale
