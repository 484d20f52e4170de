"""emojax.ops.self_attention and its XLA:CPU FFI kernel (emojax/ops/kernels/attention_cpu.cc):
parity with torch's scaled_dot_product_attention and with emojax.ops.attention, the saved and
recomputed-probabilities backward, masks, NaN, the fallbacks, bad input, and the kernel build."""

import importlib
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from emojax import ops
from emojax.ops import kernels

self_attention_module = importlib.import_module("emojax.ops.self_attention")

needs_kernel = pytest.mark.skipif(
    not self_attention_module.kernel_available(),
    reason="no C++ compiler here (or not a CPU backend)",
)


def packed(batch, length, heads, dim, seed=0, scale=1.5):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((batch, length, 3, heads, dim)) * scale).astype(np.float32)


def key_padding(batch, length, valid_lengths):
    mask = np.zeros((batch, length), bool)
    for i, n in enumerate(valid_lengths):
        mask[i, :n] = True
    return mask


def torch_reference(qkv, key_valid, cotangent):
    """Output and d qkv from torch SDPA; samples with no valid key are zeroed as emojax does."""
    t = torch.tensor(qkv, requires_grad=True)
    q, k, v = (t[:, :, i].transpose(1, 2) for i in range(3))  # [B, H, L, D]
    mask = None if key_valid is None else torch.tensor(key_valid)[:, None, None, :]
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    out = out.transpose(1, 2)  # [B, L, H, D]
    if key_valid is not None:
        out = torch.where(torch.tensor(key_valid.any(-1))[:, None, None, None], out, 0.0)
    out.backward(torch.tensor(cotangent))
    return out.detach().numpy(), t.grad.numpy()


def ours(qkv, key_valid, cotangent, **kw):
    mask = None if key_valid is None else jnp.asarray(key_valid)[:, None, None, :]
    fn = lambda x: ops.self_attention(x, mask=mask, **kw)  # noqa: E731
    out, vjp = jax.vjp(jax.jit(fn), jnp.asarray(qkv))
    return np.asarray(out), np.asarray(vjp(jnp.asarray(cotangent))[0])


SHAPES = [
    (2, 7, 2, 8),
    (3, 33, 3, 48),
    (2, 197, 6, 64),
    (4, 128, 12, 32),
    (1, 512, 2, 128),
    (2, 1, 1, 4),
]


@needs_kernel
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("masked", ["none", "right_padding", "holes"])
def test_kernel_matches_torch_sdpa(shape, masked):
    """Right padding: keys past the last valid one are skipped; holes: masked keys in between."""
    b, length, h, d = shape
    qkv = packed(b, length, h, d)
    key_valid = None
    if masked == "right_padding":
        key_valid = key_padding(b, length, [length, length // 2, 1, 3][:b])
    if masked == "holes":
        key_valid = np.random.default_rng(3).random((b, length)) < 0.6
        key_valid[:, 0] = True
    cot = np.random.default_rng(1).standard_normal((b, length, h, d)).astype(np.float32)
    out, grad = ours(qkv, key_valid, cot)
    ref_out, ref_grad = torch_reference(qkv, key_valid, cot)
    np.testing.assert_allclose(out, ref_out, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(grad, ref_grad, atol=2e-5, rtol=1e-5)


@needs_kernel
def test_kernel_runs_and_matches_the_xla_path(monkeypatch):
    """The kernel is really used (its FFI call is in the HLO), and agrees with the XLA path."""
    qkv = jnp.asarray(packed(2, 20, 2, 16))
    mask = jnp.asarray(key_padding(2, 20, [20, 0]))[:, None, None, :]  # sample 1: no valid key
    fn = lambda x: jnp.sum(jnp.sin(ops.self_attention(x, mask=mask)))  # noqa: E731
    assert "emojax_attention_cpu" in jax.jit(jax.grad(fn)).lower(qkv).as_text()
    value, grad = jax.value_and_grad(fn)(qkv)
    monkeypatch.setenv("EMOJAX_CPU_KERNELS", "0")
    monkeypatch.setattr(self_attention_module, "kernel_available", lambda *arrays: False)
    assert "emojax_attention_cpu" not in jax.jit(jax.grad(fn)).lower(qkv).as_text()
    ref_value, ref_grad = jax.value_and_grad(fn)(qkv)
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    np.testing.assert_allclose(grad, ref_grad, atol=1e-5)
    assert np.all(np.asarray(grad)[1] == 0)


@needs_kernel
def test_backward_recomputing_probabilities_matches_saved(monkeypatch):
    qkv = packed(3, 45, 2, 32)
    key_valid = key_padding(3, 45, [45, 30, 0])
    cot = np.random.default_rng(2).standard_normal((3, 45, 2, 32)).astype(np.float32)
    saved = ours(qkv, key_valid, cot)
    monkeypatch.setattr(self_attention_module, "SAVE_PROBS_BYTES", 0)
    recomputed = ours(qkv, key_valid, cot)
    np.testing.assert_allclose(recomputed[0], saved[0], atol=1e-6)
    np.testing.assert_allclose(recomputed[1], saved[1], atol=1e-6)


@needs_kernel
def test_kernel_under_vmap_and_extra_batch_dims():
    qkv = jnp.asarray(packed(6, 9, 2, 8)).reshape(2, 3, 9, 3, 2, 8)
    expected = ops.self_attention(qkv.reshape(6, 9, 3, 2, 8)).reshape(2, 3, 9, 2, 8)
    np.testing.assert_allclose(ops.self_attention(qkv), expected, atol=1e-6)
    np.testing.assert_allclose(jax.vmap(ops.self_attention)(qkv), expected, atol=1e-6)


@needs_kernel
def test_nan_input_gives_nan_output_not_garbage():
    qkv = packed(1, 12, 1, 8)
    qkv[0, 3, 0, 0, 0] = np.nan  # one query row
    out = np.asarray(ops.self_attention(jnp.asarray(qkv)))
    assert np.isnan(out[0, 3]).all() and np.isfinite(np.delete(out[0], 3, axis=0)).all()
    qkv = packed(1, 12, 1, 8)
    qkv[0, 5, 1, 0, 2] = np.nan  # one key: every query sees it
    assert np.isnan(np.asarray(ops.self_attention(jnp.asarray(qkv)))).all()


@pytest.mark.parametrize(
    "case",
    ["causal_mask", "bfloat16", "entmax15", "no_fused_vjp", "array_scale"],
)
def test_other_cases_take_the_xla_path_and_agree_with_attention(case):
    qkv = jnp.asarray(packed(2, 10, 2, 8))
    kw, ref_kw = {}, {}
    if case == "causal_mask":
        kw["mask"] = jnp.tril(jnp.ones((10, 10), bool))[None, None]
    if case == "bfloat16":
        qkv = qkv.astype(jnp.bfloat16)
    if case == "entmax15":
        kw["normalizer"] = "entmax15"
    if case == "no_fused_vjp":
        kw["fused_vjp"] = False
    if case == "array_scale":
        kw["scale"] = jnp.float32(0.2)
    fn = lambda x: ops.self_attention(x, **kw)  # noqa: E731
    assert "emojax_attention_cpu" not in jax.jit(fn).lower(qkv).as_text()
    q, k, v = (qkv[:, :, i] for i in range(3))
    expected = ops.attention(q, k, v, **kw, **ref_kw)
    np.testing.assert_allclose(
        np.asarray(fn(qkv), np.float32), np.asarray(expected, np.float32), atol=1e-6
    )
    if case == "no_fused_vjp":  # forward mode works on this path
        jax.jvp(fn, (qkv,), (jnp.ones_like(qkv),))


def test_bad_qkv_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\[..., len, 3, heads, head_dim\]"):
        ops.self_attention(jnp.zeros((2, 5, 4, 8)))
    with pytest.raises(ValueError, match=r"\[..., len, 3, heads, head_dim\]"):
        ops.self_attention(jnp.zeros((2, 5, 2, 4, 8)))


@needs_kernel
def test_mask_of_the_wrong_shape_is_a_clear_error():
    with pytest.raises(ValueError, match="mask"):
        ops.self_attention(jnp.zeros((2, 5, 3, 2, 8)), mask=jnp.ones((2, 1, 1, 4), bool))


@needs_kernel
def test_ffi_kernel_rejects_wrong_shapes():
    targets = self_attention_module._targets()
    call = jax.ffi.ffi_call(
        targets[self_attention_module._FORWARD],
        (
            jax.ShapeDtypeStruct((2, 5, 2, 8), jnp.float32),
            jax.ShapeDtypeStruct((2, 2, 5), jnp.float32),
            jax.ShapeDtypeStruct((0,), jnp.float32),
        ),
    )
    qkv, bias = jnp.zeros((2, 5, 3, 2, 8)), jnp.zeros((3, 2, 8))
    with pytest.raises(Exception, match=r"key_valid must be \[N, L\]"):
        jax.block_until_ready(call(qkv, bias, jnp.ones((2, 4), bool), scale=np.float32(1)))
    backward = jax.ffi.ffi_call(
        targets[self_attention_module._BACKWARD], jax.ShapeDtypeStruct(qkv.shape, jnp.float32)
    )
    with pytest.raises(Exception, match=r"out and d_out must be \[N, L, H, D\], lse \[N, H, L\]"):
        out, lse = jnp.zeros((2, 5, 2, 8)), jnp.zeros((2, 2, 4))  # lse one query short
        valid = jnp.ones((2, 5), bool)
        jax.block_until_ready(
            backward(qkv, bias, valid, out, lse, jnp.zeros(0), out, scale=np.float32(1))
        )
    with pytest.raises(Exception, match=r"qkv_bias must be \[3, H, D\]"):
        jax.block_until_ready(
            call(qkv, jnp.zeros((3, 2, 4)), jnp.ones((2, 5), bool), scale=np.float32(1))
        )


@needs_kernel
def test_ffi_kernels_reject_results_of_the_wrong_shape():
    targets = self_attention_module._targets()
    qkv, bias, valid = jnp.zeros((2, 5, 3, 2, 8)), jnp.zeros((3, 2, 8)), jnp.ones((2, 5), bool)
    forward = jax.ffi.ffi_call(
        targets[self_attention_module._FORWARD],
        (
            jax.ShapeDtypeStruct((1, 5, 2, 8), jnp.float32),  # one sample short
            jax.ShapeDtypeStruct((2, 2, 5), jnp.float32),
            jax.ShapeDtypeStruct((0,), jnp.float32),
        ),
    )
    with pytest.raises(Exception, match=r"the results must be out \[N, L, H, D\]"):
        jax.block_until_ready(forward(qkv, bias, valid, scale=np.float32(1)))
    backward = jax.ffi.ffi_call(
        targets[self_attention_module._BACKWARD], jax.ShapeDtypeStruct((2, 5, 3, 2, 1), jnp.float32)
    )
    out, lse = jnp.zeros((2, 5, 2, 8)), jnp.zeros((2, 2, 5))
    with pytest.raises(Exception, match=r"the result d_qkv must be"):
        jax.block_until_ready(
            backward(qkv, bias, valid, out, lse, jnp.zeros(0), out, scale=np.float32(1))
        )


def test_kernels_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("EMOJAX_CPU_KERNELS", "0")
    assert not kernels.enabled()
    monkeypatch.setenv("EMOJAX_CPU_KERNELS", "1")
    assert kernels.enabled()


def test_missing_compiler_is_reported_and_nothing_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOJAX_KERNEL_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no C\\+\\+ compiler"):
        kernels.build("attention_cpu", cxx="/nonexistent/c++")
    assert list(tmp_path.iterdir()) == []


@needs_kernel
def test_compile_error_is_reported_with_the_compiler_output(tmp_path, monkeypatch):
    bad = tmp_path / "src"
    bad.mkdir()
    (bad / "broken.cc").write_text("int main( {\n")
    monkeypatch.setattr(kernels, "SOURCE_DIR", bad)
    monkeypatch.setenv("EMOJAX_KERNEL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(kernels.KernelBuildError, match="broken.cc"):
        kernels.build("broken")
    assert list((tmp_path / "cache").iterdir()) == []  # no half-written library left


@needs_kernel
def test_a_corrupt_cached_library_is_rebuilt(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("EMOJAX_KERNEL_CACHE", str(tmp_path))
    path = kernels.build("attention_cpu")
    path.write_bytes(b"not a shared library")
    with caplog.at_level(logging.WARNING, logger="emojax.ops.kernels"):
        library = kernels._load("attention_cpu")
    assert "rebuilding" in caplog.text
    assert hasattr(library, "EmojaxAttentionForward")
    assert path.stat().st_size > 10_000


@needs_kernel
def test_inside_a_mesh_the_partitioned_xla_path_is_used_and_agrees():
    mesh = jax.make_mesh((4,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    qkv = jnp.asarray(packed(4, 12, 2, 8))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    expected = ops.self_attention(qkv)
    with jax.set_mesh(mesh):
        assert not self_attention_module.kernel_available()
        fn = jax.jit(ops.self_attention)
        assert "emojax_attention_cpu" not in fn.lower(qkv).as_text()
        out = fn(jax.device_put(qkv, sharding))
    np.testing.assert_allclose(out, expected, atol=1e-6)


@needs_kernel
def test_sharded_input_without_a_mesh_takes_the_partitioned_xla_path():
    """No mesh set, but the input is sharded over 4 devices: the kernel does not run (it would
    be gathered onto every device), the XLA path does and agrees."""
    mesh = jax.make_mesh((4,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    qkv = jnp.asarray(packed(4, 12, 2, 8))
    sharded = jax.device_put(
        qkv, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    )
    assert not self_attention_module.kernel_available(sharded)
    assert "emojax_attention_cpu" not in jax.jit(ops.self_attention).lower(sharded).as_text()
    grad = jax.jit(jax.grad(lambda x: jnp.sum(ops.self_attention(x) ** 2)))
    np.testing.assert_allclose(grad(sharded), grad(qkv), atol=1e-5)
    q, k, v = (qkv[:, :, i] for i in range(3))
    np.testing.assert_allclose(
        jax.jit(ops.self_attention)(sharded), ops.attention(q, k, v), atol=1e-6
    )


@needs_kernel
def test_qkv_bias_is_added_by_the_kernel_and_gets_its_gradient(monkeypatch):
    """qkv_bias (the projection's bias, added as the kernel reads q, k, v) against adding it
    first on the XLA path: outputs and the gradients of qkv and of the bias."""
    qkv = jnp.asarray(packed(3, 21, 2, 8))
    bias = jnp.asarray(np.random.default_rng(4).standard_normal((3, 2, 8)).astype(np.float32))
    mask = jnp.asarray(key_padding(3, 21, [21, 9, 0]))[:, None, None, :]
    cot = jnp.asarray(np.random.default_rng(5).standard_normal((3, 21, 2, 8)).astype(np.float32))

    def run():
        fn = lambda x, b: ops.self_attention(x, mask=mask, qkv_bias=b)  # noqa: E731
        out, vjp = jax.vjp(jax.jit(fn), qkv, bias)
        return (out, *vjp(cot)), jax.jit(fn).lower(qkv, bias).as_text()

    kernel, hlo = run()
    assert "emojax_attention_cpu" in hlo
    monkeypatch.setattr(self_attention_module, "kernel_available", lambda *arrays: False)
    xla, hlo = run()
    assert "emojax_attention_cpu" not in hlo
    for name, a, b in zip(("out", "d_qkv", "d_bias"), kernel, xla, strict=True):
        np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-5, err_msg=name)


@needs_kernel
def test_second_order_derivatives_through_the_kernel():
    """hessian and grad of grad go through the kernels' XLA reference derivatives, with a
    padded sample and a sample with no valid key."""
    qkv = jnp.asarray(packed(2, 5, 2, 4))
    mask = jnp.asarray(np.array([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0]], bool))[:, None, None, :]

    def loss(fused):
        return lambda t: jnp.sum(jnp.sin(ops.self_attention(t, mask=mask, fused_vjp=fused)))

    assert "emojax_attention_cpu" in jax.jit(jax.hessian(loss(True))).lower(qkv).as_text()
    for fn in (jax.hessian, lambda f: jax.grad(lambda t: jnp.sum(jax.grad(f)(t) ** 2))):
        np.testing.assert_allclose(fn(loss(True))(qkv), fn(loss(False))(qkv), atol=1e-5)
