"""Fenchel-Young losses of the entmax family (Blondel et al. 2020; Peters et al. 2019).

loss(z, q) = <p* - q, z> + H_alpha(p*) - H_alpha(q), p* = alpha-entmax(z), H_alpha the Tsallis
entropy. It is >= 0, zero iff p* == q, and its gradient in z is p* - q. With one-hot targets
H_alpha(q) = 0 and this is exactly the PyTorch ``entmax`` package's loss; keeping H_alpha(q)
makes soft targets (distributions) well defined too. The alpha derivative (envelope theorem) is
dH_alpha/dalpha(p*) - dH_alpha/dalpha(q); the PyTorch package drops it, here it flows.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from emojax.ops import _common, _validate
from emojax.ops.entmax15 import entmax15_last
from emojax.ops.entmax_bisect import _check_alpha, entmax_last
from emojax.ops.sparsemax import sparsemax_last
from emojax.ops.tsallis import tsallis_entropy, tsallis_entropy_dalpha

REDUCTIONS = ("mean", "sum", "none")


def _is_zero(t) -> bool:
    return isinstance(t, jax.custom_derivatives.SymbolicZero)


@functools.partial(jax.custom_jvp, nondiff_argnums=(3,))
def _fy_last(z, q, alpha, mapping):
    """Per-row loss over the last axis. z, q: [..., d]; alpha: [..., 1] -> [...]."""
    p = mapping(z, alpha)
    eps = alpha - 1
    u = z - jnp.max(z, axis=-1, keepdims=True)  # the loss is shift invariant; this avoids overflow
    diff = p - q
    linear = jnp.sum(jnp.where(diff != 0, diff * u, 0), axis=-1)
    return linear + tsallis_entropy(p, eps) - tsallis_entropy(q, eps)


def _fy_jvp(mapping, primals, tangents):
    z, q, alpha = primals
    dz, _, dalpha = tangents  # targets are data: their tangent is ignored
    loss = _fy_last(z, q, alpha, mapping)
    p = mapping(z, alpha)
    out = jnp.zeros_like(loss)
    if not _is_zero(dz):
        out = out + jnp.sum(jnp.where(p != q, (p - q) * dz, 0), axis=-1)
    if not _is_zero(dalpha):
        eps = alpha - 1
        dh = tsallis_entropy_dalpha(p, eps) - tsallis_entropy_dalpha(q, eps)
        out = out + dh * jnp.squeeze(dalpha, -1)
    return loss, out


_fy_last.defjvp(_fy_jvp, symbolic_zeros=True)


def _targets_as_distribution(targets, logits_shape, axis, ignore_index, dtype, fn):
    """Int labels [...] (without axis) or distributions shaped like the logits -> (q, keep)."""
    raw_targets, targets = targets, jnp.asarray(targets)
    classes = logits_shape[axis]
    row_shape = tuple(n for i, n in enumerate(logits_shape) if i != axis)
    if jnp.issubdtype(targets.dtype, jnp.integer):
        if targets.shape != row_shape:
            raise ValueError(
                f"{fn}: integer labels must have the logits' shape without axis {axis}, i.e. "
                f"{row_shape}; got {targets.shape}."
            )
        ignored = (targets == ignore_index) | (targets < 0)
        # host labels raise; jax Arrays are not read (no host sync, see ops/_validate.py)
        _validate.check(
            raw_targets,
            lambda xp, t: ~xp.any((t != ignore_index) & (t >= classes)),
            f"{fn}: labels must lie in [0, {classes}) or equal ignore_index={ignore_index} "
            "(or be negative), got max {high}.",
            high=lambda xp, t: xp.max(t),
        )
        q = jax.nn.one_hot(jnp.where(ignored, 0, targets), classes, dtype=dtype, axis=axis)
        return q, ~ignored
    if not jnp.issubdtype(targets.dtype, jnp.floating):
        raise TypeError(
            f"{fn}: targets must be int labels or float distributions, got {targets.dtype}."
        )
    if targets.shape != tuple(logits_shape):
        raise ValueError(
            f"{fn}: target distributions must have the logits' shape {tuple(logits_shape)}, "
            f"got {targets.shape} (pass int labels of shape {row_shape} instead?)."
        )
    return targets.astype(dtype), jnp.ones(row_shape, bool)


def _reduce(loss, keep, weights, where, reduction, fn):
    if reduction not in REDUCTIONS:
        raise ValueError(f"{fn}: reduction must be one of {REDUCTIONS}, got {reduction!r}.")
    weight = keep.astype(loss.dtype)
    for name, extra in (("weights", weights), ("where", where)):
        if extra is None:
            continue
        extra = jnp.asarray(extra)
        try:
            ok = jnp.broadcast_shapes(extra.shape, loss.shape) == loss.shape
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(
                f"{fn}: {name} of shape {extra.shape} must broadcast to the per-example loss "
                f"shape {loss.shape}."
            )
        weight = weight * extra.astype(loss.dtype)
    loss = jnp.where(weight != 0, loss * weight, 0)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return jnp.sum(loss)
    total = jnp.sum(weight)
    return jnp.sum(loss) / jnp.where(total > 0, total, 1)


def _fy_loss(logits, targets, alpha, mapping, axis, weights, where, ignore_index, reduction, fn):
    logits = _common.check_float(logits, "logits", fn)
    axis = _common.normalize_axis(axis, logits.ndim, fn)
    dtype = _common.compute_dtype(logits.dtype)
    q, keep = _targets_as_distribution(targets, logits.shape, axis, ignore_index, dtype, fn)
    z = jnp.moveaxis(logits.astype(dtype), axis, -1)
    q = jnp.moveaxis(jax.lax.stop_gradient(q), axis, -1)
    if isinstance(alpha, float):
        alpha_last = jnp.full(z.shape[:-1] + (1,), alpha, dtype)
    else:
        alpha_last = _check_alpha(alpha, logits.shape, axis, dtype)
    loss = _fy_last(z, q, alpha_last, mapping)
    out = _reduce(loss, keep, weights, where, reduction, fn)
    return out.astype(logits.dtype)


def _loss_doc(fn):
    fn.__doc__ += """
    logits: [..., classes, ...] float; axis: the class axis.
    targets: int labels of the logits' shape without ``axis`` (negative or ``ignore_index`` =
      ignored), or float distributions of the logits' shape (soft / normalised multi-label).
    weights: optional per-example weights, broadcastable to the per-example loss shape.
    where: optional boolean per-example mask (False = excluded).
    reduction: "mean" (weighted mean over kept examples), "sum" or "none" (per example).
    The threshold and the loss are computed in float32 for bf16/f16 logits.
    """
    return fn


@_loss_doc
def sparsemax_loss(
    logits, targets, axis=-1, *, weights=None, where=None, ignore_index=-100, reduction="mean"
):
    """Sparsemax Fenchel-Young loss (= the sparsemax loss of Martins & Astudillo 2016)."""
    mapping = lambda z, a: sparsemax_last(z)  # noqa: E731
    return _fy_loss(
        logits,
        targets,
        2.0,
        mapping,
        axis,
        weights,
        where,
        ignore_index,
        reduction,
        "sparsemax_loss",
    )


@_loss_doc
def entmax15_loss(
    logits, targets, axis=-1, *, weights=None, where=None, ignore_index=-100, reduction="mean"
):
    """1.5-entmax Fenchel-Young loss."""
    mapping = lambda z, a: entmax15_last(z)  # noqa: E731
    return _fy_loss(
        logits,
        targets,
        1.5,
        mapping,
        axis,
        weights,
        where,
        ignore_index,
        reduction,
        "entmax15_loss",
    )


@_loss_doc
def entmax_bisect_loss(
    logits,
    targets,
    alpha=1.5,
    axis=-1,
    *,
    n_iter=50,
    weights=None,
    where=None,
    ignore_index=-100,
    reduction="mean",
):
    """alpha-entmax Fenchel-Young loss; differentiable w.r.t. logits AND alpha (>= 1, scalar or
    per row as in entmax_bisect). alpha == 1 is the softmax cross-entropy minus H(targets)."""
    fn = "entmax_bisect_loss"
    if isinstance(alpha, (int, float, np.integer, np.floating)) and not isinstance(alpha, bool):
        if not np.isfinite(alpha) or alpha < 1:
            raise ValueError(f"{fn}: alpha must be a finite number >= 1, got {alpha}.")
    mapping = functools.partial(_bisect_mapping, n_iter=int(n_iter))
    return _fy_loss(
        logits, targets, alpha, mapping, axis, weights, where, ignore_index, reduction, fn
    )


def _bisect_mapping(z, alpha, n_iter):
    return entmax_last(z, alpha, n_iter)
