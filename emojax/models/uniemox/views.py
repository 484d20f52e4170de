"""Views of a batch of photos inside the jitted step: boxes, crops, normalisation (pure JAX).

Boxes are ``[batch, 4]`` float32 ``(y0, x0, y1, x1)`` as fractions of the image side.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def normalize(images: jax.Array, mean, std) -> jax.Array:
    """``images [..., 3]`` uint8 (or floats in [0, 255]) -> float32 ``(x / 255 - mean) / std``."""
    x = images.astype(jnp.float32) / 255.0
    return (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def _crop_one(image: jax.Array, box: jax.Array, size: int) -> jax.Array:
    height, width = image.shape[0], image.shape[1]
    extent = jnp.maximum(box[2:] - box[:2], 1e-3) * jnp.array([height, width], jnp.float32)
    scale = size / extent
    translation = -box[:2] * jnp.array([height, width], jnp.float32) * scale
    return jax.image.scale_and_translate(
        image, (size, size, image.shape[2]), (0, 1), scale, translation, "linear", antialias=False
    )


def crop_resize(images: jax.Array, boxes: jax.Array, size: int) -> jax.Array:
    """Bilinear crop of each box, resized to ``size``: ``[batch, H, W, C]``, ``boxes [batch, 4]``
    -> ``[batch, size, size, C]`` float32."""
    if boxes.shape != (images.shape[0], 4):
        raise ValueError(f"boxes must be [{images.shape[0]}, 4], got shape {boxes.shape}")
    return jax.vmap(lambda im, b: _crop_one(im, b, size))(images.astype(jnp.float32), boxes)


def random_boxes(rng: jax.Array, batch: int, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)):
    """RandomResizedCrop boxes: area fraction ~ U(scale), log aspect ratio ~ U(log ratio),
    uniform position; ``[batch, 4]`` float32 (clipped to the image)."""
    k_area, k_ratio, k_pos = jax.random.split(rng, 3)
    area = jax.random.uniform(k_area, (batch,), minval=scale[0], maxval=scale[1])
    log_r = jax.random.uniform(
        k_ratio, (batch,), minval=jnp.log(ratio[0]), maxval=jnp.log(ratio[1])
    )
    h = jnp.clip(jnp.sqrt(area / jnp.exp(log_r)), 0.05, 1.0)
    w = jnp.clip(jnp.sqrt(area * jnp.exp(log_r)), 0.05, 1.0)
    origin = jax.random.uniform(k_pos, (batch, 2)) * (1.0 - jnp.stack([h, w], axis=1))
    return jnp.concatenate([origin, origin + jnp.stack([h, w], axis=1)], axis=1)


def valid_boxes(boxes: jax.Array, min_side: float = 0.02) -> jax.Array:
    """``[batch]`` bool: a box with both sides >= ``min_side`` (all-zero rows = no person)."""
    return jnp.all(boxes[:, 2:] - boxes[:, :2] >= min_side, axis=1)


def person_boxes(rng: jax.Array, boxes: jax.Array, fallback: str, scale=(0.2, 1.0)) -> jax.Array:
    """The person view's boxes: the supplied box where valid, else the ``fallback``
    ("random_crop": a random crop, what the released code effectively does for every image;
    "full": the whole image). ``"random_crop_always"`` ignores the boxes (the released code)."""
    batch = boxes.shape[0]
    full = jnp.broadcast_to(jnp.array([0.0, 0.0, 1.0, 1.0], jnp.float32), (batch, 4))
    if fallback == "full":
        other = full
    elif fallback in ("random_crop", "random_crop_always"):
        other = random_boxes(rng, batch, scale)
    else:
        raise ValueError(
            f"model.person_fallback={fallback!r}; one of 'random_crop', 'full', "
            "'random_crop_always'"
        )
    if fallback == "random_crop_always":
        return other
    return jnp.where(valid_boxes(boxes)[:, None], boxes.astype(jnp.float32), other)


def random_flip(rng: jax.Array, images: jax.Array, boxes: jax.Array | None = None):
    """Horizontal flip of each image with probability 1/2: ``[batch, H, W, C]``; with
    ``boxes [batch, 4]`` returns ``(images, boxes)`` with the boxes mirrored alike (all-zero
    "no box" rows stay zero)."""
    flip = jax.random.bernoulli(rng, 0.5, (images.shape[0],))
    flipped = jnp.where(flip[:, None, None, None], images[:, :, ::-1], images)
    if boxes is None:
        return flipped
    y0, x0, y1, x1 = jnp.moveaxis(boxes, -1, 0)
    mirrored = jnp.stack([y0, 1.0 - x1, y1, 1.0 - x0], axis=-1)
    mirrored = jnp.where(valid_boxes(boxes)[:, None], mirrored, boxes)
    return flipped, jnp.where(flip[:, None], mirrored, boxes)
