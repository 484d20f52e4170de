"""emojax.ops.layer_norm and its XLA:CPU FFI kernel (emojax/ops/kernels/layer_norm_cpu.cc):
parity with torch's layer_norm and flax's nn.LayerNorm, the XLA path, determinism, NaN, the
fallbacks, bad input; the Flax LayerNorm module keeps nn.LayerNorm's params."""

import importlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from emojax import ops
from emojax.nn.transformer import LayerNorm

layer_norm_module = importlib.import_module("emojax.ops.layer_norm")

needs_kernel = pytest.mark.skipif(
    not layer_norm_module.kernel_available(), reason="no C++ compiler here (or not a CPU backend)"
)


def arrays(shape, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    scale = rng.standard_normal(shape[-1:]).astype(np.float32)
    bias = rng.standard_normal(shape[-1:]).astype(np.float32)
    cot = rng.standard_normal(shape).astype(np.float32)
    return x, scale, bias, cot


def ours(x, scale, bias, cot, eps, **kw):
    fn = jax.jit(lambda x, s, b: ops.layer_norm(x, s, b, eps=eps, **kw))
    y, vjp = jax.vjp(fn, x, scale, bias)
    return (np.asarray(y), *(np.asarray(g) for g in vjp(jnp.asarray(cot))))


@needs_kernel
@pytest.mark.parametrize("shape", [(2048, 384), (37, 33), (3, 5, 100), (1, 8)], ids=str)
@pytest.mark.parametrize("eps", [1e-12, 1e-5])
def test_kernel_matches_torch_layer_norm(shape, eps):
    x, scale, bias, cot = arrays(shape)
    got = ours(x, scale, bias, cot, eps)
    tensors = [torch.tensor(a, requires_grad=True) for a in (x, scale, bias)]
    y = torch.nn.functional.layer_norm(tensors[0], shape[-1:], tensors[1], tensors[2], eps=eps)
    y.backward(torch.tensor(cot))
    expected = [y.detach().numpy()] + [t.grad.numpy() for t in tensors]
    for name, a, b in zip(("y", "dx", "dscale", "dbias"), got, expected, strict=True):
        tol = 1e-5 * max(1.0, float(np.abs(b).max()))
        np.testing.assert_allclose(a, b, atol=tol, rtol=1e-5, err_msg=name)


@needs_kernel
def test_kernel_is_used_and_agrees_with_the_xla_path(monkeypatch):
    x, scale, bias, cot = arrays((70, 48))
    fn = lambda x: ops.layer_norm(x, scale, bias, eps=1e-6)  # noqa: E731
    assert "emojax_layer_norm_cpu" in jax.jit(jax.grad(lambda x: fn(x).sum())).lower(x).as_text()
    kernel = ours(x, scale, bias, cot, 1e-6)
    monkeypatch.setattr(layer_norm_module, "kernel_available", lambda *arrays: False)
    assert "emojax_layer_norm_cpu" not in jax.jit(fn).lower(x).as_text()
    xla = ours(x, scale, bias, cot, 1e-6)
    for a, b in zip(kernel, xla, strict=True):
        np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-5)


@needs_kernel
def test_parameter_gradients_are_deterministic():
    x, scale, bias, cot = arrays((1000, 96), seed=3)
    first, second = ours(x, scale, bias, cot, 1e-5), ours(x, scale, bias, cot, 1e-5)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


@needs_kernel
def test_nan_stays_in_its_row():
    x, scale, bias, _ = arrays((4, 16))
    x[2, 5] = np.nan
    y = np.asarray(ops.layer_norm(x, scale, bias))
    assert np.isnan(y[2]).all() and np.isfinite(np.delete(y, 2, axis=0)).all()


def test_flax_module_keeps_nn_layer_norm_params_and_values():
    x = jnp.asarray(arrays((2, 9, 40))[0])
    ours_module, theirs = LayerNorm(epsilon=1e-6), nn.LayerNorm(epsilon=1e-6)
    variables = ours_module.init(jax.random.key(0), x)
    reference_vars = theirs.init(jax.random.key(0), x)
    assert jax.tree.map(jnp.shape, nn.unbox(variables)) == jax.tree.map(jnp.shape, reference_vars)
    params = {"params": {"scale": jnp.linspace(0.5, 2, 40), "bias": jnp.linspace(-1, 1, 40)}}
    np.testing.assert_allclose(
        ours_module.apply(params, x), theirs.apply(params, x), atol=1e-5, rtol=1e-5
    )


def test_bfloat16_takes_the_xla_path_in_float32():
    x, scale, bias, _ = arrays((6, 32))
    xb = jnp.asarray(x, jnp.bfloat16)
    fn = jax.jit(lambda x: ops.layer_norm(x, scale, bias))
    assert "emojax_layer_norm_cpu" not in fn.lower(xb).as_text()
    y = fn(xb)
    assert y.dtype == jnp.bfloat16
    expected = ops.layer_norm(np.asarray(xb, np.float32), scale, bias)
    np.testing.assert_allclose(np.asarray(y, np.float32), expected, atol=0.05)


def test_without_fused_vjp_forward_mode_works():
    x, scale, bias, cot = arrays((5, 24))
    fn = lambda x: ops.layer_norm(x, scale, bias, fused_vjp=False)  # noqa: E731
    assert "emojax_layer_norm_cpu" not in jax.jit(fn).lower(x).as_text()
    _, tangent = jax.jvp(fn, (x,), (cot,))
    _, vjp = jax.vjp(fn, x)
    # <J t, u> == <t, J^T u>
    u = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    np.testing.assert_allclose(np.sum(tangent * u), np.sum(cot * vjp(u)[0]), rtol=1e-4)


@needs_kernel
def test_inside_a_mesh_the_xla_path_is_used():
    mesh = jax.make_mesh((4,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    x, scale, bias, _ = arrays((8, 16))
    expected = ops.layer_norm(x, scale, bias)
    with jax.set_mesh(mesh):
        fn = jax.jit(lambda x: ops.layer_norm(x, scale, bias))
        assert "emojax_layer_norm_cpu" not in fn.lower(x).as_text()
        np.testing.assert_allclose(fn(x), expected, atol=1e-6)


@needs_kernel
def test_inputs_sharded_without_a_mesh_take_the_xla_path():
    mesh = jax.make_mesh((4,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    x, scale, bias, _ = arrays((8, 16))
    xs = jax.device_put(x, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data")))
    fn = jax.jit(lambda x: ops.layer_norm(x, scale, bias))
    assert "emojax_layer_norm_cpu" not in fn.lower(xs).as_text()
    np.testing.assert_allclose(fn(xs), ops.layer_norm(x, scale, bias), atol=1e-6)


def test_bad_shapes_are_a_clear_error():
    with pytest.raises(ValueError, match=r"scale and bias of shape \[E\]"):
        ops.layer_norm(jnp.zeros((3, 8)), jnp.ones(7), jnp.zeros(8))
    with pytest.raises(ValueError, match=r"scale and bias of shape \[E\]"):
        ops.layer_norm(jnp.zeros((3, 8)), jnp.ones(8), jnp.zeros((1, 8)))


@needs_kernel
def test_ffi_kernel_rejects_wrong_shapes():
    call = jax.ffi.ffi_call(
        layer_norm_module._targets()[layer_norm_module._FORWARD],
        [jax.ShapeDtypeStruct(s, jnp.float32) for s in ((3, 8), (3,), (3,))],
    )
    with pytest.raises(Exception, match=r"x must be \[R, E\] and scale/bias \[E\]"):
        jax.block_until_ready(
            call(jnp.zeros((3, 8)), jnp.ones(7), jnp.zeros(8), eps=np.float32(1e-5))
        )


@needs_kernel
def test_ffi_backward_rejects_statistics_of_the_wrong_shape():
    call = jax.ffi.ffi_call(
        layer_norm_module._targets()[layer_norm_module._BACKWARD],
        [jax.ShapeDtypeStruct(s, jnp.float32) for s in ((3, 8), (8,), (8,))],
    )
    x, scale = jnp.zeros((3, 8)), jnp.ones(8)
    with pytest.raises(Exception, match=r"mean and rstd must be \[R\], dy \[R, E\]"):
        jax.block_until_ready(call(x, scale, jnp.zeros(2), jnp.ones(3), jnp.zeros((3, 8))))


@needs_kernel
def test_ffi_kernels_reject_results_of_the_wrong_shape():
    targets = layer_norm_module._targets()
    forward = jax.ffi.ffi_call(
        targets[layer_norm_module._FORWARD],
        [jax.ShapeDtypeStruct(s, jnp.float32) for s in ((1, 8), (3,), (3,))],
    )
    x, scale = jnp.zeros((3, 8)), jnp.ones(8)
    with pytest.raises(Exception, match=r"the results must be y \[R, E\], mean/rstd \[R\]"):
        jax.block_until_ready(forward(x, scale, jnp.zeros(8), eps=np.float32(1e-5)))
    backward = jax.ffi.ffi_call(
        targets[layer_norm_module._BACKWARD],
        [jax.ShapeDtypeStruct(s, jnp.float32) for s in ((3, 8), (1,), (8,))],
    )
    with pytest.raises(Exception, match=r"the results must be dx \[R, E\], dscale/dbias"):
        jax.block_until_ready(backward(x, scale, jnp.zeros(3), jnp.ones(3), jnp.zeros((3, 8))))


@needs_kernel
def test_second_order_derivatives_through_the_kernel():
    """hessian and grad of grad go through the kernels' XLA reference derivatives."""
    x, scale, bias, _ = arrays((4, 8), seed=5)

    def loss(fused):
        return lambda x, s: jnp.sum(jnp.sin(ops.layer_norm(x, s, bias, fused_vjp=fused)))

    for fn in (
        lambda f: jax.hessian(f, argnums=(0, 1))(x, scale),
        lambda f: jax.grad(lambda x: jnp.sum(jax.grad(f, argnums=1)(x, scale) ** 2))(x),
    ):
        for got, expected in zip(
            jax.tree.leaves(fn(loss(True))), jax.tree.leaves(fn(loss(False))), strict=True
        ):
            np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
