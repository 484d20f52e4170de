"""emojax.ops.attention: each normalizer, per-head learnable alpha, masking, vmap/jit, Flax."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from emojax import ops

B, Q, K, H, D = 2, 3, 5, 4, 8


@pytest.fixture(scope="module")
def qkv():
    keys = jax.random.split(jax.random.key(0), 3)
    q = jax.random.normal(keys[0], (B, Q, H, D)) * 2
    k = jax.random.normal(keys[1], (B, K, H, D)) * 2
    v = jax.random.normal(keys[2], (B, K, H, D))
    return q, k, v


MAPS = {
    "softmax": jax.nn.softmax,
    "sparsemax": ops.sparsemax,
    "entmax15": ops.entmax15,
    "entmax_bisect": lambda s: ops.entmax_bisect(s, 1.5),
}


@pytest.mark.parametrize("normalizer", ops.NORMALIZERS)
def test_each_normalizer_matches_manual(qkv, normalizer):
    q, k, v = qkv
    out = jax.jit(lambda q, k, v: ops.attention(q, k, v, normalizer=normalizer))(q, k, v)
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(D)
    expected = jnp.einsum("bhqk,bkhd->bqhd", MAPS[normalizer](logits), v)
    assert out.shape == (B, Q, H, D)
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)
    if normalizer == "softmax":
        np.testing.assert_allclose(out, jax.nn.dot_product_attention(q, k, v), atol=1e-5, rtol=1e-5)


def test_per_head_alpha_gets_gradients(qkv):
    q, k, v = qkv

    def loss(raw):
        alpha = ops.alpha_from_raw(raw)  # [heads]
        out = ops.attention(q, k, v, normalizer="entmax_bisect", alpha=alpha)
        return jnp.sum(out**2)

    raw = jnp.asarray([-2.0, 0.0, 1.0, 3.0])
    g = jax.jit(jax.grad(loss))(raw)
    assert g.shape == (H,) and np.all(np.isfinite(g)) and np.all(g != 0)
    weights = ops.attention_weights(
        q, k, normalizer="entmax_bisect", alpha=jnp.asarray([1.01, 2.0, 2.0, 2.0])
    )
    sparse = ops.attention_weights(q, k, normalizer="sparsemax")
    np.testing.assert_allclose(weights[:, 1:], sparse[:, 1:], atol=2e-5)  # bisection vs sort


@pytest.mark.parametrize("normalizer", ops.NORMALIZERS)
def test_masking_and_fully_masked_queries(qkv, normalizer):
    q, k, v = qkv
    mask = jnp.ones((B, 1, Q, K), bool).at[:, :, 0, 3:].set(False).at[1, :, 2, :].set(False)
    w = ops.attention_weights(q, k, normalizer=normalizer, mask=mask)
    np.testing.assert_array_equal(w[:, :, 0, 3:], 0)
    np.testing.assert_array_equal(w[1, :, 2], 0)
    run = jax.jit(lambda q: ops.attention(q, k, v, normalizer=normalizer, mask=mask))
    np.testing.assert_array_equal(run(q)[1, 2], 0)
    g = jax.jit(jax.grad(lambda q: jnp.sum(run(q))))(q)
    assert np.all(np.isfinite(g))


def test_vmap_jit_and_bfloat16(qkv):
    q, k, v = qkv
    f = jax.jit(jax.vmap(lambda q, k, v: ops.attention(q, k, v, normalizer="entmax15")))
    np.testing.assert_allclose(
        f(q, k, v), ops.attention(q, k, v, normalizer="entmax15"), atol=1e-5, rtol=1e-5
    )
    half = ops.attention(*(t.astype(jnp.bfloat16) for t in qkv), normalizer="sparsemax")
    assert half.dtype == jnp.bfloat16 and np.all(np.isfinite(np.asarray(half, np.float32)))


class _SparseSelfAttention(nn.Module):
    heads: int = H

    @nn.compact
    def __call__(self, x):
        proj = lambda name: nn.DenseGeneral((self.heads, D), name=name)(x)  # noqa: E731
        raw = self.param("alpha_raw", nn.initializers.zeros, (self.heads,))
        alpha = ops.alpha_from_raw(raw)
        out = ops.attention(
            proj("q"), proj("k"), proj("v"), normalizer="entmax_bisect", alpha=alpha
        )
        return nn.DenseGeneral(x.shape[-1], axis=(-2, -1))(out)


def test_inside_flax_module():
    x = jax.random.normal(jax.random.key(1), (B, Q, 16))
    model = _SparseSelfAttention()
    params = model.init(jax.random.key(2), x)
    grads = jax.jit(jax.grad(lambda p: jnp.sum(model.apply(p, x) ** 2)))(params)
    assert np.all(np.asarray(grads["params"]["alpha_raw"]) != 0)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"normalizer": "entmax"}, ValueError, "normalizer must be one of"),
        ({"normalizer": "softmax", "alpha": 1.5}, ValueError, "alpha is only used"),
        ({"mask": jnp.ones((3, 7), bool)}, ValueError, "does not broadcast"),
        ({"mask": jnp.ones((B, H, Q, K), jnp.int32)}, TypeError, "must be boolean"),
        ({"normalizer": "entmax_bisect", "alpha": 0.5}, ValueError, "alpha must be a finite"),
    ],
)
def test_bad_arguments(qkv, kwargs, error, match):
    q, k, v = qkv
    with pytest.raises(error, match=match):
        ops.attention(q, k, v, **kwargs)


def test_bad_shapes_and_dtypes(qkv):
    q, k, v = qkv
    with pytest.raises(ValueError, match="same heads and head_dim"):
        ops.attention(q, k[..., :4], v)
    with pytest.raises(ValueError, match="same rank"):
        ops.attention(q[0], k, v)
    with pytest.raises(TypeError, match="floating-point"):
        ops.attention(q.astype(jnp.int32), k, v)


def _plain_softmax_attention(q, k, v, mask=None, scale=None):
    """The formula the custom-VJP softmax path must match (values and autodiff gradients)."""
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    logits = jnp.einsum("...qhd,...khd->...hqk", q, k) * scale
    if mask is not None:
        logits = jnp.where(mask, logits, jnp.finfo(logits.dtype).min)
    p = jax.nn.softmax(logits, axis=-1)
    if mask is not None:
        p = jnp.where(jnp.any(mask, axis=-1, keepdims=True), p, 0)
    return jnp.einsum("...hqk,...khd->...qhd", p, v)


_MASKS = {
    "none": None,
    "padding": jnp.ones((B, 1, 1, K), bool).at[0, ..., 3:].set(False),
    "per_query_and_empty_rows": jnp.ones((B, 1, Q, K), bool)
    .at[:, :, 0, 3:]
    .set(False)
    .at[1, :, 2, :]
    .set(False),
    "per_head_2d_broadcast": jnp.tril(jnp.ones((Q, K), bool), 1),
    "full_rank": jax.random.bernoulli(jax.random.key(5), 0.6, (B, H, Q, K)),
}


@pytest.mark.parametrize("mask_name", sorted(_MASKS))
@pytest.mark.parametrize("scale", [None, 0.3])
def test_softmax_custom_vjp_matches_autodiff_of_the_formula(qkv, mask_name, scale):
    q, k, v = qkv
    mask = _MASKS[mask_name]
    cot = jax.random.normal(jax.random.key(7), q.shape)  # non-uniform output cotangent

    def loss(fn):
        return jax.jit(jax.value_and_grad(lambda *a: jnp.sum(fn(*a) * cot), argnums=(0, 1, 2)))

    ours = loss(lambda q, k, v: ops.attention(q, k, v, mask=mask, scale=scale))(q, k, v)
    plain = loss(lambda q, k, v: _plain_softmax_attention(q, k, v, mask, scale))(q, k, v)
    np.testing.assert_allclose(ours[0], plain[0], rtol=1e-5, atol=1e-5)
    for got, want in zip(ours[1], plain[1], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    out = ops.attention(q, k, v, mask=mask, scale=scale)
    np.testing.assert_allclose(
        out, _plain_softmax_attention(q, k, v, mask, scale), atol=1e-5, rtol=1e-5
    )


def test_softmax_custom_vjp_leading_dims_vmap_and_numerical_grads(qkv):
    q, k, v = (t.reshape((1,) + t.shape) for t in qkv)  # extra leading axis
    mask = _MASKS["per_query_and_empty_rows"]
    run = lambda q, k, v: ops.attention(q, k, v, mask=mask)  # noqa: E731
    np.testing.assert_allclose(
        run(q, k, v), _plain_softmax_attention(q, k, v, mask), atol=1e-5, rtol=1e-5
    )
    vm = jax.vmap(lambda q, k, v, m: ops.attention(q, k, v, mask=m))
    np.testing.assert_allclose(vm(*qkv, mask), run(*qkv), atol=1e-5, rtol=1e-5)
    # float32 finite differences: loose tolerances, catches a wrong formula, not rounding
    check_grads(run, (q, k, v), order=1, modes=("rev",), atol=5e-2, rtol=5e-2)


def test_softmax_custom_vjp_bfloat16_and_mixed_dtypes(qkv):
    q, k, v = qkv
    half = [t.astype(jnp.bfloat16) for t in qkv]
    mask = _MASKS["padding"]
    grads = jax.grad(
        lambda q, k, v: jnp.sum(ops.attention(q, k, v, mask=mask).astype(jnp.float32) ** 2),
        argnums=(0, 1, 2),
    )(*half)
    want = jax.grad(
        lambda q, k, v: jnp.sum(_plain_softmax_attention(q, k, v, mask) ** 2), argnums=(0, 1, 2)
    )(q, k, v)
    for got, ref in zip(grads, want, strict=True):
        assert got.dtype == jnp.bfloat16
        np.testing.assert_allclose(np.asarray(got, np.float32), ref, atol=0.1 * np.abs(ref).max())
    dv = jax.grad(lambda v: jnp.sum(ops.attention(q, k, v) ** 2))(v.astype(jnp.bfloat16))
    assert dv.dtype == jnp.bfloat16


@pytest.mark.parametrize("normalizer", ["sparsemax", "entmax15", "entmax_bisect"])
def test_other_normalizers_gradients_match_autodiff(qkv, normalizer):
    """The softmax fast path must not capture the sparse normalizers (their own VJPs run)."""
    q, k, v = qkv
    mask = _MASKS["per_query_and_empty_rows"]
    norm = MAPS[normalizer]

    def plain(q):
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(D)
        w = jnp.where(mask, norm(jnp.where(mask, logits, -1e4)), 0)
        w = jnp.where(jnp.any(mask, axis=-1, keepdims=True), w, 0)
        return jnp.sum(jnp.einsum("bhqk,bkhd->bqhd", w, v) ** 2)

    ours = jax.grad(
        lambda q: jnp.sum(ops.attention(q, k, v, normalizer=normalizer, mask=mask) ** 2)
    )
    np.testing.assert_allclose(ours(q), jax.grad(plain)(q), atol=1e-4, rtol=1e-4)


def test_forward_mode_needs_the_unfused_softmax_path():
    rng = np.random.default_rng(11)
    q, k, v = (jnp.asarray(rng.normal(size=(2, 5, 3, 4)), jnp.float32) for _ in range(3))
    mask = jnp.asarray(rng.random((2, 1, 5, 5)) > 0.3)
    fused = lambda q: ops.attention(q, k, v, mask=mask)  # noqa: E731
    plain = lambda q: ops.attention(q, k, v, mask=mask, fused_vjp=False)  # noqa: E731
    with pytest.raises(TypeError, match="custom_vjp"):
        jax.jvp(fused, (q,), (q,))
    out, tangent = jax.jvp(plain, (q,), (q,))
    np.testing.assert_allclose(out, fused(q), atol=1e-5, rtol=1e-5)  # unfused vs fused
    reverse = jax.jacrev(fused)(q)  # the fused backward
    forward = jax.jacfwd(plain)(q)
    np.testing.assert_allclose(forward, reverse, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(
        tangent, jnp.einsum("...ijkl,ijkl->...", reverse, q), atol=1e-5, rtol=1e-5
    )
