"""A dense layer ``x @ kernel + bias`` with a C++ GEMM for float32 on XLA:CPU.

``dense(x, kernel, bias)``: ``x: [..., in]``, ``kernel: [in, *out]``, ``bias: [*out]`` or None
-> ``[..., *out]``, computed as ONE matmul over the flattened leading axes (a kernel with several
output axes, e.g. stacked q/k/v ``[in, 3, embed]``, keeps them: its sharded axis stays local).

On the CPU backend outside a multi-device mesh, float32 inputs with ``fused_vjp=True`` run as the
FFI kernels of ``kernels/dense_cpu.cc``: a packed GEMM (``kernels/gemm.h``) that matches MKL on
transformer shapes where XLA:CPU's dots run 5-20% slower, reads the transposed operands of the
backward through its packing (no transposed copies) and sums the bias gradient while packing the
output gradient. Elsewhere (GPU/TPU, inside a sharded mesh, bf16, ``fused_vjp=False`` for
jax.jvp) it is one ``lax.dot_general`` plus the bias, which GSPMD partitions as usual.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from emojax.ops import kernels

_KERNEL = "dense_cpu"
_FORWARD = "EmojaxDenseForward"
_INPUT_GRADIENT, _PARAM_GRADIENT = "EmojaxDenseInputGradient", "EmojaxDenseParamGradient"


def _targets() -> dict[str, str] | None:
    return kernels.ffi_targets(_KERNEL, (_FORWARD, _INPUT_GRADIENT, _PARAM_GRADIENT))


def kernel_available(*arrays) -> bool:
    """True when the CPU kernel would run here on ``arrays`` (see
    :func:`emojax.ops.kernels.cpu_unsharded`)."""
    return kernels.cpu_unsharded(*arrays) and _targets() is not None


def _reference_forward(x, kernel, bias):
    """The kernel's forward in jnp (bias f32[0]: none), for its derivatives."""
    return _xla_dense(x, kernel, bias if bias.shape[0] else None)


def _reference_input_gradient(kernel, dy):
    return dy @ kernel.T


def _reference_param_gradient(x, dy):
    return x.T @ dy, jnp.sum(dy, axis=0)


def _kernel_forward(x, kernel, bias):
    """x f32[M, K], kernel f32[K, N], bias f32[N] or f32[0] -> f32[M, N]."""
    call = kernels.f32_call(_targets()[_FORWARD], (x.shape[0], kernel.shape[1]))
    return kernels.with_reference_jvp(call, _reference_forward)(x, kernel, bias)


@jax.custom_vjp
def _kernel_dense(x, kernel, bias):
    return _kernel_forward(x, kernel, bias)


def _kernel_dense_fwd(x, kernel, bias):
    return _kernel_forward(x, kernel, bias), (x, kernel, bias)


def _kernel_dense_bwd(res, dy):
    """Two calls (dx; dW and db), so that XLA drops the one whose gradient is unused."""
    x, kernel, bias = res
    dy = dy.astype(jnp.float32)
    targets = _targets()
    input_call = kernels.f32_call(targets[_INPUT_GRADIENT], x.shape)
    dx = kernels.with_reference_jvp(input_call, _reference_input_gradient)(kernel, dy)
    param_call = kernels.f32_call(targets[_PARAM_GRADIENT], kernel.shape, (kernel.shape[1],))
    dkernel, dbias = kernels.with_reference_jvp(param_call, _reference_param_gradient)(x, dy)
    return dx, dkernel, dbias[: bias.shape[0]]  # no bias: an empty gradient


_kernel_dense.defvjp(_kernel_dense_fwd, _kernel_dense_bwd)


def _xla_dense(x, kernel, bias):
    """x [M, K], kernel [K, *out] -> [M, *out]."""
    y = jax.lax.dot_general(x, kernel, (((1,), (0,)), ((), ())))
    return y if bias is None else y + bias


def dense(x, kernel, bias=None, *, fused_vjp: bool = True) -> jax.Array:
    """``x: [..., in] @ kernel: [in, *out] (+ bias: [*out])`` -> ``[..., *out]`` (see the module
    docstring). The result has the promoted dtype of the operands."""
    x, kernel = jnp.asarray(x), jnp.asarray(kernel)
    bias = None if bias is None else jnp.asarray(bias)
    if (
        x.ndim < 1
        or kernel.ndim < 2
        or x.shape[-1] != kernel.shape[0]
        or (bias is not None and bias.shape != kernel.shape[1:])
    ):
        raise ValueError(
            f"dense: x [..., in] needs kernel [in, *out] and bias [*out] or None; got x {x.shape}, "
            f"kernel {kernel.shape}, bias {None if bias is None else bias.shape}."
        )
    flat = x.reshape(-1, x.shape[-1])
    use_kernel = (
        fused_vjp
        and flat.size > 0
        and kernel.size > 0
        and x.dtype == jnp.float32
        and kernel.dtype == jnp.float32
        and (bias is None or bias.dtype == jnp.float32)
        and kernel_available(x, kernel, bias)
    )
    if use_kernel:
        out = math.prod(kernel.shape[1:])
        b = jnp.zeros((0,), jnp.float32) if bias is None else bias.reshape(out)
        y = _kernel_dense(flat, kernel.reshape(kernel.shape[0], out), b)
    else:
        y = _xla_dense(flat, kernel, bias)
    return y.reshape(x.shape[:-1] + kernel.shape[1:])
