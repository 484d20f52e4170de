"""MAE pieces beside the ViT encoder: random masking and the light decoder (He et al. 2022).

The encoder (:class:`emojax.nn.ViT` with ``keep_indices``) sees only the visible patches. The
decoder embeds the encoder output, puts a shared learned mask token at every removed position,
restores the original patch order, adds its own position embeddings, runs a few pre-norm blocks
and predicts the pixels of EVERY patch position ``[batch, patches, patch * patch * channels]``;
the MAE loss (:func:`emojax.losses.mae_loss`) then counts the masked positions only.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from emojax.nn.transformer import check_attention_impl, dense, encoder_from_config, layer_norm

Dtype = Any


@dataclasses.dataclass(frozen=True)
class MAEDecoderConfig:
    """Decoder sizes (defaults: MAE's 8 blocks of width 512, 16 heads)."""

    hidden_size: int = 512
    num_hidden_layers: int = 8
    num_attention_heads: int = 16
    intermediate_size: int = 2048
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-6
    attention_impl: str = "xla"

    def __post_init__(self):
        check_attention_impl(self.attention_impl)


def sincos_2d(grid: int, dim: int, *, cls_token: bool = True) -> jax.Array:
    """MAE's fixed 2-D sin-cos position table ``[(1 +) grid * grid, dim]`` float32: row-major
    patches, ``[sin(h w_k) | cos(h w_k) | sin(x w_k) | cos(x w_k)]`` with
    ``w_k = 10000^(-k / (dim / 4))`` (Hugging Face ViTMAE's layout); a zero row first for CLS."""
    if dim % 4:
        raise ValueError(f"sin-cos position embeddings need dim % 4 == 0, got {dim}")
    omega = 1.0 / 10000.0 ** (np.arange(dim // 4, dtype=np.float64) / (dim // 4))
    h, w = np.meshgrid(np.arange(grid, dtype=np.float64), np.arange(grid), indexing="ij")
    eh, ew = np.outer(h.ravel(), omega), np.outer(w.ravel(), omega)
    table = np.concatenate([np.sin(eh), np.cos(eh), np.sin(ew), np.cos(ew)], axis=1)
    if cls_token:
        table = np.concatenate([np.zeros((1, dim)), table])
    return jnp.asarray(table, jnp.float32)


def random_masking(rng: jax.Array, batch: int, num_patches: int, mask_ratio: float):
    """MAE's per-example random masking (argsort of uniform noise).

    Returns ``keep [batch, k] int32`` (visible patch indices, ascending noise order),
    ``mask [batch, patches] float32`` (1 = removed) and ``restore [batch, patches] int32`` (the
    permutation that puts ``[visible..., removed...]`` back into patch order);
    ``k = round(patches * (1 - mask_ratio))``, at least 1.
    """
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    keep_count = max(1, int(round(num_patches * (1.0 - mask_ratio))))
    noise = jax.random.uniform(rng, (batch, num_patches))
    shuffle = jnp.argsort(noise, axis=1).astype(jnp.int32)
    restore = jnp.argsort(shuffle, axis=1).astype(jnp.int32)
    keep = shuffle[:, :keep_count]
    mask = (restore >= keep_count).astype(jnp.float32)
    return keep, mask, restore


class MAEDecoder(nn.Module):
    """``latent [batch, 1 + k, enc_dim]`` (CLS + visible tokens, encoder order) and ``restore
    [batch, patches]`` -> ``(pred [batch, patches, patch_dim], embedded [batch, 1 + k, dim])``.

    ``embedded`` is ``decoder_embed(latent)`` before the mask tokens and blocks (UniEmoX takes
    its CLS row as the view feature). Params: ``decoder_embed``, ``mask_token``,
    ``pos_embedding [1, 1 + patches, dim]``, ``blocks``, ``norm``, ``pred``.
    """

    config: MAEDecoderConfig
    num_patches: int
    patch_dim: int
    dtype: Dtype = jnp.float32

    def setup(self):
        c = self.config
        self.decoder_embed = dense(c.hidden_size, ("embed", "mlp"), dtype=self.dtype)
        self.mask_token = self.param(
            "mask_token",
            nn.with_logical_partitioning(nn.initializers.normal(0.02), (None, None, "embed")),
            (1, 1, c.hidden_size),
            jnp.float32,
        )
        self.pos_embedding = self.param(
            "pos_embedding",
            nn.with_logical_partitioning(nn.initializers.normal(0.02), (None, "length", "embed")),
            (1, self.num_patches + 1, c.hidden_size),
            jnp.float32,
        )
        self.blocks = encoder_from_config(c, pre_norm=True, normalizer="softmax", dtype=self.dtype)
        self.norm = layer_norm(c.layer_norm_eps, dtype=self.dtype)
        self.pred = dense(self.patch_dim, ("embed", "mlp"), dtype=self.dtype)

    def embed(self, latent: jax.Array) -> jax.Array:
        """``decoder_embed(latent)``: ``[batch, 1 + k, dim]``."""
        return self.decoder_embed(latent.astype(self.dtype))

    def __call__(self, latent: jax.Array, restore: jax.Array, *, train: bool = False):
        if restore.shape[1] != self.num_patches:
            raise ValueError(
                f"restore must be [batch, {self.num_patches}], got shape {restore.shape}"
            )
        embedded = self.embed(latent)
        batch, visible = embedded.shape[0], embedded.shape[1] - 1
        masked = jnp.broadcast_to(
            self.mask_token.astype(self.dtype),
            (batch, self.num_patches - visible, embedded.shape[-1]),
        )
        tokens = jnp.concatenate([embedded[:, 1:], masked], axis=1)  # [visible..., removed...]
        tokens = jnp.take_along_axis(tokens, restore[..., None], axis=1)  # patch order
        x = jnp.concatenate([embedded[:, :1], tokens], axis=1)
        x = x + self.pos_embedding.astype(self.dtype)
        x = self.norm(self.blocks(x, None, train=train))
        return self.pred(x[:, 1:]), embedded


__all__ = ["MAEDecoder", "MAEDecoderConfig", "random_masking", "sincos_2d"]
