"""ResNet v1.5 (stride on the 3x3 convolution of a bottleneck), depths 18/34/50/101/152.

Batch norm is functional: running statistics live in the ``batch_stats`` collection; call with
``train=True`` and ``mutable=["batch_stats"]`` to update them. Images are NHWC
``[batch, H, W, C]``. Note: Flax updates the running variance with the biased batch variance,
PyTorch with the unbiased one; evaluation-mode outputs are identical.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from emojax.nn._config import known_fields

Dtype = Any
LAYER_TYPES = ("basic", "bottleneck")


@dataclasses.dataclass(frozen=True)
class ResNetConfig:
    """Sizes in Hugging Face ``ResNetConfig`` terms (defaults: ResNet-50)."""

    num_channels: int = 3
    embedding_size: int = 64
    hidden_sizes: tuple[int, ...] = (256, 512, 1024, 2048)
    depths: tuple[int, ...] = (3, 4, 6, 3)
    layer_type: str = "bottleneck"
    downsample_in_first_stage: bool = False
    downsample_in_bottleneck: bool = False

    def __post_init__(self):
        if self.layer_type not in LAYER_TYPES:
            raise ValueError(f"layer_type={self.layer_type!r}; choose one of {LAYER_TYPES}")
        if len(self.hidden_sizes) != len(self.depths):
            raise ValueError(
                f"hidden_sizes {self.hidden_sizes} and depths {self.depths} must have "
                "the same length (one per stage)"
            )

    @classmethod
    def from_dict(cls, config: dict) -> ResNetConfig:
        """From a Hugging Face ``ResNetConfig`` dict (unknown keys ignored)."""
        if config.get("hidden_act", "relu") != "relu":
            raise ValueError(f"hidden_act={config['hidden_act']!r}: only relu ResNets convert")
        kw = known_fields(cls, config)
        for key in ("hidden_sizes", "depths"):
            if key in kw:
                kw[key] = tuple(kw[key])
        return cls(**kw)


def resnet_config(depth: int, width: int = 64, num_channels: int = 3) -> ResNetConfig:
    """Standard ResNet-``depth`` (18, 34, 50, 101, 152); ``width`` scales every stage
    (64 = the usual network; e.g. 8 gives a tiny face encoder)."""
    depths = {
        18: (2, 2, 2, 2),
        34: (3, 4, 6, 3),
        50: (3, 4, 6, 3),
        101: (3, 4, 23, 3),
        152: (3, 8, 36, 3),
    }
    if depth not in depths:
        raise ValueError(f"depth={depth}; choose one of {sorted(depths)}")
    bottleneck = depth >= 50
    mult = 4 if bottleneck else 1
    return ResNetConfig(
        num_channels=num_channels,
        embedding_size=width,
        hidden_sizes=tuple(width * mult * 2**i for i in range(4)),
        depths=depths[depth],
        layer_type="bottleneck" if bottleneck else "basic",
    )


def _conv_init(spatial_dims: int):
    """He-normal (fan_out) conv kernel init with logical axes ``(*spatial, conv_in, conv_out)``."""
    return nn.with_logical_partitioning(
        nn.initializers.variance_scaling(2.0, "fan_out", "normal"),
        (None,) * spatial_dims + ("conv_in", "conv_out"),
    )


class _TapConv1d(nn.Module):
    """A bias-free 1-D conv ``[B, T, C] -> [B, T', F]`` as one matmul per kernel tap, with
    ``nn.Conv``'s param (``kernel [k, C, F]``, same init)."""

    features: int
    kernel: int
    stride: int
    pad: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        w = self.param(
            "kernel", _conv_init(1), (self.kernel, x.shape[-1], self.features), jnp.float32
        ).astype(self.dtype)
        x = jnp.pad(x.astype(self.dtype), ((0, 0), (self.pad, self.pad), (0, 0)))
        frames = (x.shape[1] - self.kernel) // self.stride + 1
        out = 0
        for tap in range(self.kernel):
            window = jax.lax.slice_in_dim(
                x, tap, tap + (frames - 1) * self.stride + 1, stride=self.stride, axis=1
            )
            out = out + jnp.einsum("btc,cf->btf", window, w[tap])
        return out


class ConvNorm(nn.Module):
    """Bias-free conv (``padding = kernel // 2`` on each side) + BatchNorm (+ ReLU) over
    ``spatial_dims`` dimensions (2: images ``[B, H, W, C]``; 1: sequences ``[B, T, C]``).
    Names ``conv``, ``norm``; kernel axes ``(*spatial, "conv_in", "conv_out")``."""

    features: int
    kernel: int = 3
    stride: int = 1
    relu: bool = True
    dtype: Dtype = jnp.float32
    spatial_dims: int = 2

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        n, pad = self.spatial_dims, self.kernel // 2
        frames_out = (x.shape[1] + 2 * pad - self.kernel) // self.stride + 1
        short = min(x.shape[1], frames_out) < self.kernel
        if n == 1 and short and jax.default_backend() == "cpu":
            # XLA:CPU runs a 1-D conv (or its kernel gradient) whose window is longer than its
            # input ~10-200x slower than the same FLOPs as matmuls (20 s vs 0.1 s for
            # [128, 8, 512] * [9, 512, 512]); the deep ResDAVEnet stages hit it. Same param,
            # same result: one matmul per kernel tap.
            x = _TapConv1d(self.features, self.kernel, self.stride, pad, self.dtype, name="conv")(x)
        else:
            x = nn.Conv(
                self.features,
                (self.kernel,) * n,
                strides=(self.stride,) * n,
                padding=((pad, pad),) * n,
                use_bias=False,
                dtype=self.dtype,
                param_dtype=jnp.float32,
                name="conv",
                kernel_init=_conv_init(n),
            )(x)
        x = nn.BatchNorm(
            use_running_average=not train,
            momentum=0.9,
            epsilon=1e-5,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            name="norm",
            scale_init=nn.with_logical_partitioning(nn.initializers.ones_init(), ("conv_out",)),
            bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("conv_out",)),
        )(x)
        return nn.relu(x) if self.relu else x


class ResidualBlock(nn.Module):
    """Basic (two 3x3) or bottleneck (1x1, 3x3 with the stride, 1x1 to ``features``) block with
    a projection shortcut when the shape changes."""

    features: int
    stride: int = 1
    bottleneck: bool = True
    downsample_in_bottleneck: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        layer = lambda i, f, k, s, relu=True: ConvNorm(f, k, s, relu, self.dtype, name=f"layer_{i}")
        if self.bottleneck:
            reduced = self.features // 4
            first_stride = self.stride if self.downsample_in_bottleneck else 1
            y = layer(0, reduced, 1, first_stride)(x, train)
            y = layer(1, reduced, 3, self.stride // first_stride)(y, train)
            y = layer(2, self.features, 1, 1, relu=False)(y, train)
        else:
            y = layer(0, self.features, 3, self.stride)(x, train)
            y = layer(1, self.features, 3, 1, relu=False)(y, train)
        if x.shape[-1] != self.features or self.stride != 1:
            x = ConvNorm(self.features, 1, self.stride, False, self.dtype, name="shortcut")(
                x, train
            )
        return nn.relu(y + x)


class ResNet(nn.Module):
    """``images: [batch, H, W, C]`` -> last feature map ``[batch, H/32, W/32, hidden_sizes[-1]]``
    (rounded up; ``/64`` with ``downsample_in_first_stage``); :meth:`embed` mean-pools it.
    Param names: ``stem``, ``stage_{s}_block_{b}/{layer_i, shortcut}/{conv, norm}``."""

    config: ResNetConfig
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, images: jax.Array, *, train: bool = False) -> jax.Array:
        c = self.config
        if images.ndim != 4 or images.shape[-1] != c.num_channels:
            raise ValueError(
                f"images must be NHWC [batch, H, W, {c.num_channels}], got {images.shape}"
            )
        x = ConvNorm(c.embedding_size, 7, 2, dtype=self.dtype, name="stem")(
            images.astype(self.dtype), train
        )
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        for s, (features, depth) in enumerate(zip(c.hidden_sizes, c.depths, strict=True)):
            for b in range(depth):
                stride = 2 if b == 0 and (s > 0 or c.downsample_in_first_stage) else 1
                x = ResidualBlock(
                    features,
                    stride,
                    c.layer_type == "bottleneck",
                    c.downsample_in_bottleneck,
                    self.dtype,
                    name=f"stage_{s}_block_{b}",
                )(x, train)
        return x

    def embed(self, images: jax.Array, *, train: bool = False) -> jax.Array:
        """Global-average-pooled features ``[batch, hidden_sizes[-1]]``."""
        return jnp.mean(self(images, train=train), axis=(1, 2))
