"""UniEmoX's Flax modules: the two-view MAE pretraining model and the downstream classifier.

Parameter names are shared so that ``config.init_from`` carries the pretrained encoder into the
classifier: both hold the ViT under ``encoder``.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from emojax.nn.mae import MAEDecoder, MAEDecoderConfig
from emojax.nn.transformer import dense, layer_norm
from emojax.nn.vit import ViT, ViTConfig

Dtype = Any


class UniEmoXPretrain(nn.Module):
    """MAE on the scene view plus per-view features and their fusion.

    ``scene``, ``person``: normalised views ``[batch, S, S, 3]`` (``person`` None: scene only);
    ``*_masking``: ``(keep [batch, k], restore [batch, patches])`` of
    :func:`emojax.nn.mae.random_masking`. Returns ``pred [batch, patches, patch_dim]`` (every
    patch position; the loss counts the masked ones), ``scene_feature`` / ``person_feature``
    ``[batch, dim]`` (decoder_embed of the encoder output at CLS) and ``fused [batch, dim]``:
    ``ELU(Linear(LN(scene) + LN(person)))`` with one shared LN (``ELU(Linear(LN(scene)))`` with
    the scene only).
    """

    encoder_config: ViTConfig
    decoder_config: MAEDecoderConfig
    dtype: Dtype = jnp.float32
    remat: bool = False

    def setup(self):
        e = self.encoder_config
        self.encoder = ViT(e, dtype=self.dtype, remat=self.remat)
        self.decoder = MAEDecoder(
            self.decoder_config,
            e.num_patches,
            e.patch_size * e.patch_size * e.num_channels,
            dtype=self.dtype,
        )
        self.fusion_norm = layer_norm(1e-6, dtype=self.dtype)
        self.fusion = dense(self.decoder_config.hidden_size, ("embed", "mlp"), dtype=self.dtype)

    def view_feature(self, images, masking, *, train: bool):
        """Encoder on the view's visible patches -> ``decoder_embed`` at CLS ``[batch, dim]``."""
        latent = self.encoder(images, keep_indices=masking[0], train=train)
        return self.decoder.embed(latent[:, :1])[:, 0], latent

    def __call__(self, scene, scene_masking, person=None, person_masking=None, *, train=False):
        scene_feature, latent = self.view_feature(scene, scene_masking, train=train)
        pred, _ = self.decoder(latent, scene_masking[1], train=train)
        out = {"pred": pred, "scene_feature": scene_feature}
        fused = self.fusion_norm(scene_feature)
        if person is not None:
            person_feature, _ = self.view_feature(person, person_masking, train=train)
            out["person_feature"] = person_feature
            fused = fused + self.fusion_norm(person_feature)
        out["fused"] = jax.nn.elu(self.fusion(fused))
        return out


class ViTClassifier(nn.Module):
    """``images [batch, S, S, 3]`` (normalised) -> logits ``[batch, classes]``.

    Features: the encoder's mean patch token (MAE fine-tuning's global pooling) or its CLS
    (``pool="cls"``), then (``probe_norm``) a LayerNorm without parameters (a linear probe's
    feature standardisation), then the linear ``head``.
    """

    encoder_config: ViTConfig
    num_classes: int
    probe_norm: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, images, *, train: bool = False):
        vit = ViT(self.encoder_config, dtype=self.dtype, name="encoder")
        features = vit.pooled(vit(images, train=train)).astype(jnp.float32)
        if self.probe_norm:
            features = nn.LayerNorm(use_scale=False, use_bias=False, name="probe_norm")(features)
        head = dense(self.num_classes, ("embed", "classes"), dtype=jnp.float32, name="head")
        return head(features)


def vit_config(m, *, pool: str = "cls") -> ViTConfig:
    """The encoder's :class:`ViTConfig` from ``config.model.encoder`` (a ConfigDict/dict)."""
    return ViTConfig(
        image_size=int(m.image_size),
        patch_size=int(m.patch_size),
        hidden_size=int(m.hidden_size),
        num_hidden_layers=int(m.num_layers),
        num_attention_heads=int(m.num_heads),
        intermediate_size=int(m.mlp_dim),
        layer_norm_eps=1e-6,
        pool=pool,
        attention_impl=str(m.get("attention_impl", "xla")),
    )


def decoder_config(m) -> MAEDecoderConfig:
    """:class:`MAEDecoderConfig` from ``config.model.decoder``."""
    return MAEDecoderConfig(
        hidden_size=int(m.hidden_size),
        num_hidden_layers=int(m.num_layers),
        num_attention_heads=int(m.num_heads),
        intermediate_size=int(m.mlp_dim),
        attention_impl=str(m.get("attention_impl", "xla")),
    )
