"""emojax.ops.attention: each normalizer, per-head learnable alpha, masking, vmap/jit, Flax."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

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
    np.testing.assert_allclose(out, expected, atol=1e-5)
    if normalizer == "softmax":
        np.testing.assert_allclose(out, jax.nn.dot_product_attention(q, k, v), atol=1e-5)


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
    np.testing.assert_allclose(weights[:, 1:], sparse[:, 1:], atol=1e-5)


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
    np.testing.assert_allclose(f(q, k, v), ops.attention(q, k, v, normalizer="entmax15"), atol=1e-5)
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
