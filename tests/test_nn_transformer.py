"""Transformer blocks: every attention normalizer, learnable per-head alpha, masks, dtype,
the attention_impl choice (see also tests/test_nn_attention.py)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emojax import ops
from emojax.nn.transformer import (
    EncoderBlock,
    MultiHeadAttention,
    TransformerEncoder,
    causal_mask,
    exact_gelu,
    padding_mask,
    softmax_attention,
)

X = jnp.asarray(np.random.RandomState(0).randn(2, 5, 16), jnp.float32)


@pytest.mark.parametrize("normalizer", ["softmax", "sparsemax", "entmax15", "entmax_bisect"])
def test_attention_matches_ops_attention_for_every_normalizer(normalizer):
    mha = MultiHeadAttention(4, normalizer=normalizer)
    variables = mha.init(jax.random.key(0), X)
    mask = padding_mask(jnp.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]))
    out = mha.apply(variables, X, mask)
    p = variables["params"]
    proj = lambda name: (X @ p[name]["kernel"].value + p[name]["bias"].value).reshape(2, 5, 4, 4)
    alpha = None
    if normalizer == "entmax_bisect":
        alpha = ops.alpha_from_raw(p["alpha_raw"].value, min_alpha=1.01, max_alpha=2.0)
        np.testing.assert_allclose(alpha, 1.5, atol=1e-6)  # alpha_init
    ctx = ops.attention(
        proj("query"), proj("key"), proj("value"), normalizer=normalizer, alpha=alpha, mask=mask
    )
    want = ctx.reshape(2, 5, 16) @ p["out"]["kernel"].value + p["out"]["bias"].value
    np.testing.assert_allclose(out, want, atol=2e-5, rtol=1e-5)  # bisection/matmul round-off


def test_qkv_without_bias_keeps_the_three_dense_param_tree():
    mha = MultiHeadAttention(4, use_bias=False)
    variables = mha.init(jax.random.key(0), X)
    p = variables["params"]
    assert {name: sorted(p[name]) for name in p} == {
        "query": ["kernel"],
        "key": ["kernel"],
        "value": ["kernel"],
        "out": ["kernel"],
    }
    assert p["query"]["kernel"].names == ("embed", "joined_kv")
    proj = lambda name: (X @ p[name]["kernel"].value).reshape(2, 5, 4, 4)
    ctx = jax.nn.dot_product_attention(proj("query"), proj("key"), proj("value"))
    want = ctx.reshape(2, 5, 16) @ p["out"]["kernel"].value
    np.testing.assert_allclose(mha.apply(variables, X), want, atol=1e-5, rtol=1e-5)


def test_learnable_alpha_gets_gradients_and_stays_in_range():
    block = EncoderBlock(4, 32, normalizer="entmax_bisect", alpha_init=1.3)
    variables = block.init(jax.random.key(0), X)
    assert variables["params"]["attn"]["alpha_raw"].value.shape == (4,)
    assert variables["params"]["attn"]["alpha_raw"].names == ("heads",)

    def loss(params):
        return jnp.sum(block.apply({"params": params}, X) ** 2)

    params = nn.meta.unbox(variables["params"])
    grads = jax.jit(jax.grad(loss))(params)
    g = grads["attn"]["alpha_raw"]
    assert g.shape == (4,) and bool(jnp.all(jnp.isfinite(g))) and bool(jnp.any(g != 0))
    # a raw value driven far out by training still maps to a valid alpha: finite outputs
    params["attn"]["alpha_raw"] = jnp.array([-1e4, 1e4, -50.0, 50.0])
    out = jax.jit(block.apply)({"params": params}, X)
    assert bool(jnp.all(jnp.isfinite(out)))


def test_causal_mask_blocks_the_future():
    enc = TransformerEncoder(2, 4, 32)
    variables = enc.init(jax.random.key(0), X)
    out = enc.apply(variables, X, causal_mask(5))
    changed = X.at[:, 3:].set(7.0)
    out2 = enc.apply(variables, changed, causal_mask(5))
    np.testing.assert_allclose(out[:, :3], out2[:, :3], atol=1e-5, rtol=1e-5)
    assert not np.allclose(out[:, 3:], out2[:, 3:])


def test_remat_keeps_params_outputs_and_gradients():
    plain, remat = TransformerEncoder(2, 4, 32), TransformerEncoder(2, 4, 32, remat=True)
    variables = plain.init(jax.random.key(0), X)
    assert jax.tree.structure(remat.init(jax.random.key(0), X)) == jax.tree.structure(variables)
    loss = lambda enc: jax.jit(jax.value_and_grad(lambda v: jnp.sum(enc.apply(v, X) ** 2)))
    (l1, g1), (l2, g2) = loss(plain)(variables), loss(remat)(variables)
    # remat recomputes under different fusions: round-off only
    np.testing.assert_allclose(l1, l2, rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5), g1, g2)


def test_bfloat16_compute_and_logical_names():
    enc = TransformerEncoder(1, 4, 32, dtype=jnp.bfloat16)
    variables = enc.init(jax.random.key(0), X)
    assert enc.apply(variables, X).dtype == jnp.bfloat16
    params = variables["params"]["layer_0"]
    assert params["attn"]["query"]["kernel"].names == ("embed", "joined_kv")
    assert params["mlp"]["fc1"]["kernel"].names == ("embed", "mlp")
    assert params["attn"]["query"]["kernel"].value.dtype == jnp.float32


def test_bad_configuration_errors():
    with pytest.raises(ValueError, match="normalizer"):
        MultiHeadAttention(4, normalizer="relu").init(jax.random.key(0), X)
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(3).init(jax.random.key(0), X)
    with pytest.raises(ValueError, match="activation"):
        EncoderBlock(4, 8, activation="swishy").init(jax.random.key(0), X)


def test_exact_gelu_custom_jvp_matches_autodiff_of_the_erf_formula():
    x = jnp.linspace(-9.0, 9.0, 301).reshape(7, 43)
    cot = jnp.cos(3 * x)  # non-uniform cotangent
    plain = lambda x: x * (jax.lax.erf(x / np.sqrt(2)) + 1) / 2  # noqa: E731
    np.testing.assert_allclose(exact_gelu(x), plain(x), atol=1e-6, rtol=1e-6)  # |x| up to 9
    ours = jax.jit(jax.grad(lambda x: jnp.sum(exact_gelu(x) * cot)))(x)
    want = jax.grad(lambda x: jnp.sum(plain(x) * cot))(x)
    np.testing.assert_allclose(ours, want, rtol=1e-5, atol=1e-6)
    half = jax.grad(lambda x: jnp.sum(exact_gelu(x).astype(jnp.float32)))(x.astype(jnp.bfloat16))
    assert half.dtype == jnp.bfloat16
    want_half = jax.grad(lambda x: jnp.sum(plain(x)))(x)
    np.testing.assert_allclose(np.asarray(half, np.float32), want_half, atol=2e-2)
    # forward mode and second derivatives work too
    _, tangent = jax.jvp(exact_gelu, (x,), (cot,))
    np.testing.assert_allclose(tangent, jax.jvp(plain, (x,), (cot,))[1], rtol=1e-5, atol=1e-6)
    second = jax.grad(lambda x: jnp.sum(jax.grad(lambda y: jnp.sum(exact_gelu(y)))(x)))(x)
    want_second = jax.grad(lambda x: jnp.sum(jax.grad(lambda y: jnp.sum(plain(y)))(x)))(x)
    np.testing.assert_allclose(second, want_second, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("normalizer", ["softmax", "entmax15"])
def test_encoder_stack_forward_mode_agrees_with_reverse_mode(normalizer):
    """No custom_vjp on the module path any more: jax.jacfwd works and matches jax.jacrev."""
    x = jnp.asarray(np.random.default_rng(3).normal(size=(2, 6, 16)), jnp.float32)
    mask = jnp.ones((2, 1, 1, 6), bool).at[0, ..., 4:].set(False)
    enc = TransformerEncoder(2, 4, 32, pre_norm=False, normalizer=normalizer)
    variables = enc.init(jax.random.key(0), x, mask)
    f = lambda x: enc.apply(variables, x, mask)  # noqa: E731
    np.testing.assert_allclose(jax.jacfwd(f)(x), jax.jacrev(f)(x), atol=2e-5, rtol=1e-5)


def test_bad_attention_impl_is_a_clear_error():
    for module in (
        MultiHeadAttention(4, attention_impl="flash"),
        EncoderBlock(4, 8, attention_impl="flash"),
        TransformerEncoder(1, 4, 8, attention_impl="flash"),
    ):
        with pytest.raises(ValueError, match=r"attention_impl='flash' is not supported"):
            module.init(jax.random.key(0), X)
    with pytest.raises(ValueError, match="attention_impl"):
        softmax_attention(X[..., None, :], X[..., None, :], X[..., None, :], attention_impl="")


def test_sparse_normalizer_needs_the_xla_attention_impl():
    with pytest.raises(ValueError, match="normalizer='entmax15' needs attention_impl='xla'"):
        MultiHeadAttention(4, "entmax15", attention_impl="cudnn").init(jax.random.key(0), X)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="checks the errors on CPU")
@pytest.mark.parametrize(
    ("impl", "needs"), [("cudnn", "needs a GPU backend"), ("pallas_flash", "needs a TPU backend")]
)
def test_accelerator_only_attention_impls_fail_clearly_on_cpu(impl, needs):
    with pytest.raises(ValueError, match=f"attention_impl='{impl}'.*{needs}.*'cpu'"):
        MultiHeadAttention(4, attention_impl=impl).init(jax.random.key(0), X)
