"""Vision Transformer: patch embedding, class token, pre-norm encoder, pooling options.

Images are NHWC: ``images: [batch, height, width, channels]``. The same module is the image
tower (``pool="cls"`` / ``"mean"``), the CLIP vision tower (``ln_pre=True``, no patch bias,
``quick_gelu``) and the MAE/MIM backbone (``keep_indices`` encodes only the visible patches).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from emojax.nn._config import config_from_dict
from emojax.nn.patch import cls_and_pos_params, flatten_patches, patch_conv, prepend_cls
from emojax.nn.transformer import check_attention_impl, dense, encoder_from_config, layer_norm

Dtype = Any
POOLS = ("cls", "mean", "none")


@dataclasses.dataclass(frozen=True)
class ViTConfig:
    """ViT sizes. Defaults: ViT-S/16 at 224 px."""

    image_size: int = 224
    patch_size: int = 16
    num_channels: int = 3
    hidden_size: int = 384
    num_hidden_layers: int = 12
    num_attention_heads: int = 6
    intermediate_size: int = 1536
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.0
    patch_bias: bool = True
    ln_pre: bool = False  # CLIP's norm after the embeddings
    pool: str = "cls"
    attention_impl: str = "xla"  # softmax attention: "xla" | "cudnn" | "pallas_flash"

    def __post_init__(self):
        check_attention_impl(self.attention_impl)
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size={self.image_size} is not a multiple of patch_size={self.patch_size}"
            )
        if self.pool not in POOLS:
            raise ValueError(f"pool={self.pool!r}; choose one of {POOLS}")

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @classmethod
    def from_dict(cls, config: dict, **overrides) -> ViTConfig:
        """From a Hugging Face ``ViTConfig``/``CLIPVisionConfig`` dict (unknown keys ignored)."""
        return config_from_dict(cls, config, **overrides)


def gather_tokens(tokens: jax.Array, indices: jax.Array) -> jax.Array:
    """``tokens: [batch, n, dim]``, ``indices: [batch, k]`` int -> ``[batch, k, dim]``."""
    return jnp.take_along_axis(tokens, indices[..., None], axis=1)


class ViT(nn.Module):
    """``images: [batch, H, W, C]`` -> hidden states ``[batch, 1 + patches, hidden]`` (final norm
    applied). ``keep_indices: [batch, k]`` (optional) keeps only those patches (MAE encoder)."""

    config: ViTConfig
    with_pooler: bool = False
    normalizer: str = "softmax"
    dtype: Dtype = jnp.float32
    remat: bool = False  # recompute block activations in the backward pass

    def setup(self):
        c = self.config
        self.patch_embed = patch_conv(
            c.hidden_size,
            (c.patch_size, c.patch_size),
            dtype=self.dtype,
            use_bias=c.patch_bias,
        )
        self.cls_token, self.pos_embedding = cls_and_pos_params(self, c.hidden_size, c.num_patches)
        if c.ln_pre:
            self.pre_norm = layer_norm(c.layer_norm_eps, dtype=self.dtype)
        self.encoder = encoder_from_config(
            c,
            pre_norm=True,
            normalizer=self.normalizer,
            dtype=self.dtype,
            remat=self.remat,
        )
        self.norm = layer_norm(c.layer_norm_eps, dtype=self.dtype)
        if self.with_pooler:
            self.pooler = dense(c.hidden_size, ("embed", "mlp"), dtype=self.dtype)

    def patch_tokens(self, images: jax.Array) -> jax.Array:
        """Patch embeddings plus their position embeddings: ``[batch, patches, hidden]``."""
        c = self.config
        want = (c.image_size, c.image_size, c.num_channels)
        if images.ndim != 4 or tuple(images.shape[1:]) != want:
            raise ValueError(
                f"images must be [batch, {want[0]}, {want[1]}, {want[2]}] (NHWC), "
                f"got shape {images.shape}"
            )
        x = self.patch_embed(images.astype(self.dtype))
        return flatten_patches(x) + self.pos_embedding[:, 1:].astype(self.dtype)

    def __call__(self, images, *, keep_indices=None, train: bool = False):
        x = self.patch_tokens(images)
        if keep_indices is not None:
            x = gather_tokens(x, keep_indices)
        x = prepend_cls(x, self.cls_token, self.pos_embedding, self.dtype)
        if self.config.ln_pre:
            x = self.pre_norm(x)
        hidden = self.norm(self.encoder(x, None, train=train))
        if self.with_pooler and self.is_initializing():
            self.pooled(hidden)
        return hidden

    def pooled(self, hidden: jax.Array) -> jax.Array:
        """``hidden: [batch, 1 + n, hidden]`` -> ``[batch, hidden]`` by ``config.pool`` (CLS
        token or mean of patch tokens); with ``with_pooler`` the HF ViT pooler
        ``tanh(W h_cls + b)``."""
        if self.with_pooler:
            return jnp.tanh(self.pooler(hidden[:, 0]))
        if self.config.pool == "cls":
            return hidden[:, 0]
        if self.config.pool == "mean":
            return jnp.mean(hidden[:, 1:], axis=1)
        raise ValueError("config.pool='none' has no pooled output; use the hidden states")

    def embed(self, images: jax.Array, *, train: bool = False) -> jax.Array:
        """Pooled image embedding ``[batch, hidden]``."""
        return self.pooled(self(images, train=train))
