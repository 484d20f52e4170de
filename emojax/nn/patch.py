"""Patch embedding shared by the ViT image tower and the audio spectrogram encoder.

A strided conv cuts the input into non-overlapping patches; a learned class token is prepended
and learned position embeddings (slot 0 for the class token) are added. Params are created under
the caller's names (``patch_embed``, ``cls_token``, ``pos_embedding``), which the PyTorch
converters in ``emojax/convert/`` rely on.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any


def patch_conv(
    hidden_size: int, patch_shape: tuple[int, int], *, dtype: Dtype, use_bias: bool = True
) -> nn.Conv:
    """Kernel = stride = ``patch_shape``: ``[b, H, W, C]`` -> ``[b, H/ph, W/pw, hidden]``."""
    return nn.Conv(
        hidden_size,
        patch_shape,
        strides=patch_shape,
        padding="VALID",
        use_bias=use_bias,
        dtype=dtype,
        param_dtype=jnp.float32,
        kernel_init=nn.with_logical_partitioning(
            nn.initializers.lecun_normal(), (None, None, "channels", "embed")
        ),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("embed",)),
    )


def cls_and_pos_params(
    module: nn.Module, hidden_size: int, num_patches: int
) -> tuple[jax.Array, jax.Array]:
    """Create ``module``'s ``cls_token [1, 1, hidden]`` and ``pos_embedding [1, 1 + patches,
    hidden]`` params (call from ``setup``)."""
    init = nn.initializers.normal(0.02)
    cls_token = module.param(
        "cls_token",
        nn.with_logical_partitioning(init, (None, None, "embed")),
        (1, 1, hidden_size),
        jnp.float32,
    )
    pos_embedding = module.param(
        "pos_embedding",
        nn.with_logical_partitioning(init, (None, "length", "embed")),
        (1, num_patches + 1, hidden_size),
        jnp.float32,
    )
    return cls_token, pos_embedding


def flatten_patches(x: jax.Array) -> jax.Array:
    """Conv output ``[batch, h, w, hidden]`` -> patch tokens ``[batch, h * w, hidden]``."""
    return x.reshape(x.shape[0], -1, x.shape[-1])


def prepend_cls(
    tokens: jax.Array, cls_token: jax.Array, pos_embedding: jax.Array, dtype: Dtype
) -> jax.Array:
    """``tokens: [batch, n, hidden]`` (positions already added) -> ``[batch, 1 + n, hidden]``
    with the class token (plus position slot 0) in front."""
    cls = (cls_token + pos_embedding[:, :1]).astype(dtype)
    cls = jnp.broadcast_to(cls, (tokens.shape[0], 1, tokens.shape[-1]))
    x = jnp.concatenate([cls, tokens], axis=1)
    return nn.with_logical_constraint(x, ("batch", "length", "embed"))
