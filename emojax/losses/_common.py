"""Shared helpers for the losses: validation, normalisation, the clamped logit scale.

Validation policy (the same for every loss in this package, and for emojax.ops / emojax.nn; the
design is written down in ``emojax/ops/_validate.py``):

* Shapes are checked statically (they are known under ``jax.jit`` too), so a mismatched batch, a
  wrong embedding width or a wrongly shaped label array raises ``ValueError`` at trace time.
* Finiteness (and a temperature > 0 ...) is data. No loss reads a device array on the host: that
  would be a device->host transfer that stalls an eager loop (a host sync), and is impossible
  under ``jit``. So each loss checks its inputs only where they are Python numbers or NumPy
  arrays (already on the host) and raises ``ValueError`` naming the input. jax Arrays, eager or
  traced, are not checked: non-finite inputs give a non-finite loss, which the trainer's NaN
  guard sees. To check device data, trace under ``emojax.ops.device_checks()`` and wrap with
  ``jax.experimental.checkify.checkify``: the same messages come back as a checkify ``Error``.
  :func:`check_finite` is the public helper for data pipelines (NumPy in, ``ValueError`` out).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from emojax.ops import _validate
from emojax.ops.normalize import l2_normalize

__all__ = [
    "check_finite",
    "check_pair",
    "check_positive",
    "check_rank",
    "check_scalar",
    "clamped_scale",
    "l2_normalize",
    "maybe_normalize",
]


def check_finite(**arrays) -> None:
    """Raise ``ValueError`` if a named host array (NumPy / Python) holds NaN or Inf.

    jax Arrays are not read (no host sync); under ``emojax.ops.device_checks()`` traced ones get a
    ``checkify.debug_check`` instead. Example: ``check_finite(image_emb=x, text_emb=y)``.
    """
    for name, a in arrays.items():
        if a is None or not jnp.issubdtype(_dtype(a), jnp.inexact):
            continue
        name = name.replace("{", "{{").replace("}", "}}")  # the message is a format string
        _validate.check(
            a,
            lambda xp, v: xp.all(xp.isfinite(v)),
            f"{name} has {{bad}} non-finite value(s) (NaN/Inf) in an array of shape "
            f"{np.shape(a)}; check the encoder outputs (learning rate, fp16 overflow) before the "
            "loss.",
            bad=lambda xp, v: xp.sum(~xp.isfinite(v)),
        )


def _dtype(a):
    return a.dtype if hasattr(a, "dtype") else np.asarray(a).dtype


def check_positive(name: str, value, *, allow_zero: bool = False) -> None:
    """A hyper-parameter that must be > 0 (>= 0 with ``allow_zero``): checked when it is a host
    number; a jax Array is not read (no host sync)."""
    if allow_zero:
        ok, bound = (lambda xp, v: xp.all(v >= 0)), ">= 0"
    else:
        ok, bound = (lambda xp, v: xp.all(v > 0)), "> 0"
    _validate.check(value, ok, f"{name} must be {bound}, got {{value}}", value=lambda xp, v: v)


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


def maybe_normalize(x: jax.Array, normalize: bool) -> jax.Array:
    """``x: [..., dim]`` L2-normalised when ``normalize``, else as is; float32 either way."""
    x = x.astype(jnp.float32)
    return l2_normalize(x) if normalize else x


def clamped_scale(log_scale, max_scale: float | None) -> jax.Array:
    """``min(exp(log_scale), max_scale)`` in float32 (no clamp when ``max_scale`` is None)."""
    scale = jnp.exp(jnp.asarray(log_scale, jnp.float32))
    if max_scale is not None:
        scale = jnp.minimum(scale, jnp.float32(max_scale))
    return scale
