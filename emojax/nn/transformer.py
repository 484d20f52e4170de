"""Transformer building blocks: multi-head attention, MLP, encoder block and encoder stack.

The attention normalizer is ``softmax`` (``jax.nn.dot_product_attention``, implementation picked
by ``attention_impl``: :func:`softmax_attention`) or a sparse one from :func:`emojax.ops.attention`
(``sparsemax``, ``entmax15``, ``entmax_bisect``); ``entmax_bisect`` learns one alpha per head,
kept in [1.01, 2] by :func:`emojax.ops.alpha_from_raw`.

Dense layers are flax's ``nn.Dense`` and norms ``nn.LayerNorm``; parameters are float32 and
annotated with the logical axis names of ``emojax/parallel/axes.py``; ``dtype`` is the compute
dtype. Blocks are post-norm (BERT) or pre-norm (ViT, CLIP). Attention-probability dropout is not
applied; hidden dropout is.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from emojax import ops
from emojax.nn.alpha import learnable_alpha
from emojax.ops import _common as ops_common

Dtype = Any
NORMALIZERS = ("softmax", "sparsemax", "entmax15", "entmax_bisect")
# how softmax attention runs (see softmax_attention); the config key ``attention_impl``
ATTENTION_IMPLS = ("xla", "cudnn", "pallas_flash")
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


def dense(
    features: int,
    axes: tuple[str, str],
    *,
    dtype: Dtype,
    use_bias: bool = True,
    name: str | None = None,
    init_std: float = 0.02,
) -> nn.Dense:
    """``nn.Dense`` (float32 params ``kernel`` [in, features] and ``bias`` [features], compute in
    ``dtype``) whose kernel and bias carry logical axis names (``axes`` = (in, out))."""
    return nn.Dense(
        features,
        use_bias=use_bias,
        dtype=dtype,
        param_dtype=jnp.float32,
        kernel_init=dense_kernel_init(init_std, axes),
        bias_init=dense_bias_init(axes),
        name=name,
    )


def layer_norm(eps: float, *, dtype: Dtype, name: str | None = None) -> nn.LayerNorm:
    """``nn.LayerNorm`` over the last axis with epsilon ``eps``: float32 params ``scale`` and
    ``bias`` [E] (logical axis ``norm``), statistics in float32 with the two-pass variance (the
    mean of squared deviations, as torch computes it), output in ``dtype``."""
    init = lambda base: nn.with_logical_partitioning(base, ("norm",))  # noqa: E731
    return nn.LayerNorm(
        epsilon=eps,
        dtype=dtype,
        param_dtype=jnp.float32,
        use_fast_variance=False,
        scale_init=init(nn.initializers.ones_init()),
        bias_init=init(nn.initializers.zeros_init()),
        name=name,
    )


def padding_mask(attention_mask: jax.Array) -> jax.Array:
    """``attention_mask: [batch, k_len]`` (1 = token, 0 = pad) -> ``[batch, 1, 1, k_len]`` bool."""
    return attention_mask.astype(bool)[:, None, None, :]


def causal_mask(length: int) -> jax.Array:
    """``[1, 1, length, length]`` bool, True where key position <= query position."""
    return jnp.tril(jnp.ones((length, length), dtype=bool))[None, None]


def check_attention_impl(attention_impl: str) -> str:
    """``attention_impl`` if it is one of :data:`ATTENTION_IMPLS`, else a ValueError."""
    if attention_impl not in ATTENTION_IMPLS:
        raise ValueError(
            f"attention_impl={attention_impl!r} is not supported; choose one of {ATTENTION_IMPLS}"
        )
    return attention_impl


def _key_padding(mask: jax.Array) -> jax.Array | None:
    """A 4-D mask ``[batch or 1, 1, 1, k_len]`` (one row of valid keys per sample) as
    ``[batch or 1, k_len]``; None for any other mask (it varies over heads or queries)."""
    if mask.shape[1] != 1 or mask.shape[2] != 1:
        return None
    return mask[:, 0, 0, :]


def _pallas_flash(q, k, v, mask, scale: float) -> jax.Array:
    """Pallas' TPU flash attention (imported only here): layout ``[batch, heads, len, head_dim]``;
    a key-padding mask goes in as segment ids (padding = segment 0), any other mask as an
    additive bias of the full logits shape."""
    try:
        from jax.experimental.pallas.ops.tpu import flash_attention as pallas_flash
    except ImportError as e:  # pragma: no cover - depends on the jax build
        raise ValueError(
            "attention_impl='pallas_flash' needs jax.experimental.pallas.ops.tpu.flash_attention, "
            f"which this jax cannot import ({e}); use attention_impl='xla'"
        ) from e
    b, q_len, heads, _ = q.shape
    k_len = k.shape[1]
    qh, kh, vh = (jnp.swapaxes(t, 1, 2) for t in (q, k, v))
    segment_ids = bias = None
    if mask is not None:
        keys = _key_padding(mask)
        if keys is not None:
            kv = jnp.broadcast_to(keys, (b, k_len)).astype(jnp.int32)
            segment_ids = pallas_flash.SegmentIds(q=jnp.ones((b, q_len), jnp.int32), kv=kv)
        else:
            full = jnp.broadcast_to(mask, (b, heads, q_len, k_len))
            bias = jnp.where(full, 0.0, pallas_flash.DEFAULT_MASK_VALUE).astype(jnp.float32)
    out = pallas_flash.flash_attention(qh, kh, vh, bias, segment_ids, sm_scale=scale)
    return jnp.swapaxes(out, 1, 2)


def softmax_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    mask: jax.Array | None = None,
    *,
    attention_impl: str = "xla",
) -> jax.Array:
    """Softmax attention, scale ``1/sqrt(head_dim)``, by ``jax.nn.dot_product_attention`` (or,
    with ``attention_impl="pallas_flash"``, Pallas' TPU flash attention).

    ``q: [..., q_len, heads, head_dim]``, ``k, v: [..., k_len, heads, head_dim]`` ->
    ``[..., q_len, heads, head_dim]``. ``mask``: bool broadcastable to
    ``[..., heads, q_len, k_len]``, True = attend; a query with no key to attend to gets a zero
    output (as ``emojax.ops.attention``).

    ``attention_impl`` (:data:`ATTENTION_IMPLS`):

    - ``"xla"`` (default, every backend): ``implementation=None``, i.e. JAX picks (today its
      XLA lowering: einsum, masked softmax in float32, einsum);
    - ``"cudnn"``: cuDNN's fused flash attention (``implementation="cudnn"``); GPU backend and
      bfloat16/float16 inputs only;
    - ``"pallas_flash"``: ``jax.experimental.pallas.ops.tpu.flash_attention``; TPU backend only.
    """
    check_attention_impl(attention_impl)
    backend = jax.default_backend()
    if attention_impl == "cudnn":
        if backend != "gpu":
            raise ValueError(
                f"attention_impl='cudnn' needs a GPU backend, but JAX's default backend is "
                f"{backend!r}; use attention_impl='xla'"
            )
        if q.dtype not in (jnp.bfloat16, jnp.float16):
            raise ValueError(
                f"attention_impl='cudnn' needs bfloat16 or float16 q/k/v (cuDNN's flash "
                f"attention), got {q.dtype}; set the compute dtype or use attention_impl='xla'"
            )
    if attention_impl == "pallas_flash" and backend != "tpu":
        raise ValueError(
            f"attention_impl='pallas_flash' (Pallas' TPU flash attention) needs a TPU backend, "
            f"but JAX's default backend is {backend!r}; use attention_impl='xla'"
        )
    if q.ndim < 3 or k.ndim != q.ndim or v.ndim != q.ndim:
        raise ValueError(
            f"attention: q, k, v must all be [..., len, heads, head_dim] with the same rank, got "
            f"q {q.shape}, k {k.shape}, v {v.shape}."
        )
    batch_shape = q.shape[:-3]
    logits_shape = batch_shape + (q.shape[-2], q.shape[-3], k.shape[-3])
    keep = None
    if mask is not None:
        mask = ops_common.check_mask(mask, logits_shape, "attention")
        # [batch, heads or 1, q_len or 1, k_len or 1] with one flattened batch axis
        mask = mask.reshape((1,) * (len(logits_shape) - mask.ndim) + mask.shape)
        if len(batch_shape) != 1:
            mask = jnp.broadcast_to(mask, batch_shape + mask.shape[-3:])
            mask = mask.reshape((-1,) + mask.shape[-3:])
        mask = jnp.broadcast_to(mask, mask.shape[:3] + (k.shape[-3],))
        keep = jnp.any(mask, axis=-1)  # [batch, heads or 1, q_len or 1]
    flat = lambda t: t.reshape((-1,) + t.shape[-3:])  # noqa: E731
    q4, k4, v4 = flat(q), flat(k), flat(v)
    scale = 1.0 / math.sqrt(q.shape[-1])
    if attention_impl == "pallas_flash":
        out = _pallas_flash(q4, k4, v4, mask, scale)
    else:
        if attention_impl == "cudnn" and mask is not None:
            # cuDNN takes the mask as a bias, which must span the full q_len and k_len
            mask = jnp.broadcast_to(mask, mask.shape[:2] + (q.shape[-3], k.shape[-3]))
        implementation = "cudnn" if attention_impl == "cudnn" else None
        out = jax.nn.dot_product_attention(
            q4, k4, v4, mask=mask, scale=scale, implementation=implementation
        )
    if keep is not None:
        out = jnp.where(jnp.swapaxes(keep, 1, 2)[..., None], out, 0)  # [b, q_len, heads, 1]
    return out.reshape(q.shape[:-1] + v.shape[-1:])


class MultiHeadAttention(nn.Module):
    """Self-attention: ``x: [batch, length, embed] -> [batch, length, embed]``.

    Params ``query``/``key``/``value``/``out`` (``nn.Dense``, heads joined on the feature axis)
    and, for ``normalizer="entmax_bisect"``, ``alpha_raw: [heads]`` mapped to alpha in (1, 2].
    ``mask`` is bool, broadcastable to ``[batch, heads, q_len, k_len]`` (True = attend).

    Softmax runs as :func:`softmax_attention` (``jax.nn.dot_product_attention``) with
    ``attention_impl`` (:data:`ATTENTION_IMPLS`); the sparse normalizers run as
    :func:`emojax.ops.attention` and need ``attention_impl="xla"``.
    """

    num_heads: int
    normalizer: str = "softmax"
    alpha_init: float = 1.5
    use_bias: bool = True
    dtype: Dtype = jnp.float32
    attention_impl: str = "xla"

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        if self.normalizer not in NORMALIZERS:
            raise ValueError(f"normalizer={self.normalizer!r}; choose one of {NORMALIZERS}")
        check_attention_impl(self.attention_impl)
        if self.normalizer != "softmax" and self.attention_impl != "xla":
            raise ValueError(
                f"attention_impl={self.attention_impl!r} computes softmax attention only; "
                f"normalizer={self.normalizer!r} needs attention_impl='xla'"
            )
        embed = x.shape[-1]
        if embed % self.num_heads:
            raise ValueError(f"embed dim {embed} is not divisible by num_heads={self.num_heads}")
        head_dim = embed // self.num_heads

        def project(name: str) -> jax.Array:
            y = dense(
                embed, ("embed", "joined_kv"), dtype=self.dtype, use_bias=self.use_bias, name=name
            )(x)
            y = y.reshape(x.shape[:-1] + (self.num_heads, head_dim))
            return nn.with_logical_constraint(y, ("batch", "length", "heads", "kv"))

        q, k, v = project("query"), project("key"), project("value")
        if self.normalizer == "softmax":
            ctx = softmax_attention(q, k, v, mask, attention_impl=self.attention_impl)
        else:
            alpha = None
            if self.normalizer == "entmax_bisect":
                alpha = learnable_alpha(  # [heads]
                    self,
                    "alpha_raw",
                    self.alpha_init,
                    shape=(self.num_heads,),
                    axes=("heads",),
                    **ALPHA_RANGE,
                )
            ctx = ops.attention(q, k, v, normalizer=self.normalizer, alpha=alpha, mask=mask)
        ctx = ctx.astype(self.dtype).reshape(ctx.shape[:-2] + (embed,))
        return dense(
            embed, ("joined_kv", "embed"), dtype=self.dtype, use_bias=self.use_bias, name="out"
        )(ctx)


class Mlp(nn.Module):
    """Position-wise feed-forward: ``fc2(act(fc1(x)))``, ``x: [..., embed]``."""

    mlp_dim: int
    activation: str = "gelu"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fc1 = dense(self.mlp_dim, ("embed", "mlp"), dtype=self.dtype, name="fc1")
        fc2 = dense(x.shape[-1], ("mlp", "embed"), dtype=self.dtype, name="fc2")
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
    attention_impl: str = "xla"  # see MultiHeadAttention

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array | None = None, train: bool = False):
        attn = MultiHeadAttention(
            self.num_heads,
            self.normalizer,
            self.alpha_init,
            dtype=self.dtype,
            attention_impl=self.attention_impl,
            name="attn",
        )
        mlp = Mlp(self.mlp_dim, self.activation, dtype=self.dtype, name="mlp")
        norm1 = layer_norm(self.layer_norm_eps, dtype=self.dtype, name="norm1")
        norm2 = layer_norm(self.layer_norm_eps, dtype=self.dtype, name="norm2")
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
    attention_impl: str = "xla"  # see MultiHeadAttention

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
                attention_impl=self.attention_impl,
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
    name: str | None = None,
) -> TransformerEncoder:
    """A :class:`TransformerEncoder` sized by a config with Hugging Face field names
    (``num_hidden_layers``, ``num_attention_heads``, ``intermediate_size``, ``hidden_act``,
    ``layer_norm_eps``, optional ``hidden_dropout_prob``, else no dropout) and emojax's optional
    ``attention_impl`` (:data:`ATTENTION_IMPLS`, else ``"xla"``)."""
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
        attention_impl=check_attention_impl(getattr(config, "attention_impl", "xla")),
        name=name,
    )
