"""Scaled dot-product attention with a choice of normalizer (softmax or a sparse entmax).

Layout (as ``jax.nn.dot_product_attention`` and flax.linen): q: [..., q_len, heads, head_dim],
k and v: [..., kv_len, heads, head_dim]; output [..., q_len, heads, head_dim]. The weights
[..., heads, q_len, kv_len] are normalised over kv_len.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

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
    if not isinstance(alpha, (int, float, np.ndarray, np.generic)):
        alpha = jnp.asarray(alpha)  # NumPy stays NumPy: entmax_bisect checks it on the host
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


def _logits_shape(q, k) -> tuple[int, ...]:
    """[..., heads, q_len, kv_len] for q [..., q_len, heads, d] and k [..., kv_len, heads, d]."""
    return q.shape[:-3] + (q.shape[-2], q.shape[-3], k.shape[-3])


def _mask_bias(mask: jax.Array, dtype) -> jax.Array:
    """Bool mask (True = attend) -> additive logits bias of the mask's own (small) shape.

    An add of a broadcast operand fuses into XLA:CPU's dot + softmax kernel; a select does not
    (a separate full pass over the logits)."""
    return jnp.where(mask, 0, jnp.finfo(dtype).min).astype(dtype)


def _logits(q, k, mask, scale: float):
    """(q * scale, k) heads-major and the masked logits [..., heads, q_len, kv_len] in the
    softmax's compute dtype (the mask as an additive bias, see :func:`_mask_bias`)."""
    qh = _heads_major(q) * jnp.asarray(scale, q.dtype)
    kh = _heads_major(k)
    x = jnp.einsum("...hqd,...hkd->...hqk", qh, kh)
    x = x.astype(_common.compute_dtype(x.dtype))
    if mask is not None:
        x = x + _mask_bias(mask, x.dtype)
    return qh, kh, x


def _keep_rows(out, mask):
    """Zero the output rows of queries with no key to attend to (cheaper than their weights)."""
    if mask is None:
        return out, None
    keep = jnp.any(mask, axis=-1, keepdims=True)
    return jnp.where(keep, out, 0), keep


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _softmax_attention(q, k, v, mask, scale: float):
    """Softmax attention (layout as :func:`attention`; mask bool broadcastable to the logits or
    None) with a hand-written backward: fewer passes over the [..., heads, q, kv] arrays than
    autodiff of the masked softmax, and dK, dV computed transposed (below).

    Without differentiation the softmax is left unnormalised and ``1 / sum`` is applied to the
    head_dim-sized output: one pass less over the logits (MiniLM's attention 11 -> 7 ms)."""
    qh, kh, x = _logits(q, k, mask, scale)
    e = jnp.exp(x - jnp.max(x, axis=-1, keepdims=True))
    inv_sum = (1 / jnp.sum(e, axis=-1, keepdims=True)).astype(v.dtype)  # sum >= 1
    out = jnp.einsum("...hqk,...hkd->...hqd", e.astype(v.dtype), _heads_major(v)) * inv_sum
    return jnp.swapaxes(_keep_rows(out, mask)[0], -3, -2)


def _softmax_attention_vjp_fwd(q, k, v, mask, scale):
    # normalised probabilities here: the deferred form measured ~2% slower with a backward
    qh, kh, x = _logits(q, k, mask, scale)
    p = jax.nn.softmax(x, axis=-1).astype(qh.dtype)
    vh = _heads_major(v)
    out, keep = _keep_rows(jnp.einsum("...hqk,...hkd->...hqd", p.astype(v.dtype), vh), mask)
    return jnp.swapaxes(out, -3, -2), (qh, kh, vh, p, out, keep)


def _softmax_attention_vjp_bwd(scale, res, g):
    qh, kh, vh, p, out, keep = res  # qh, kh, vh keep q's, k's and v's dtypes
    dout = _heads_major(g).astype(out.dtype)
    if keep is not None:
        dout = jnp.where(keep, dout, 0)
    cdt = _common.compute_dtype(p.dtype)
    # softmax backward with the row term sum(dP * P) rewritten as sum(dO * O): head_dim-sized
    delta = jnp.sum((dout * out).astype(cdt), axis=-1, keepdims=True)
    dp = jnp.einsum("...hqd,...hkd->...hqk", dout, vh).astype(cdt)
    ds = (p.astype(cdt) * (dp - delta)).astype(qh.dtype)
    dq = jnp.einsum("...hqk,...hkd->...hqd", ds, kh) * jnp.asarray(scale, ds.dtype)
    # "...hqk,...hqd->...hdk" (then one transpose, fused with the one back to token-major)
    # runs ~2x faster on XLA:CPU than contracting q into a [..., k, d] output directly
    dk = jnp.einsum("...hqk,...hqd->...hdk", ds, qh)  # qh carries the scale already
    dv = jnp.einsum("...hqk,...hqd->...hdk", p.astype(dout.dtype), dout)
    dq = jnp.swapaxes(dq, -3, -2).astype(qh.dtype)
    dk, dv = (jnp.moveaxis(t, -1, -3) for t in (dk, dv))  # [..., h, d, kv] -> [..., kv, h, d]
    return dq, dk.astype(kh.dtype), dv.astype(vh.dtype), None


_softmax_attention.defvjp(_softmax_attention_vjp_fwd, _softmax_attention_vjp_bwd)


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
    q,
    k,
    v,
    *,
    normalizer="softmax",
    alpha=None,
    mask=None,
    bias=None,
    scale=None,
    n_iter=50,
    fused_vjp=True,
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
    fused_vjp: softmax (no bias, number scale) runs as one custom_vjp with a hand-written backward
      (faster on CPU). JAX cannot forward-differentiate a custom_vjp: for jax.jvp / jacfwd through
      the attention pass False (plain autodiff; reverse mode and hessians work either way).
    """
    q, k, v = _check_qkv(q, k, v)
    if fused_vjp and normalizer == "softmax" and alpha is None and bias is None:
        scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
        if isinstance(scale, (int, float)):  # an array scale takes the generic path
            if mask is not None:
                mask = _common.check_mask(mask, _logits_shape(q, k), "attention")
            return _softmax_attention(q, k, v, mask, float(scale))
    weights = attention_weights(
        q, k, normalizer=normalizer, alpha=alpha, mask=mask, bias=bias, scale=scale, n_iter=n_iter
    )
    out = jnp.einsum("...hqk,...hkd->...hqd", weights.astype(v.dtype), _heads_major(v))
    return jnp.swapaxes(out, -3, -2)
