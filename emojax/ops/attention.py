"""Scaled dot-product attention with a choice of normalizer (softmax or a sparse entmax).

Layout (as ``jax.nn.dot_product_attention`` and flax.linen): q: [..., q_len, heads, head_dim],
k and v: [..., kv_len, heads, head_dim]; output [..., q_len, heads, head_dim]. The weights
[..., heads, q_len, kv_len] are normalised over kv_len.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from emojax.ops import _common
from emojax.ops.entmax15 import entmax15
from emojax.ops.entmax_bisect import entmax_bisect
from emojax.ops.softmax import softmax
from emojax.ops.sparsemax import sparsemax

NORMALIZERS = ("softmax", "sparsemax", "entmax15", "entmax_bisect")


def _check_qkv(q, k, v):
    fn = "attention"
    q = _common.check_float(q, "q", fn)
    k = _common.check_float(k, "k", fn)
    v = _common.check_float(v, "v", fn)
    if q.ndim < 3 or k.ndim != q.ndim or v.ndim != q.ndim:
        raise ValueError(
            f"{fn}: q, k, v must all be [..., len, heads, head_dim] with the same rank, got "
            f"q {q.shape}, k {k.shape}, v {v.shape}."
        )
    if k.shape[:-1] != v.shape[:-1]:
        raise ValueError(f"{fn}: k {k.shape} and v {v.shape} must agree except in head_dim.")
    if q.shape[-1] != k.shape[-1] or q.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"{fn}: q {q.shape} and k {k.shape} must have the same heads and head_dim "
            "(layout [..., len, heads, head_dim])."
        )
    return q, k, v


def _alpha_for_logits(alpha, heads: int):
    """alpha of shape [heads] means one alpha per head; anything else broadcasts against
    the logits [..., heads, q_len, kv_len] with size 1 on kv_len."""
    alpha = jnp.asarray(alpha) if not isinstance(alpha, (int, float)) else alpha
    if not isinstance(alpha, (int, float)) and alpha.ndim == 1 and alpha.shape[0] == heads:
        return alpha.reshape(heads, 1, 1)
    return alpha


def _heads_major(t: jax.Array) -> jax.Array:
    """[..., len, heads, d] -> [..., heads, len, d]."""
    return jnp.swapaxes(t, -3, -2)


def _fast_softmax(logits: jax.Array, mask: jax.Array | None) -> jax.Array:
    """Masked softmax over kv_len as ``ops.softmax`` (fully masked rows -> zeros), written as a
    large negative bias + ``jax.nn.softmax`` so that XLA fuses it and its backward is the short
    custom-JVP one. logits: [..., heads, q_len, kv_len] (finite: no -inf bias)."""
    x = logits.astype(_common.compute_dtype(logits.dtype))
    if mask is None:
        return jax.nn.softmax(x, axis=-1).astype(logits.dtype)
    p = jax.nn.softmax(jnp.where(mask, x, jnp.finfo(x.dtype).min), axis=-1)
    any_key = jnp.any(mask, axis=-1, keepdims=True)  # [..., q_len or 1, 1], mask-sized only
    return jnp.where(any_key, p, 0).astype(logits.dtype)


def attention_weights(
    q, k, *, normalizer="softmax", alpha=None, mask=None, bias=None, scale=None, n_iter=50
):
    """Attention probabilities [..., heads, q_len, kv_len]; arguments as in :func:`attention`."""
    fn = "attention"
    if normalizer not in NORMALIZERS:
        raise ValueError(f"{fn}: normalizer must be one of {NORMALIZERS}, got {normalizer!r}.")
    if alpha is not None and normalizer != "entmax_bisect":
        raise ValueError(
            f"{fn}: alpha is only used with normalizer='entmax_bisect', got {normalizer!r}."
        )
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    # heads-major operands: XLA:CPU runs "...hqd,...hkd" as plain batched matmuls, while
    # "...qhd,...khd" adds strided copies around every head's dot (about 2x slower at BERT sizes)
    logits = jnp.einsum("...hqd,...hkd->...hqk", _heads_major(q), _heads_major(k))
    logits = logits * jnp.asarray(scale, q.dtype)
    if bias is not None:
        logits = logits + bias
    if mask is not None:
        mask = _common.check_mask(mask, logits.shape, fn)
    if normalizer == "softmax" and bias is None:
        return _fast_softmax(logits, mask)
    if normalizer == "softmax":
        return softmax(logits, mask=mask)
    if normalizer == "sparsemax":
        return sparsemax(logits, mask=mask)
    if normalizer == "entmax15":
        return entmax15(logits, mask=mask)
    alpha = 1.5 if alpha is None else _alpha_for_logits(alpha, q.shape[-2])
    return entmax_bisect(logits, alpha=alpha, n_iter=n_iter, mask=mask)


def attention(
    q, k, v, *, normalizer="softmax", alpha=None, mask=None, bias=None, scale=None, n_iter=50
) -> jax.Array:
    """Scaled dot-product attention whose normalizer is softmax or a sparse entmax.

    q: [..., q_len, heads, head_dim]; k, v: [..., kv_len, heads, head_dim] -> [..., q_len, heads,
    head_dim]. normalizer: "softmax" | "sparsemax" | "entmax15" | "entmax_bisect".
    alpha: entmax_bisect only (default 1.5); a scalar, shape [heads] (one learnable alpha per head)
      or any array broadcastable to [..., heads, q_len, 1].
    mask: boolean, broadcastable to [..., heads, q_len, kv_len]; True = attend. A query row with
      nothing to attend to gets all-zero weights and a zero output.
    bias: optional additive logits bias broadcastable to [..., heads, q_len, kv_len].
    scale: logits scale, default 1/sqrt(head_dim). n_iter: entmax_bisect iteration cap.
    Thresholds are computed in float32 for bf16/f16 inputs.
    """
    q, k, v = _check_qkv(q, k, v)
    weights = attention_weights(
        q, k, normalizer=normalizer, alpha=alpha, mask=mask, bias=bias, scale=scale, n_iter=n_iter
    )
    out = jnp.einsum("...hqk,...hkd->...hqd", weights.astype(v.dtype), _heads_major(v))
    return jnp.swapaxes(out, -3, -2)
