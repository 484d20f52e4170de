"""Softmax attention of the encoders (emojax.nn.transformer.softmax_attention, i.e.
jax.nn.dot_product_attention, and MultiHeadAttention with attention_impl="xla"): parity with
torch's scaled_dot_product_attention (outputs and gradients, key-padding masks), other masks
against emojax.ops.attention, extra batch dims, NaN, a sharded mesh, second-order derivatives and
bad input. Float32 comparisons use tolerances scaled to the magnitudes, never bitwise equality."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from emojax import ops
from emojax.nn.transformer import MultiHeadAttention, padding_mask, softmax_attention


def qkv_arrays(batch, length, heads, dim, seed=0, scale=1.5):
    rng = np.random.default_rng(seed)
    return tuple(
        (rng.standard_normal((batch, length, heads, dim)) * scale).astype(np.float32)
        for _ in range(3)
    )


def key_padding(batch, length, valid_lengths):
    mask = np.zeros((batch, length), bool)
    for i, n in enumerate(valid_lengths):
        mask[i, :n] = True
    return mask


def tol(ref, rel=1e-5):
    """An absolute tolerance scaled to the reference's magnitude (at least ``rel``)."""
    return rel * max(1.0, float(np.max(np.abs(ref))))


def torch_reference(q, k, v, key_valid, cotangent):
    """Output and dq, dk, dv from torch SDPA; samples with no valid key are zeroed as emojax
    does (torch gives NaN there)."""
    ts = [torch.tensor(t, requires_grad=True) for t in (q, k, v)]
    qh, kh, vh = (t.transpose(1, 2) for t in ts)  # [B, H, L, D]
    mask = None if key_valid is None else torch.tensor(key_valid)[:, None, None, :]
    out = torch.nn.functional.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask)
    out = out.transpose(1, 2)  # [B, L, H, D]
    if key_valid is not None:
        out = torch.where(torch.tensor(key_valid.any(-1))[:, None, None, None], out, 0.0)
    out.backward(torch.tensor(cotangent))
    return out.detach().numpy(), [t.grad.numpy() for t in ts]


def ours(q, k, v, key_valid, cotangent):
    mask = None if key_valid is None else jnp.asarray(key_valid)[:, None, None, :]
    fn = jax.jit(lambda q, k, v: softmax_attention(q, k, v, mask))
    out, vjp = jax.vjp(fn, *(jnp.asarray(t) for t in (q, k, v)))
    return np.asarray(out), [np.asarray(g) for g in vjp(jnp.asarray(cotangent))]


SHAPES = [(2, 7, 2, 8), (3, 33, 3, 48), (2, 197, 6, 64), (2, 1, 1, 4)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("masked", ["none", "right_padding", "holes"])
def test_matches_torch_sdpa(shape, masked):
    """Right padding: keys past the last valid one are masked; holes: masked keys in between;
    the right-padded batch includes a sample with one valid key."""
    b, length, h, d = shape
    q, k, v = qkv_arrays(b, length, h, d)
    key_valid = None
    if masked == "right_padding":
        key_valid = key_padding(b, length, [length, max(length // 2, 1), 1][:b])
    if masked == "holes":
        key_valid = np.random.default_rng(3).random((b, length)) < 0.6
        key_valid[:, 0] = True
    cot = np.random.default_rng(1).standard_normal((b, length, h, d)).astype(np.float32)
    out, grads = ours(q, k, v, key_valid, cot)
    ref_out, ref_grads = torch_reference(q, k, v, key_valid, cot)
    # XLA vs torch, sums over up to 197 keys: round-off differs by CPU (AVX2 vs AVX-512 kernels)
    np.testing.assert_allclose(out, ref_out, atol=tol(ref_out, 3e-5), rtol=1e-5)
    for name, g, ref in zip("qkv", grads, ref_grads, strict=True):
        np.testing.assert_allclose(g, ref, atol=tol(ref, 5e-5), rtol=1e-5, err_msg=f"d{name}")


def test_multi_head_attention_xla_matches_torch_sdpa_with_key_padding():
    """The module with attention_impl="xla": its own q/k/v/out projections redone in torch
    (F.linear with the same weights) around torch SDPA, a key-padding mask in play; outputs
    and the gradient with respect to the input."""
    b, length, embed, heads = 3, 11, 32, 4
    x = np.random.default_rng(7).standard_normal((b, length, embed)).astype(np.float32)
    valid = key_padding(b, length, [11, 6, 1])
    mha = MultiHeadAttention(heads, attention_impl="xla")
    variables = mha.init(jax.random.key(0), jnp.asarray(x))
    params = nn.meta.unbox(variables["params"])
    mask = padding_mask(jnp.asarray(valid))
    cot = np.random.default_rng(8).standard_normal((b, length, embed)).astype(np.float32)
    out, vjp = jax.vjp(lambda x: mha.apply(variables, x, mask), jnp.asarray(x))
    (dx,) = vjp(jnp.asarray(cot))

    def linear(t, name):
        p = params[name]
        return torch.nn.functional.linear(
            t, torch.tensor(np.asarray(p["kernel"]).T), torch.tensor(np.asarray(p["bias"]))
        )

    tx = torch.tensor(x, requires_grad=True)
    split = lambda t: t.reshape(b, length, heads, embed // heads).transpose(1, 2)  # noqa: E731
    q, k, v = (split(linear(tx, name)) for name in ("query", "key", "value"))
    ctx = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=torch.tensor(valid)[:, None, None, :]
    )
    ref = linear(ctx.transpose(1, 2).reshape(b, length, embed), "out")
    ref.backward(torch.tensor(cot))
    ref, ref_dx = ref.detach().numpy(), tx.grad.numpy()
    np.testing.assert_allclose(out, ref, atol=tol(ref, 3e-5), rtol=1e-5)
    np.testing.assert_allclose(dx, ref_dx, atol=tol(ref_dx, 5e-5), rtol=1e-5)


def test_sample_with_no_valid_key_gives_zero_output_and_gradient():
    q, k, v = (jnp.asarray(t) for t in qkv_arrays(2, 20, 2, 16))
    mask = jnp.asarray(key_padding(2, 20, [20, 0]))[:, None, None, :]
    fn = lambda q, k, v: jnp.sum(jnp.sin(softmax_attention(q, k, v, mask)))  # noqa: E731
    out = softmax_attention(q, k, v, mask)
    assert np.all(np.asarray(out)[1] == 0) and np.all(np.isfinite(np.asarray(out)))
    grads = jax.grad(fn, argnums=(0, 1, 2))(q, k, v)
    for g in grads:
        assert np.all(np.isfinite(np.asarray(g))) and np.all(np.asarray(g)[1] == 0)


@pytest.mark.parametrize("case", ["causal", "per_head", "causal_and_padding", "bfloat16"])
def test_other_masks_and_dtypes_agree_with_ops_attention(case):
    q, k, v = (jnp.asarray(t) for t in qkv_arrays(2, 10, 2, 8))
    causal = jnp.tril(jnp.ones((10, 10), bool))[None, None]
    mask, atol = None, 1e-5
    if case == "causal":
        mask = causal
    if case == "per_head":  # varies over heads and queries
        mask = jnp.asarray(np.random.default_rng(5).random((2, 2, 10, 10)) < 0.7)
    if case == "causal_and_padding":  # CLIP's text mask, with a row that sees no key
        mask = causal & jnp.asarray(key_padding(2, 10, [10, 4]))[:, None, None, :]
        mask = mask.at[1, :, 0, 0].set(False)
    if case == "bfloat16":
        q, k, v = (t.astype(jnp.bfloat16) for t in (q, k, v))
        atol = 0.05
    out = softmax_attention(q, k, v, mask)
    assert out.dtype == q.dtype
    expected = ops.attention(q, k, v, mask=mask)
    np.testing.assert_allclose(
        np.asarray(out, np.float32), np.asarray(expected, np.float32), atol=atol, rtol=1e-5
    )


def test_extra_batch_dims_vmap_and_unbatched_input():
    q, k, v = (jnp.asarray(t).reshape(2, 3, 9, 2, 8) for t in qkv_arrays(6, 9, 2, 8))
    mask = jnp.asarray(key_padding(6, 9, [9, 5, 1, 9, 3, 7])).reshape(2, 3, 1, 1, 9)
    flat = lambda t: t.reshape((6,) + t.shape[2:])  # noqa: E731
    expected = softmax_attention(flat(q), flat(k), flat(v), flat(mask)).reshape(q.shape)
    np.testing.assert_allclose(softmax_attention(q, k, v, mask), expected, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(
        jax.vmap(softmax_attention)(q, k, v, mask), expected, atol=1e-5, rtol=1e-5
    )
    one = softmax_attention(q[0, 0], k[0, 0], v[0, 0], mask[0, 0])  # [len, heads, head_dim]
    np.testing.assert_allclose(one, expected[0, 0], atol=1e-5, rtol=1e-5)


def test_nan_input_gives_nan_output_not_garbage():
    q, k, v = qkv_arrays(1, 12, 1, 8)
    q[0, 3, 0, 0] = np.nan  # one query row
    out = np.asarray(softmax_attention(*(jnp.asarray(t) for t in (q, k, v))))
    assert np.isnan(out[0, 3]).all() and np.isfinite(np.delete(out[0], 3, axis=0)).all()
    q, k, v = qkv_arrays(1, 12, 1, 8)
    k[0, 5, 0, 2] = np.nan  # one key: every query sees it
    assert np.isnan(np.asarray(softmax_attention(*(jnp.asarray(t) for t in (q, k, v))))).all()


def test_inside_a_mesh_with_sharded_input_agrees():
    mesh = jax.make_mesh((4,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    q, k, v = (jnp.asarray(t) for t in qkv_arrays(4, 12, 2, 8))
    mask = jnp.asarray(key_padding(4, 12, [12, 7, 1, 0]))[:, None, None, :]
    expected = softmax_attention(q, k, v, mask)
    loss = lambda q, k, v: jnp.sum(softmax_attention(q, k, v, mask) ** 2)  # noqa: E731
    expected_grad = jax.grad(loss)(q, k, v)
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    with jax.set_mesh(mesh):
        sq, sk, sv = (jax.device_put(t, sharding) for t in (q, k, v))
        out = jax.jit(lambda q, k, v: softmax_attention(q, k, v, mask))(sq, sk, sv)
        grad = jax.jit(jax.grad(loss))(sq, sk, sv)
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)  # sharded vs unsharded
    np.testing.assert_allclose(grad, expected_grad, atol=1e-5, rtol=1e-5)


def test_forward_mode_and_second_order_derivatives():
    """jax.jvp, hessian and grad of grad work and agree with plain autodiff of
    emojax.ops.attention (fused_vjp=False), with a padded sample and one with no valid key."""
    q, k, v = (jnp.asarray(t) for t in qkv_arrays(2, 5, 2, 4, scale=1.0))
    mask = jnp.asarray(np.array([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0]], bool))[:, None, None, :]
    ours = lambda q: jnp.sum(jnp.sin(softmax_attention(q, k, v, mask)))  # noqa: E731
    ref = lambda q: jnp.sum(jnp.sin(ops.attention(q, k, v, mask=mask, fused_vjp=False)))  # noqa: E731
    t = jnp.cos(q)
    np.testing.assert_allclose(
        jax.jvp(ours, (q,), (t,))[1], jax.jvp(ref, (q,), (t,))[1], atol=1e-5, rtol=1e-5
    )
    for fn in (jax.hessian, lambda f: jax.grad(lambda x: jnp.sum(jax.grad(f)(x) ** 2))):
        np.testing.assert_allclose(fn(ours)(q), fn(ref)(q), atol=1e-5, rtol=1e-5)


def test_bad_input_is_a_clear_error():
    q = jnp.zeros((2, 5, 2, 8))
    with pytest.raises(ValueError, match="mask of shape"):
        softmax_attention(q, q, q, jnp.ones((2, 1, 1, 4), bool))
    with pytest.raises(TypeError, match="mask must be boolean"):
        softmax_attention(q, q, q, jnp.ones((2, 1, 1, 5), jnp.int32))
    with pytest.raises(ValueError, match=r"\[..., len, heads, head_dim\]"):
        softmax_attention(q, q[0], q)
    with pytest.raises(ValueError, match="attention_impl='sdpa' is not supported"):
        softmax_attention(q, q, q, attention_impl="sdpa")
