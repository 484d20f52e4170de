"""Masked-image-modelling losses on masked patches only (MAE, SimMIM).

Images are NHWC; :func:`patchify` turns them into ``[batch, patches, patch * patch * channels]``
(row-major patches, each patch flattened as (py, px, c)). ``mask`` is ``[batch, patches]`` with 1
(True) where a patch was masked / removed — the only patches that count.

* MAE (He et al. 2022): per-patch MSE, mean over masked patches. ``norm_pix``: each target patch
  normalised by its own mean and (unbiased, as MAE's ``torch.var``) variance, eps 1e-6.
* SimMIM (Xie et al. 2022): L1 over the masked pixels, divided by their number.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from emojax.losses._common import check_finite


def patchify(images: jax.Array, patch_size: int) -> jax.Array:
    """[batch, H, W, C] -> [batch, (H/p)(W/p), p*p*C]."""
    if images.ndim != 4:
        raise ValueError(f"images must be [batch, height, width, channels], got {images.shape}")
    b, h, w, c = images.shape
    if h % patch_size or w % patch_size:
        raise ValueError(f"image size {h}x{w} is not divisible by patch_size {patch_size}")
    gh, gw = h // patch_size, w // patch_size
    x = images.reshape(b, gh, patch_size, gw, patch_size, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, gh * gw, patch_size * patch_size * c)


def _check(pred, target, mask):
    if pred.ndim != 3 or pred.shape != target.shape:
        raise ValueError(
            "pred and target must both be [batch, patches, patch_dim]; got "
            f"{pred.shape} and {target.shape} (use patchify for images)"
        )
    if mask.shape != pred.shape[:2]:
        raise ValueError(f"mask must be [batch, patches] = {pred.shape[:2]}, got {mask.shape}")
    check_finite(pred=pred, target=target)


def normalize_patches(target: jax.Array, eps: float = 1e-6) -> jax.Array:
    """Per-patch (last axis) standardisation with the unbiased variance, as MAE's norm_pix_loss."""
    t = target.astype(jnp.float32)
    mean = jnp.mean(t, axis=-1, keepdims=True)
    var = jnp.var(t, axis=-1, keepdims=True, ddof=1)
    return (t - mean) / jnp.sqrt(var + eps)


def mae_loss(
    pred: jax.Array, target: jax.Array, mask: jax.Array, *, norm_pix: bool = False
) -> jax.Array:
    """MAE loss: mean over masked patches of the per-patch MSE.

    pred, target: [batch, patches, patch_dim]; mask: [batch, patches] (1 = masked).
    """
    _check(pred, target, mask)
    t = jax.lax.stop_gradient(normalize_patches(target) if norm_pix else target.astype(jnp.float32))
    per_patch = jnp.mean(jnp.square(pred.astype(jnp.float32) - t), axis=-1)
    m = mask.astype(jnp.float32)
    return jnp.sum(per_patch * m) / jnp.maximum(jnp.sum(m), 1.0)


def simmim_loss(
    pred: jax.Array, target: jax.Array, mask: jax.Array, *, norm_pix: bool = False
) -> jax.Array:
    """SimMIM loss: L1 over masked pixels / their count. pred/target: [B, L, P]; mask: [B, L]."""
    _check(pred, target, mask)
    t = jax.lax.stop_gradient(normalize_patches(target) if norm_pix else target.astype(jnp.float32))
    m = mask.astype(jnp.float32)[..., None]
    l1 = jnp.abs(pred.astype(jnp.float32) - t)
    return jnp.sum(l1 * m) / (jnp.sum(m) * pred.shape[-1] + 1e-5)
