"""emojax.ops.dense and its XLA:CPU FFI kernel (emojax/ops/kernels/dense_cpu.cc, gemm.h):
parity with torch.nn.functional.linear (values and gradients) over the GEMM's edge cases, the
XLA path, determinism, NaN, the fallbacks, bad input; the Flax Dense module keeps nn.Dense's
params and values."""

import importlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from emojax import ops
from emojax.nn.transformer import Dense

dense_module = importlib.import_module("emojax.ops.dense")
TARGET = "emojax_dense_cpu"

needs_kernel = pytest.mark.skipif(
    not dense_module.kernel_available(), reason="no C++ compiler here (or not a CPU backend)"
)


def arrays(m, k, n, seed=0, lead=()):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*lead, m, k)).astype(np.float32)
    w = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    cot = rng.standard_normal((*lead, m, n)).astype(np.float32)
    return x, w, b, cot


def ours(x, w, b, cot, **kw):
    fn = jax.jit(lambda x, w, b: ops.dense(x, w, b, **kw))
    y, vjp = jax.vjp(fn, x, w, b)
    return (np.asarray(y), *(np.asarray(g) for g in vjp(jnp.asarray(cot))))


def torch_linear(x, w, b, cot):
    tensors = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, w, b)]
    y = torch.nn.functional.linear(tensors[0], tensors[1].T, tensors[2])
    y.backward(torch.tensor(cot, dtype=torch.float64))
    return [y.detach().numpy()] + [t.grad.numpy() for t in tensors]


# (M, K, N): row tiles of 6 with a partial last one, column panels of 16 with a partial last
# one, one depth block (K <= 384) and several with an uneven last block, 1-wide edges, and the
# transformer shapes (q/k/v, MLP) that the tasks split along both rows and columns, and a
# vocabulary-wide output whose packed block is too large for the retained per-thread buffer.
SHAPES = [
    (1, 1, 1),
    (7, 5, 17),
    (6, 384, 16),
    (73, 385, 15),
    (433, 1000, 129),
    (5, 1536, 200),
    (200, 33, 1),
    (394, 384, 1152),
    (256, 1536, 384),
    (8, 384, 11000),
]


@needs_kernel
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_kernel_matches_torch_linear(shape):
    x, w, b, cot = arrays(*shape)
    got = ours(x, w, b, cot)
    expected = torch_linear(x, w, b, cot)
    for name, a, e in zip(("y", "dx", "dw", "db"), got, expected, strict=True):
        # float32 sums of K (or M) terms against float64
        terms = shape[1] if name in ("y", "dx") else shape[0]
        tol = 2e-6 * np.sqrt(terms) * max(1.0, float(np.abs(e).max()))
        np.testing.assert_allclose(a, e, atol=tol, rtol=1e-5, err_msg=name)


@needs_kernel
def test_kernel_is_used_and_agrees_with_the_xla_path(monkeypatch):
    x, w, b, cot = arrays(9, 40, 24, lead=(2,))
    fn = lambda x: ops.dense(x, w, b)  # noqa: E731
    lowered = jax.jit(jax.grad(lambda x: fn(x).sum())).lower(x).as_text()
    assert TARGET in lowered
    kernel = ours(x, w, b, cot)
    monkeypatch.setattr(dense_module, "kernel_available", lambda *arrays: False)
    assert TARGET not in jax.jit(fn).lower(x).as_text()
    xla = ours(x, w, b, cot)
    for a, e in zip(kernel, xla, strict=True):
        np.testing.assert_allclose(a, e, atol=2e-5, rtol=1e-5)


@needs_kernel
def test_several_output_axes_and_no_bias():
    """A stacked [in, 3, E] kernel (MultiHeadAttention's q/k/v) keeps its output axes; without
    a bias the gradient has no bias term."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 11, 32)).astype(np.float32)
    w = rng.standard_normal((32, 3, 16)).astype(np.float32)
    y, vjp = jax.vjp(jax.jit(lambda x, w: ops.dense(x, w)), x, w)
    assert y.shape == (2, 11, 3, 16)
    np.testing.assert_allclose(y, np.einsum("blk,kse->blse", x, w), atol=1e-4, rtol=1e-5)
    cot = rng.standard_normal(y.shape).astype(np.float32)
    dx, dw = vjp(jnp.asarray(cot))
    np.testing.assert_allclose(dx, np.einsum("blse,kse->blk", cot, w), atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(dw, np.einsum("blk,blse->kse", x, cot), atol=1e-4, rtol=1e-5)


@needs_kernel
def test_gradients_are_deterministic():
    x, w, b, cot = arrays(500, 700, 96, seed=3)
    first, second = ours(x, w, b, cot), ours(x, w, b, cot)
    for a, e in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, e)


@needs_kernel
def test_nan_stays_in_its_row():
    x, w, b, _ = arrays(13, 20, 18)
    x[4, 7] = np.nan
    y = np.asarray(ops.dense(x, w, b))
    assert np.isnan(y[4]).all() and np.isfinite(np.delete(y, 4, axis=0)).all()


@needs_kernel
def test_under_vmap():
    x, w, b, _ = arrays(6, 12, 20, lead=(3,))
    ws = np.stack([w, 2 * w, -w])
    y = jax.jit(jax.vmap(ops.dense, in_axes=(0, 0, None)))(x, ws, b)
    np.testing.assert_allclose(y, np.einsum("bmk,bkn->bmn", x, ws) + b, atol=1e-4, rtol=1e-5)


def test_flax_module_keeps_nn_dense_params_and_values():
    x = jnp.asarray(arrays(9, 40, 24, lead=(2,))[0])
    ours_module = Dense(24, ("embed", "mlp"), init_std=0.02)
    theirs = nn.Dense(24, kernel_init=nn.initializers.normal(0.02))
    variables = nn.unbox(ours_module.init(jax.random.key(0), x))
    reference = theirs.init(jax.random.key(0), x)
    jax.tree.map(np.testing.assert_array_equal, variables, reference)
    params = {
        "params": {"kernel": jnp.linspace(-1, 1, 40 * 24).reshape(40, 24), "bias": jnp.ones(24)}
    }
    np.testing.assert_allclose(
        ours_module.apply(params, x), theirs.apply(params, x), atol=1e-5, rtol=1e-5
    )


def test_bfloat16_takes_the_xla_path():
    x, w, b, _ = arrays(6, 32, 16)
    fn = jax.jit(lambda x, w: ops.dense(x, w, b.astype(jnp.bfloat16)))
    xb, wb = jnp.asarray(x, jnp.bfloat16), jnp.asarray(w, jnp.bfloat16)
    assert TARGET not in fn.lower(xb, wb).as_text()
    y = fn(xb, wb)
    assert y.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(y, np.float32), x @ w + b, atol=0.1)


def test_without_fused_vjp_forward_mode_works():
    x, w, b, cot = arrays(5, 24, 8)
    fn = lambda x: ops.dense(x, w, b, fused_vjp=False)  # noqa: E731
    assert TARGET not in jax.jit(fn).lower(x).as_text()
    _, tangent = jax.jvp(fn, (x,), (np.ones_like(x),))
    np.testing.assert_allclose(tangent, np.ones_like(x) @ w, atol=1e-5, rtol=1e-5)


@needs_kernel
def test_inside_a_mesh_the_xla_path_is_used():
    mesh = jax.make_mesh((4,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    x, w, b, _ = arrays(8, 16, 12)
    expected = ops.dense(x, w, b)
    with jax.set_mesh(mesh):
        fn = jax.jit(lambda x: ops.dense(x, w, b))
        assert TARGET not in fn.lower(x).as_text()
        np.testing.assert_allclose(fn(x), expected, atol=1e-5)


@needs_kernel
def test_inputs_sharded_without_a_mesh_take_the_xla_path():
    """device_put with a NamedSharding (no jax.set_mesh): the custom call would be gathered
    onto every device, so the partitionable XLA path runs and the output stays sharded."""
    mesh = jax.make_mesh((4,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    x, w, b, _ = arrays(8, 16, 12)
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    xs = jax.device_put(x, sharding)
    fn = jax.jit(lambda x: ops.dense(x, w, b))
    assert TARGET not in fn.lower(xs).as_text()
    y = fn(xs)
    assert y.sharding.is_equivalent_to(sharding, 2)
    np.testing.assert_allclose(y, ops.dense(x, w, b), atol=1e-5)


def test_bad_shapes_are_a_clear_error():
    with pytest.raises(ValueError, match=r"kernel \[in, \*out\]"):
        ops.dense(jnp.zeros((3, 8)), jnp.ones((7, 4)))
    with pytest.raises(ValueError, match=r"bias \[\*out\]"):
        ops.dense(jnp.zeros((3, 8)), jnp.ones((8, 4)), jnp.zeros(5))
    with pytest.raises(ValueError, match=r"kernel \[in, \*out\]"):
        ops.dense(jnp.zeros((3, 8)), jnp.ones(8))


@needs_kernel
def test_ffi_kernels_reject_wrong_shapes():
    targets = dense_module._targets()
    forward = jax.ffi.ffi_call(
        targets[dense_module._FORWARD], jax.ShapeDtypeStruct((3, 4), jnp.float32)
    )
    with pytest.raises(Exception, match=r"x must be \[M, K\] and w \[K, N\]"):
        jax.block_until_ready(forward(jnp.zeros((3, 8)), jnp.ones((7, 4)), jnp.zeros(4)))
    with pytest.raises(Exception, match=r"b must be \[N\] or \[0\]"):
        jax.block_until_ready(forward(jnp.zeros((3, 8)), jnp.ones((8, 4)), jnp.zeros(3)))
    input_gradient = jax.ffi.ffi_call(
        targets[dense_module._INPUT_GRADIENT], jax.ShapeDtypeStruct((3, 8), jnp.float32)
    )
    with pytest.raises(Exception, match=r"w must be \[K, N\] and dy \[M, N\]"):
        jax.block_until_ready(input_gradient(jnp.ones((8, 4)), jnp.zeros((3, 5))))
    param_gradient = jax.ffi.ffi_call(
        targets[dense_module._PARAM_GRADIENT],
        [jax.ShapeDtypeStruct(s, jnp.float32) for s in ((8, 4), (4,))],
    )
    with pytest.raises(Exception, match=r"x must be \[M, K\] and dy \[M, N\]"):
        jax.block_until_ready(param_gradient(jnp.zeros((3, 8)), jnp.zeros((2, 4))))


@needs_kernel
def test_ffi_kernels_reject_results_of_the_wrong_shape():
    """A hand-made call whose result buffers are smaller than x and w imply must fail, not
    write past them."""
    targets = dense_module._targets()
    x, w = jnp.ones((64, 32)), jnp.ones((32, 48))
    forward = jax.ffi.ffi_call(
        targets[dense_module._FORWARD], jax.ShapeDtypeStruct((1, 1), jnp.float32)
    )
    with pytest.raises(Exception, match=r"the result y must be \[M, N\]"):
        jax.block_until_ready(forward(x, w, jnp.zeros(48)))
    input_gradient = jax.ffi.ffi_call(
        targets[dense_module._INPUT_GRADIENT], jax.ShapeDtypeStruct((64, 1), jnp.float32)
    )
    with pytest.raises(Exception, match=r"the result dx must be \[M, K\]"):
        jax.block_until_ready(input_gradient(w, jnp.zeros((64, 48))))
    param_gradient = jax.ffi.ffi_call(
        targets[dense_module._PARAM_GRADIENT],
        [jax.ShapeDtypeStruct(s, jnp.float32) for s in ((1, 48), (48,))],
    )
    with pytest.raises(Exception, match=r"the results must be dw \[K, N\] and db \[N\]"):
        jax.block_until_ready(param_gradient(x, jnp.zeros((64, 48))))


@needs_kernel
def test_an_unused_gradient_is_not_computed():
    """The backward is two custom calls: the gradient of x alone compiles without the dW call
    and the gradient of W alone without the dx call."""
    x, w, b, _ = arrays(16, 8, 4)
    loss = lambda x, w: jnp.sum(ops.dense(x, w, b) ** 2)  # noqa: E731
    only_x = jax.jit(jax.grad(loss, argnums=0)).lower(x, w).compile().as_text()
    only_w = jax.jit(jax.grad(loss, argnums=1)).lower(x, w).compile().as_text()
    assert "EmojaxDenseInputGradient" in only_x and "EmojaxDenseParamGradient" not in only_x
    assert "EmojaxDenseParamGradient" in only_w and "EmojaxDenseInputGradient" not in only_w


@needs_kernel
def test_second_order_derivatives_through_the_kernel():
    """hessian (forward over reverse) and grad of grad go through the kernels' XLA reference
    derivatives and agree with the unfused path."""
    x, w, b, _ = arrays(5, 8, 3, seed=7)

    def loss(fused):
        return lambda x, w, b: jnp.sum(jnp.sin(ops.dense(x, w, b, fused_vjp=fused)))

    assert TARGET in jax.jit(jax.hessian(loss(True))).lower(x, w, b).as_text()
    for fn in (
        lambda f: jax.hessian(f, argnums=(0, 1, 2))(x, w, b),
        lambda f: jax.grad(lambda w: jnp.sum(jax.grad(f)(x, w, b) ** 2))(w),
    ):
        for got, expected in zip(
            jax.tree.leaves(fn(loss(True))), jax.tree.leaves(fn(loss(False))), strict=True
        ):
            np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
