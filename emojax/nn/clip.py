"""CLIP-style two-tower model: ViT image tower + causal text transformer, projections, logit scale.

The text tower is pre-norm with a causal mask (plus the padding mask), a final norm and
end-of-text (EOT) pooling: the first position holding ``eos_token_id``, or, when
``eos_token_id == 2`` (old Hugging Face configs), the position of the largest token id
(the original CLIP rule). Both towers are projected without bias and L2-normalised;
``logits_per_image = exp(logit_scale) * image_embeds @ text_embeds.T``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from emojax.nn._checks import check_indices
from emojax.nn._config import config_from_dict
from emojax.nn.bert import l2_normalize
from emojax.nn.transformer import (
    causal_mask,
    check_attention_impl,
    dense,
    encoder_from_config,
    layer_norm,
    padding_mask,
)
from emojax.nn.vit import ViT, ViTConfig

Dtype = Any


@dataclasses.dataclass(frozen=True)
class CLIPTextConfig:
    """Text tower sizes (defaults: CLIP ViT-B text transformer)."""

    vocab_size: int = 49408
    hidden_size: int = 512
    intermediate_size: int = 2048
    num_hidden_layers: int = 12
    num_attention_heads: int = 8
    max_position_embeddings: int = 77
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    eos_token_id: int = 49407
    attention_impl: str = "xla"  # softmax attention: "xla" | "cudnn" | "pallas_flash"

    def __post_init__(self):
        check_attention_impl(self.attention_impl)

    @classmethod
    def from_dict(cls, config: dict) -> CLIPTextConfig:
        return config_from_dict(cls, config)


@dataclasses.dataclass(frozen=True)
class CLIPConfig:
    text: CLIPTextConfig = CLIPTextConfig()
    vision: ViTConfig = ViTConfig(
        patch_size=32,
        hidden_size=768,
        num_attention_heads=12,
        intermediate_size=3072,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
        patch_bias=False,
        ln_pre=True,
    )
    projection_dim: int = 512
    logit_scale_init: float = math.log(1 / 0.07)

    @classmethod
    def from_dict(cls, config: dict) -> CLIPConfig:
        """From a Hugging Face ``CLIPConfig`` dict (``text_config`` / ``vision_config`` inside)."""
        vision = ViTConfig.from_dict(
            config["vision_config"],
            patch_bias=False,
            ln_pre=True,
            pool="cls",
        )
        return cls(
            text=CLIPTextConfig.from_dict(config["text_config"]),
            vision=vision,
            projection_dim=config.get("projection_dim", 512),
            logit_scale_init=config.get("logit_scale_init_value", math.log(1 / 0.07)),
        )


def eot_positions(input_ids: jax.Array, eos_token_id: int) -> jax.Array:
    """``input_ids: [batch, length]`` -> index of the end-of-text token per row ``[batch]``."""
    if eos_token_id == 2:
        return jnp.argmax(input_ids, axis=-1)
    return jnp.argmax(input_ids == eos_token_id, axis=-1)


class CLIPTextTransformer(nn.Module):
    """``input_ids, attention_mask: [batch, length]`` -> ``(hidden [batch, length, dim],
    pooled [batch, dim])``."""

    config: CLIPTextConfig
    normalizer: str = "softmax"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, input_ids, attention_mask=None, *, train: bool = False):
        c = self.config
        if input_ids.ndim != 2 or input_ids.shape[1] > c.max_position_embeddings:
            raise ValueError(
                f"input_ids must be [batch, length <= {c.max_position_embeddings}], "
                f"got {input_ids.shape}"
            )
        check_indices("input_ids", input_ids, c.vocab_size, "token ids, vocab_size")
        embed = lambda n, name, axes: nn.Embed(
            n,
            c.hidden_size,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            name=name,
            embedding_init=nn.with_logical_partitioning(nn.initializers.normal(0.02), axes),
        )
        x = embed(c.vocab_size, "token_embedding", ("vocab", "embed"))(input_ids)
        positions = jnp.arange(input_ids.shape[1])[None]
        x = x + embed(c.max_position_embeddings, "position_embedding", (None, "embed"))(positions)
        mask = causal_mask(input_ids.shape[1])
        if attention_mask is not None:
            mask = mask & padding_mask(attention_mask)
        x = encoder_from_config(
            c,
            pre_norm=True,
            normalizer=self.normalizer,
            dtype=self.dtype,
            name="encoder",
        )(x, mask, train=train)
        hidden = layer_norm(c.layer_norm_eps, dtype=self.dtype, name="final_norm")(x)
        pooled = jnp.take_along_axis(
            hidden, eot_positions(input_ids, c.eos_token_id)[:, None, None], axis=1
        )[:, 0]
        return hidden, pooled


class CLIP(nn.Module):
    """Two towers. ``images: [batch_i, H, W, C]`` (NHWC), ``input_ids: [batch_t, length]``.

    ``__call__`` returns a dict: ``image_embeds [batch_i, P]``, ``text_embeds [batch_t, P]``
    (both L2-normalised, float32), ``logit_scale`` (the log), ``logits_per_image [batch_i,
    batch_t]``. :meth:`encode_image` / :meth:`encode_text` give the unnormalised projections.
    """

    config: CLIPConfig
    normalizer: str = "softmax"
    dtype: Dtype = jnp.float32

    def setup(self):
        c = self.config
        self.vision = ViT(c.vision, normalizer=self.normalizer, dtype=self.dtype)
        self.text = CLIPTextTransformer(c.text, self.normalizer, self.dtype)
        self.visual_projection = dense(
            c.projection_dim,
            ("embed", "mlp"),
            dtype=self.dtype,
            use_bias=False,
        )
        self.text_projection = dense(
            c.projection_dim,
            ("embed", "mlp"),
            dtype=self.dtype,
            use_bias=False,
        )
        self.logit_scale = self.param(
            "logit_scale", nn.initializers.constant(c.logit_scale_init), (), jnp.float32
        )

    def encode_image(self, images, *, train: bool = False) -> jax.Array:
        """Projected CLS state ``[batch, projection_dim]`` (before normalisation)."""
        return self.visual_projection(self.vision(images, train=train)[:, 0])

    def encode_text(self, input_ids, attention_mask=None, *, train: bool = False) -> jax.Array:
        """Projected EOT state ``[batch, projection_dim]`` (before normalisation)."""
        return self.text_projection(self.text(input_ids, attention_mask, train=train)[1])

    def __call__(self, images, input_ids, attention_mask=None, *, train: bool = False):
        image_embeds = l2_normalize(self.encode_image(images, train=train).astype(jnp.float32))
        text_embeds = l2_normalize(
            self.encode_text(input_ids, attention_mask, train=train).astype(jnp.float32)
        )
        logits = jnp.exp(self.logit_scale) * image_embeds @ text_embeds.T
        return {
            "image_embeds": image_embeds,
            "text_embeds": text_embeds,
            "logit_scale": self.logit_scale,
            "logits_per_image": logits,
        }
