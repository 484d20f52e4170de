"""Self-attention on a packed q/k/v projection, with a C++ kernel for softmax on XLA:CPU.

``qkv: [..., len, 3, heads, head_dim]`` (q, k, v stacked on axis -3, as one fused projection
matmul produces them) -> ``[..., len, heads, head_dim]``, the same values as
``attention(q, k, v, ...)``.

On the CPU backend outside a multi-device mesh, float32 softmax attention with no mask or a
key-padding mask (shape ``[..., 1, 1, len]``) runs as the FFI kernels of
``kernels/attention_cpu.cc``: one task per (batch, head) on XLA's thread pool, q/k/v read from
the packed array in place, the probabilities saved for the backward up to
:data:`SAVE_PROBS_BYTES` per call and recomputed from the log-sum-exp above it. Everything else
(GPU/TPU, inside ``jax.set_mesh`` of several devices, bf16, other masks, sparse normalizers,
``fused_vjp=False`` for jax.jvp, ``EMOJAX_CPU_KERNELS=0``, no compiler) takes
:func:`attention` on slices of ``qkv``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from emojax.ops import _common, kernels
from emojax.ops.attention import attention

_KERNEL = "attention_cpu"
_FORWARD, _BACKWARD = "EmojaxAttentionForward", "EmojaxAttentionBackward"


def _targets() -> dict[str, str] | None:
    return kernels.ffi_targets(_KERNEL, (_FORWARD, _BACKWARD))


# The forward saves the probabilities for the backward (4 bytes per logit, as XLA's path keeps
# them) up to this size per call; above it the backward recomputes them from q, k and lse.
SAVE_PROBS_BYTES = 256 * 2**20


def _probs_shape(qkv_shape, for_backward: bool) -> tuple[int, ...]:
    """[N, H, L, L rounded up to 16] if the forward saves the probabilities, else [0]."""
    n, length, _, heads, _ = qkv_shape
    shape = (n, heads, length, -(-length // 16) * 16)
    return shape if for_backward and 4 * math.prod(shape) <= SAVE_PROBS_BYTES else (0,)


def _reference_forward(qkv, qkv_bias, key_valid, scale: float, for_backward: bool):
    """(out, lse, probs) of the kernel's forward in jnp: its derivatives. A sample with no valid
    key gets a zero output and constant statistics, as in the kernel."""
    biased = qkv + qkv_bias
    q, k, v = biased[:, :, 0], biased[:, :, 1], biased[:, :, 2]
    logits = jnp.einsum("nqhd,nkhd->nhqk", q, k) * scale
    valid = key_valid[:, None, None, :]
    masked = jnp.where(valid, logits, -jnp.inf)
    any_valid = jnp.any(valid, axis=-1, keepdims=True)
    lse = jax.nn.logsumexp(jnp.where(any_valid, masked, 0.0), axis=-1)
    probs = jnp.where(valid, jnp.exp(masked - lse[..., None]), 0.0)
    out = jnp.einsum("nhqk,nkhd->nqhd", probs, v)
    saved_shape = _probs_shape(qkv.shape, for_backward)
    if saved_shape == (0,):
        return out, lse, jnp.zeros((0,), jnp.float32)
    pad = saved_shape[-1] - probs.shape[-1]
    return out, lse, jnp.pad(probs, ((0, 0), (0, 0), (0, 0), (0, pad)))


def _reference_backward(qkv, qkv_bias, key_valid, out, lse, probs, d_out, scale: float):
    """d_qkv from qkv itself (out, lse and probs are functions of it)."""
    _, vjp = jax.vjp(lambda t: _reference_forward(t, qkv_bias, key_valid, scale, False)[0], qkv)
    return vjp(d_out)[0]


def _kernel_forward(qkv, qkv_bias, key_valid, scale: float, for_backward: bool):
    """qkv f32[N, L, 3, H, D], qkv_bias f32[3, H, D], key_valid bool[N, L] -> out [N, L, H, D],
    lse [N, H, L] and the probabilities (:func:`_probs_shape`)."""
    n, length, _, heads, dim = qkv.shape
    call = kernels.f32_call(
        _targets()[_FORWARD],
        (n, length, heads, dim),
        (n, heads, length),
        _probs_shape(qkv.shape, for_backward),
    )
    forward = kernels.with_reference_jvp(
        lambda *args: call(*args, scale=np.float32(scale)),
        functools.partial(_reference_forward, scale=scale, for_backward=for_backward),
    )
    return forward(qkv, qkv_bias, key_valid)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _kernel_attention(qkv, qkv_bias, key_valid, scale: float) -> jax.Array:
    return _kernel_forward(qkv, qkv_bias, key_valid, scale, for_backward=False)[0]


def _kernel_attention_fwd(qkv, qkv_bias, key_valid, scale):
    out, lse, probs = _kernel_forward(qkv, qkv_bias, key_valid, scale, for_backward=True)
    return out, (qkv, qkv_bias, key_valid, out, lse, probs)


def _kernel_attention_bwd(scale, res, d_out):
    qkv, qkv_bias, key_valid, out, lse, probs = res
    call = kernels.f32_call(_targets()[_BACKWARD], qkv.shape)
    backward = kernels.with_reference_jvp(
        lambda *args: call(*args, scale=np.float32(scale)),
        functools.partial(_reference_backward, scale=scale),
    )
    d_qkv = backward(qkv, qkv_bias, key_valid, out, lse, probs, d_out.astype(jnp.float32))
    return d_qkv, jnp.sum(d_qkv, axis=(0, 1)), None


_kernel_attention.defvjp(_kernel_attention_fwd, _kernel_attention_bwd)


def _key_padding(mask, batch_shape: tuple[int, ...], length: int) -> jax.Array | None:
    """A bool mask broadcastable to [..., heads, len, len] as key_valid [prod(batch), len], or
    None when it is not a key-padding mask (it varies over heads or queries)."""
    if mask.ndim < 3 or mask.shape[-3] != 1 or mask.shape[-2] != 1:
        return None
    keys = mask.reshape(mask.shape[:-3] + mask.shape[-1:])
    keys = jnp.broadcast_to(keys, batch_shape + (length,))
    return keys.reshape(-1, length)


def kernel_available(*arrays) -> bool:
    """True when the CPU kernel would run here on ``arrays``: default backend CPU, no mesh of
    several devices set and ``arrays`` not sharded over several devices (the XLA path is
    partitioned, the kernel would not be; :func:`emojax.ops.kernels.cpu_unsharded`), and the
    kernel built."""
    return kernels.cpu_unsharded(*arrays) and _targets() is not None


def self_attention(
    qkv,
    *,
    normalizer="softmax",
    alpha=None,
    mask=None,
    scale=None,
    n_iter=50,
    fused_vjp=True,
    qkv_bias=None,
) -> jax.Array:
    """Attention of ``q, k, v = qkv[..., 0, :, :], qkv[..., 1, :, :], qkv[..., 2, :, :]``.

    qkv: [..., len, 3, heads, head_dim] -> [..., len, heads, head_dim]. ``qkv_bias``
    (broadcastable to [3, heads, head_dim], optional) is added to ``qkv`` first: the projection's
    bias, which the CPU kernel adds as it reads q, k and v (one pass less over the projection).
    The other arguments are those of :func:`emojax.ops.attention` (mask broadcastable to
    [..., heads, len, len]).
    """
    qkv = jnp.asarray(qkv)
    if qkv.ndim < 4 or qkv.shape[-3] != 3:
        raise ValueError(
            f"self_attention: qkv must be [..., len, 3, heads, head_dim], got {qkv.shape}."
        )
    batch_shape, length = qkv.shape[:-4], qkv.shape[-4]
    scale = 1.0 / math.sqrt(qkv.shape[-1]) if scale is None else scale
    use_kernel = (
        fused_vjp
        and normalizer == "softmax"
        and alpha is None
        and qkv.dtype == jnp.float32
        and isinstance(scale, (int, float))
        and kernel_available(qkv, qkv_bias, mask)
    )
    key_valid = None
    if use_kernel:
        if mask is not None:
            logits_shape = batch_shape + (qkv.shape[-2], length, length)
            mask = _common.check_mask(mask, logits_shape, "self_attention")
        if mask is None:
            key_valid = jnp.ones((math.prod(batch_shape), length), bool)
        else:
            key_valid = _key_padding(mask, batch_shape, length)
    if key_valid is None:
        if qkv_bias is not None:
            qkv = qkv + jnp.asarray(qkv_bias, qkv.dtype)
        q, k, v = (qkv[..., i, :, :] for i in range(3))
        return attention(
            q, k, v, normalizer=normalizer, alpha=alpha, mask=mask, scale=scale,
            n_iter=n_iter, fused_vjp=fused_vjp,
        )  # fmt: skip
    flat = qkv.reshape((-1,) + qkv.shape[-4:])
    bias = jnp.zeros(qkv.shape[-3:], jnp.float32) if qkv_bias is None else qkv_bias
    bias = jnp.broadcast_to(jnp.asarray(bias, jnp.float32), qkv.shape[-3:])
    out = _kernel_attention(flat, bias, key_valid, float(scale))
    return out.reshape(batch_shape + out.shape[1:])
