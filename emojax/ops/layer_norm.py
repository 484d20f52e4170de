"""LayerNorm over the last axis, with a C++ kernel for float32 on XLA:CPU.

``layer_norm(x, scale, bias, eps=...)``: ``x: [..., E]``, ``scale, bias: [E]`` -> ``[..., E]``,
``(x - mean) / sqrt(var + eps) * scale + bias`` with the two-pass variance (the mean of squared
deviations, as torch computes it), statistics in float32 for bf16/f16 inputs, output in x's
dtype.

On the CPU backend outside a multi-device mesh, float32 inputs with ``fused_vjp=True`` run as the
FFI kernels of ``kernels/layer_norm_cpu.cc`` (one pass per block of rows, forward and backward;
XLA:CPU makes four passes forward and seven backward). Elsewhere, and with ``fused_vjp=False``
(jax.jvp works), it is plain jnp.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from emojax.ops import kernels

_KERNEL = "layer_norm_cpu"
_FORWARD, _BACKWARD = "EmojaxLayerNormForward", "EmojaxLayerNormBackward"


def _targets() -> dict[str, str] | None:
    return kernels.ffi_targets(_KERNEL, (_FORWARD, _BACKWARD))


def kernel_available(*arrays) -> bool:
    """True when the CPU kernel would run here on ``arrays`` (see
    :func:`emojax.ops.kernels.cpu_unsharded`)."""
    return kernels.cpu_unsharded(*arrays) and _targets() is not None


def _normalize(x, scale, bias, eps: float):
    """x [..., E] (float32 or wider) -> (y, mean [...], 1/std [...]), two-pass variance."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    rstd = jax.lax.rsqrt(jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True) + eps)
    return (x - mean) * rstd * scale + bias, mean[..., 0], rstd[..., 0]


def _reference_forward(x, scale, bias, eps: float):
    """(y, mean, 1/std) in jnp: the derivatives of the kernel's forward."""
    return _normalize(x, scale, bias, eps)


def _reference_backward(x, scale, mean, rstd, dy, eps: float):
    """(dx, dscale, dbias) from x itself (mean and rstd are functions of x)."""
    _, vjp = jax.vjp(lambda x, s: _xla_layer_norm(x, s, jnp.zeros_like(s), eps), x, scale)
    return (*vjp(dy), jnp.sum(dy, axis=0))


def _kernel_forward(x, scale, bias, eps: float):
    """x f32[R, E] -> (y [R, E], mean [R], 1/std [R])."""
    rows = x.shape[0]
    call = kernels.f32_call(_targets()[_FORWARD], x.shape, (rows,), (rows,))
    forward = kernels.with_reference_jvp(
        lambda x, s, b: call(x, s, b, eps=np.float32(eps)),
        functools.partial(_reference_forward, eps=eps),
    )
    return forward(x, scale, bias)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _kernel_layer_norm(x, scale, bias, eps: float):
    """x f32[R, E], scale and bias f32[E] -> f32[R, E]."""
    return _kernel_forward(x, scale, bias, eps)[0]


def _kernel_layer_norm_fwd(x, scale, bias, eps):
    y, mean, rstd = _kernel_forward(x, scale, bias, eps)
    return y, (x, scale, mean, rstd)


def _kernel_layer_norm_bwd(eps, res, dy):
    x, scale, mean, rstd = res
    e = x.shape[1]
    call = kernels.f32_call(_targets()[_BACKWARD], x.shape, (e,), (e,))
    backward = kernels.with_reference_jvp(call, functools.partial(_reference_backward, eps=eps))
    return backward(x, scale, mean, rstd, dy.astype(jnp.float32))


_kernel_layer_norm.defvjp(_kernel_layer_norm_fwd, _kernel_layer_norm_bwd)


def _xla_layer_norm(x, scale, bias, eps: float):
    y = _normalize(x.astype(jnp.promote_types(x.dtype, jnp.float32)), scale, bias, eps)[0]
    return y.astype(x.dtype)


def layer_norm(x, scale, bias, *, eps: float = 1e-5, fused_vjp: bool = True) -> jax.Array:
    """LayerNorm of ``x: [..., E]`` with ``scale, bias: [E]`` (see the module docstring)."""
    x, scale, bias = jnp.asarray(x), jnp.asarray(scale), jnp.asarray(bias)
    if x.ndim < 1 or scale.shape != x.shape[-1:] or bias.shape != x.shape[-1:]:
        raise ValueError(
            f"layer_norm: x [..., E] needs scale and bias of shape [E]; got x {x.shape}, "
            f"scale {scale.shape}, bias {bias.shape}."
        )
    use_kernel = (
        fused_vjp
        and x.size > 0
        and x.dtype == jnp.float32
        and scale.dtype == jnp.float32
        and bias.dtype == jnp.float32
        and kernel_available(x, scale, bias)
    )
    if not use_kernel:
        return _xla_layer_norm(x, scale, bias, eps)
    y = _kernel_layer_norm(x.reshape(-1, x.shape[-1]), scale, bias, float(eps))
    return y.reshape(x.shape)
