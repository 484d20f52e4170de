"""Flax modules of ANP distillation (seed 002) and the saliency-weighted combination P_SB.

* :class:`RegionTextEncoder` (the teacher, "Multi Region SentiBank"): each region's text
  ``adj label ... <end>`` -> word embedding (dim 10 in the paper) + learned positions ->
  post-norm Transformer encoder (PyTorch ``nn.TransformerEncoderLayer`` structure: ReLU MLP,
  LayerNorm eps 1e-5) -> the last (end) token -> dense -> per-region logits (P_TE = softmax).
* :class:`Student`: ResNet-18/50/101 -> global average pool -> dense (1 logit for the binary
  task, ``num_classes`` logits otherwise).
* :func:`combine_regions`: P_SB = sum_r w_r P_TE_r / sum_r w_r, ``w_r`` the region's share of
  the image's Itti-Koch saliency (or 1: ``weighting="uniform"``, the ablation).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from emojax.models.anp_distill.data import PAD
from emojax.nn.resnet import ResNet, resnet_config
from emojax.nn.transformer import TransformerEncoder
from emojax.ops.saliency import box_saliency_shares, itti_koch_saliency

Dtype = Any
WEIGHTINGS = ("saliency", "uniform")
# ImageNet statistics (what converted torchvision / Hugging Face ResNets expect)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class RegionTextEncoder(nn.Module):
    """``tokens [..., L]`` int32 (left-padded, end token last) -> logits ``[..., num_classes]``."""

    vocab_size: int
    num_classes: int
    embed_dim: int = 10
    num_layers: int = 1
    num_heads: int = 2
    mlp_dim: int = 32
    dropout_rate: float = 0.1
    max_length: int = 9

    @nn.compact
    def __call__(self, tokens: jax.Array, *, train: bool = False) -> jax.Array:
        lead, length = tokens.shape[:-1], tokens.shape[-1]
        if length > self.max_length:
            raise ValueError(f"tokens have length {length} > max_length={self.max_length}")
        flat = tokens.reshape(-1, length)
        x = nn.Embed(self.vocab_size, self.embed_dim, name="embed")(flat)
        positions = self.param(
            "positions", nn.initializers.normal(0.02), (self.max_length, self.embed_dim)
        )
        x = x + positions[-length:]  # aligned at the end token
        mask = (flat != PAD)[:, None, None, :]  # keys only; the end token is never padding
        x = TransformerEncoder(
            self.num_layers,
            self.num_heads,
            self.mlp_dim,
            pre_norm=False,
            activation="relu",
            layer_norm_eps=1e-5,
            dropout_rate=self.dropout_rate,
            name="encoder",
        )(x, mask, train=train)
        logits = nn.Dense(self.num_classes, name="head")(x[:, -1])
        return logits.reshape(*lead, self.num_classes)


class Student(nn.Module):
    """``images [B, H, W, 3]`` uint8 -> logits ``[B, outputs]``."""

    depth: int = 18
    width: int = 64
    outputs: int = 1
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, images: jax.Array, *, train: bool = False) -> jax.Array:
        x = (images.astype(jnp.float32) / 255.0 - jnp.asarray(MEAN)) / jnp.asarray(STD)
        features = ResNet(resnet_config(self.depth, self.width), self.dtype, name="resnet").embed(
            x, train=train
        )
        return nn.Dense(self.outputs, name="head")(features.astype(jnp.float32))


class ANPDistillModel(nn.Module):
    """One stage's trained network: ``stage="teacher"`` -> region logits ``[B, R, C]`` (params
    under ``teacher``); ``"student"`` -> image logits ``[B, outputs]`` (under ``student``)."""

    stage: str
    teacher: RegionTextEncoder
    student: Student

    @nn.compact
    def __call__(self, batch, *, train: bool = False) -> jax.Array:
        if self.stage == "teacher":
            return self.teacher(batch["tokens"], train=train)
        if self.stage == "student":
            return self.student(batch["image"], train=train)
        raise ValueError(f"model.stage={self.stage!r}: 'teacher' or 'student'")


def region_weights(
    images: jax.Array,
    boxes: jax.Array,
    mask: jax.Array,
    *,
    weighting: str = "saliency",
    centers: tuple[int, ...] = (2, 3, 4),
    deltas: tuple[int, ...] = (3, 4),
    map_level: int = 4,
) -> jax.Array:
    """``[B, R]`` weights: each valid region's share of its image's saliency (or 1).

    images: [B, H, W, 3] (uint8 or float); boxes: [B, R, 4] (y0, x0, y1, x1) in [0, 1];
    mask: [B, R] (1 = region present).
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting={weighting!r}; choose one of {WEIGHTINGS}")
    if weighting == "uniform":
        return mask.astype(jnp.float32)
    saliency = itti_koch_saliency(
        images.astype(jnp.float32) / 255.0, centers=centers, deltas=deltas, map_level=map_level
    )
    return box_saliency_shares(saliency, boxes.astype(jnp.float32)) * mask


def combine_regions(region_probs: jax.Array, weights: jax.Array, mask: jax.Array) -> jax.Array:
    """P_SB ``[B, C]``: the weighted mean of ``region_probs [B, R, C]`` with ``weights [B, R]``;
    plain mean of the valid regions where all weights are 0, uniform where no region is valid."""
    mask = mask.astype(jnp.float32)
    w = weights * mask
    total = jnp.sum(w, axis=1, keepdims=True)
    w = jnp.where(total > 1e-8, w, mask)  # no saliency in any box: plain mean
    total = jnp.sum(w, axis=1, keepdims=True)
    combined = jnp.einsum("br,brc->bc", w, region_probs) / jnp.maximum(total, 1e-8)
    uniform = jnp.full_like(combined, 1.0 / region_probs.shape[-1])
    return jnp.where(total > 0, combined, uniform)
