"""Transformer building blocks: multi-head attention, MLP, encoder block and encoder stack.

The attention normalizer is chosen from :func:`emojax.ops.attention` (``softmax``, ``sparsemax``,
``entmax15``, ``entmax_bisect``); ``entmax_bisect`` learns one alpha per head, kept in
[1.01, 2] by :func:`emojax.ops.alpha_from_raw`.

Parameters are float32 and annotated with the logical axis names of ``emojax/parallel/axes.py``;
``dtype`` is the compute dtype. Blocks are post-norm (BERT) or pre-norm (ViT, CLIP).
Attention-probability dropout is not applied (``emojax.ops.attention`` has none); hidden dropout is.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from emojax import ops

Dtype = Any
NORMALIZERS = ("softmax", "sparsemax", "entmax15", "entmax_bisect")
# learnable alpha stays in this range (alpha < 1 is undefined, alpha >> 2 unstable in float32)
ALPHA_RANGE = {"min_alpha": 1.01, "max_alpha": 2.0}


def quick_gelu(x: jax.Array) -> jax.Array:
    """CLIP's sigmoid approximation of GELU: ``x * sigmoid(1.702 x)``."""
    return x * jax.nn.sigmoid(1.702 * x)


def _gelu_cdf_pdf(x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(x, Phi(x), phi(x)) with x promoted to at least float32."""
    xc = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    cdf = 0.5 * (1 + jax.lax.erf(xc * (1 / math.sqrt(2))))
    pdf = jnp.exp(-0.5 * xc * xc) * (1 / math.sqrt(2 * math.pi))
    return xc, cdf, pdf


@jax.custom_jvp
def exact_gelu(x: jax.Array) -> jax.Array:
    """GELU with the erf (PyTorch ``nn.GELU()`` / Hugging Face ``"gelu"``), elementwise:
    ``x Phi(x)``.

    Its JVP is ``Phi(x) + x phi(x)`` times the tangent: reverse mode keeps that one factor (autodiff
    of the erf formula saved erf and exp intermediates, on XLA:CPU two extra passes over the MLP's
    widest activation), and forward mode (jax.jvp, hessians) still works."""
    xc, cdf, _ = _gelu_cdf_pdf(x)
    return (xc * cdf).astype(x.dtype)


@exact_gelu.defjvp
def _exact_gelu_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    xc, cdf, pdf = _gelu_cdf_pdf(x)
    return (xc * cdf).astype(x.dtype), (t * (cdf + xc * pdf)).astype(x.dtype)


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "gelu": exact_gelu,
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "quick_gelu": quick_gelu,
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
}


def activation_fn(name: str) -> Callable[[jax.Array], jax.Array]:
    """Look up an activation by its Hugging Face name (``gelu``, ``quick_gelu``, ``relu`` ...)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def dense_kernel_init(std: float, axes: tuple[str, str]):
    """normal(std) kernel init carrying the logical axis names ``axes`` = (in, out)."""
    return nn.with_logical_partitioning(nn.initializers.normal(std), axes)


def dense_bias_init(axes: tuple[str, str]):
    """zeros bias init carrying the logical name of the output axis ``axes[1]``."""
    return nn.with_logical_partitioning(nn.initializers.zeros_init(), (axes[1],))


def _dense_params(module: nn.Module, in_features: int, features: int, axes, use_bias, init_std):
    """Declare ``kernel`` [in, features] and ``bias`` [features] (or None) on ``module`` as
    ``nn.Dense`` does (float32, same names and inits), with logical axis names."""
    init = dense_kernel_init(init_std, axes)
    kernel = module.param("kernel", init, (in_features, features), jnp.float32)
    if not use_bias:
        return kernel, None
    return kernel, module.param("bias", dense_bias_init(axes), (features,), jnp.float32)


class Dense(nn.Module):
    """``x: [..., in] -> [..., features]`` with ``nn.Dense``'s params (``kernel``, ``bias``;
    weights convert unchanged), computed by :func:`emojax.ops.dense` in ``dtype``: one 2-D
    matmul, on CPU the C++ GEMM. ``fused_vjp=False``: no custom_vjp (jax.jvp works)."""

    features: int
    axes: tuple[str, str]
    use_bias: bool = True
    dtype: Dtype = jnp.float32
    init_std: float = 0.02
    fused_vjp: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel, bias = _dense_params(
            self, x.shape[-1], self.features, self.axes, self.use_bias, self.init_std
        )
        bias = None if bias is None else bias.astype(self.dtype)
        return ops.dense(
            x.astype(self.dtype), kernel.astype(self.dtype), bias, fused_vjp=self.fused_vjp
        )


def dense(
    features: int,
    axes: tuple[str, str],
    *,
    dtype: Dtype,
    use_bias: bool = True,
    name: str | None = None,
    init_std: float = 0.02,
    fused_vjp: bool = True,
) -> Dense:
    """A :class:`Dense` whose kernel and bias carry logical axis names (``axes`` = (in, out))."""
    return Dense(
        features,
        axes,
        use_bias=use_bias,
        dtype=dtype,
        init_std=init_std,
        fused_vjp=fused_vjp,
        name=name,
    )


class LayerNorm(nn.Module):
    """LayerNorm over the last axis with ``nn.LayerNorm``'s params (``scale`` [E], ``bias`` [E],
    float32, logical axis ``norm``), computed by :func:`emojax.ops.layer_norm` (statistics in
    float32, output in ``dtype``). ``fused_vjp=False``: no custom_vjp (jax.jvp works)."""

    epsilon: float = 1e-6
    dtype: Dtype = jnp.float32
    fused_vjp: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        features = (x.shape[-1],)
        init = lambda base: nn.with_logical_partitioning(base, ("norm",))  # noqa: E731
        scale = self.param("scale", init(nn.initializers.ones_init()), features, jnp.float32)
        bias = self.param("bias", init(nn.initializers.zeros_init()), features, jnp.float32)
        y = ops.layer_norm(x, scale, bias, eps=self.epsilon, fused_vjp=self.fused_vjp)
        return y.astype(self.dtype)


def layer_norm(
    eps: float, *, dtype: Dtype, fused_vjp: bool = True, name: str | None = None
) -> LayerNorm:
    """:class:`LayerNorm` with epsilon ``eps`` (statistics are computed in float32)."""
    return LayerNorm(epsilon=eps, dtype=dtype, fused_vjp=fused_vjp, name=name)


def padding_mask(attention_mask: jax.Array) -> jax.Array:
    """``attention_mask: [batch, k_len]`` (1 = token, 0 = pad) -> ``[batch, 1, 1, k_len]`` bool."""
    return attention_mask.astype(bool)[:, None, None, :]


def causal_mask(length: int) -> jax.Array:
    """``[1, 1, length, length]`` bool, True where key position <= query position."""
    return jnp.tril(jnp.ones((length, length), dtype=bool))[None, None]


class DenseParams(nn.Module):
    """The ``kernel`` [in, features] and ``bias`` [features] of an ``nn.Dense`` made by
    :func:`dense`, returned instead of applied (for fused matmuls). ``bias`` is None without
    ``use_bias``."""

    in_features: int
    features: int
    axes: tuple[str, str]
    use_bias: bool = True
    init_std: float = 0.02

    @nn.compact
    def __call__(self) -> tuple[jax.Array, jax.Array | None]:
        return _dense_params(
            self, self.in_features, self.features, self.axes, self.use_bias, self.init_std
        )


class MultiHeadAttention(nn.Module):
    """Self-attention: ``x: [batch, length, embed] -> [batch, length, embed]``.

    Params ``query``/``key``/``value``/``out`` (Dense, heads joined on the feature axis) and, for
    ``normalizer="entmax_bisect"``, ``alpha_raw: [heads]`` mapped to alpha in (1, 2].
    ``mask`` is bool, broadcastable to ``[batch, heads, q_len, k_len]`` (True = attend).
    """

    num_heads: int
    normalizer: str = "softmax"
    alpha_init: float = 1.5
    use_bias: bool = True
    dtype: Dtype = jnp.float32
    fused_vjp: bool = True  # False: forward-mode autodiff (jax.jvp) works; see ops.attention

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        if self.normalizer not in NORMALIZERS:
            raise ValueError(f"normalizer={self.normalizer!r}; choose one of {NORMALIZERS}")
        embed = x.shape[-1]
        if embed % self.num_heads:
            raise ValueError(f"embed dim {embed} is not divisible by num_heads={self.num_heads}")
        head_dim = embed // self.num_heads
        qkv, qkv_bias = self._qkv(x)
        qkv = qkv.reshape(x.shape[:-1] + (3, self.num_heads, head_dim))
        qkv = nn.with_logical_constraint(qkv, ("batch", "length", None, "heads", "kv"))
        if qkv_bias is not None:
            qkv_bias = qkv_bias.reshape(3, self.num_heads, head_dim)
        alpha = None
        if self.normalizer == "entmax_bisect":
            lo, hi = ALPHA_RANGE["min_alpha"], ALPHA_RANGE["max_alpha"]
            if not lo < self.alpha_init < hi:
                raise ValueError(f"alpha_init={self.alpha_init} must lie in ({lo}, {hi})")
            init = lambda key, shape, dtype: jnp.full(
                shape, ops.raw_from_alpha(self.alpha_init, **ALPHA_RANGE), dtype
            )
            alpha_raw = self.param(
                "alpha_raw",
                nn.with_logical_partitioning(init, ("heads",)),
                (self.num_heads,),
                jnp.float32,
            )
            alpha = ops.alpha_from_raw(alpha_raw, **ALPHA_RANGE)  # [heads]
        ctx = ops.self_attention(
            qkv,
            normalizer=self.normalizer,
            alpha=alpha,
            mask=mask,
            fused_vjp=self.fused_vjp,
            qkv_bias=qkv_bias,
        )
        ctx = ctx.astype(self.dtype).reshape(ctx.shape[:-2] + (embed,))
        return dense(
            embed,
            ("joined_kv", "embed"),
            dtype=self.dtype,
            use_bias=self.use_bias,
            fused_vjp=self.fused_vjp,
            name="out",
        )(ctx)

    def _qkv(self, x: jax.Array) -> tuple[jax.Array, jax.Array | None]:
        """q, k, v packed as ``[..., length, 3, embed]`` from ONE matmul with the three kernels
        stacked, WITHOUT the bias, and the biases stacked ``[3, embed]`` (None without
        ``use_bias``): ``ops.self_attention`` adds them as it reads q, k, v.

        Params stay ``query``/``key``/``value`` with ``kernel`` [embed, embed] and ``bias``, as
        three ``nn.Dense`` would hold them (weights convert unchanged). One [embed, 3, embed]
        matmul instead of three: XLA:CPU runs it ~15% faster, the backward has one input-gradient
        matmul instead of three plus two adds, and the stacked axis is not the sharded one."""
        embed = x.shape[-1]
        params = [
            DenseParams(embed, embed, ("embed", "joined_kv"), self.use_bias, name=n)()
            for n in ("query", "key", "value")
        ]
        kernel = jnp.stack([kernel for kernel, _ in params], axis=1).astype(self.dtype)
        y = ops.dense(x.astype(self.dtype), kernel, fused_vjp=self.fused_vjp)  # [..., 3, embed]
        bias = jnp.stack([b for _, b in params]).astype(self.dtype) if self.use_bias else None
        return y, bias


class Mlp(nn.Module):
    """Position-wise feed-forward: ``fc2(act(fc1(x)))``, ``x: [..., embed]``."""

    mlp_dim: int
    activation: str = "gelu"
    dtype: Dtype = jnp.float32
    fused_vjp: bool = True  # see Dense

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fc1 = dense(
            self.mlp_dim, ("embed", "mlp"), dtype=self.dtype, fused_vjp=self.fused_vjp, name="fc1"
        )
        fc2 = dense(
            x.shape[-1], ("mlp", "embed"), dtype=self.dtype, fused_vjp=self.fused_vjp, name="fc2"
        )
        h = activation_fn(self.activation)(fc1(x))
        h = nn.with_logical_constraint(h, ("batch", "length", "mlp"))
        return fc2(h)


class EncoderBlock(nn.Module):
    """One transformer layer, ``x: [batch, length, embed]``.

    ``pre_norm=True``: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))`` (ViT, CLIP);
    ``pre_norm=False``: ``norm1(x + attn(x))`` then ``norm2(x + mlp(x))`` (BERT).
    """

    num_heads: int
    mlp_dim: int
    pre_norm: bool = True
    activation: str = "gelu"
    normalizer: str = "softmax"
    alpha_init: float = 1.5
    layer_norm_eps: float = 1e-12
    dropout_rate: float = 0.0
    dtype: Dtype = jnp.float32
    fused_vjp: bool = True  # see MultiHeadAttention

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array | None = None, train: bool = False):
        attn = MultiHeadAttention(
            self.num_heads,
            self.normalizer,
            self.alpha_init,
            dtype=self.dtype,
            fused_vjp=self.fused_vjp,
            name="attn",
        )
        mlp = Mlp(
            self.mlp_dim, self.activation, dtype=self.dtype, fused_vjp=self.fused_vjp, name="mlp"
        )
        norm1 = layer_norm(
            self.layer_norm_eps, dtype=self.dtype, fused_vjp=self.fused_vjp, name="norm1"
        )
        norm2 = layer_norm(
            self.layer_norm_eps, dtype=self.dtype, fused_vjp=self.fused_vjp, name="norm2"
        )
        drop = nn.Dropout(self.dropout_rate, deterministic=not train)
        if self.pre_norm:
            x = x + drop(attn(norm1(x), mask))
            x = x + drop(mlp(norm2(x)))
        else:
            x = norm1(x + drop(attn(x, mask)))
            x = norm2(x + drop(mlp(x)))
        return nn.with_logical_constraint(x, ("batch", "length", "embed"))


class TransformerEncoder(nn.Module):
    """A stack of ``num_layers`` :class:`EncoderBlock` s named ``layer_0 ... layer_{n-1}``.

    ``x: [batch, length, embed]``; ``mask``: bool, broadcastable to
    ``[batch, heads, length, length]``.
    Returns ``[batch, length, embed]`` (no final norm: models add their own).
    ``remat=True`` recomputes each block's activations in the backward pass (same params and
    outputs, less memory: for long sequences and big models).
    """

    num_layers: int
    num_heads: int
    mlp_dim: int
    pre_norm: bool = True
    activation: str = "gelu"
    normalizer: str = "softmax"
    alpha_init: float = 1.5
    layer_norm_eps: float = 1e-12
    dropout_rate: float = 0.0
    dtype: Dtype = jnp.float32
    remat: bool = False
    fused_vjp: bool = True  # False: forward-mode autodiff through the stack (see ops.attention)

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array | None = None, *, train: bool = False):
        x = x.astype(self.dtype)  # the residual stream runs in the compute dtype
        # static_argnums counts self: (self, x, mask, train) -> train is 3
        block = nn.remat(EncoderBlock, static_argnums=(3,)) if self.remat else EncoderBlock
        for i in range(self.num_layers):
            x = block(
                self.num_heads,
                self.mlp_dim,
                self.pre_norm,
                self.activation,
                self.normalizer,
                self.alpha_init,
                self.layer_norm_eps,
                self.dropout_rate,
                self.dtype,
                fused_vjp=self.fused_vjp,
                name=f"layer_{i}",
            )(x, mask, train)
        return x


def encoder_from_config(
    config: Any,
    *,
    pre_norm: bool,
    normalizer: str,
    dtype: Dtype,
    remat: bool = False,
    fused_vjp: bool = True,
    name: str | None = None,
) -> TransformerEncoder:
    """A :class:`TransformerEncoder` sized by a config with Hugging Face field names
    (``num_hidden_layers``, ``num_attention_heads``, ``intermediate_size``, ``hidden_act``,
    ``layer_norm_eps``, optional ``hidden_dropout_prob``, else no dropout)."""
    return TransformerEncoder(
        config.num_hidden_layers,
        config.num_attention_heads,
        config.intermediate_size,
        pre_norm=pre_norm,
        activation=config.hidden_act,
        normalizer=normalizer,
        layer_norm_eps=config.layer_norm_eps,
        dropout_rate=getattr(config, "hidden_dropout_prob", 0.0),
        dtype=dtype,
        remat=remat,
        fused_vjp=fused_vjp,
        name=name,
    )
