"""ResDAVEnet: the residual 1-D convolutional speech encoder of DAVEnet / AVLnet / MCN.

Input: log-mel frames ``[batch, frames, feat_dim]`` (time-major, mel bins as channels; the
PyTorch code takes ``[batch, feat_dim, frames]``). Structure (``ResDavenet`` of the official MCN
code, brian7685/Multimodal-Clustering-Network ``model_davenet.py``, itself from
wnhsu/ResDAVEnet-VQ):

- ``stem``: a bias-free conv over all ``feat_dim`` bins and one frame (PyTorch ``Conv2d(1, w0,
  kernel_size=(feat_dim, 1))`` on ``[B, 1, feat_dim, T]``; here a width-1 ``Conv`` with
  ``feat_dim`` input channels) -> BatchNorm -> ReLU;
- ``len(depths)`` stages; stage ``s`` has ``depths[s]`` basic blocks of width ``widths[s + 1]``;
  the first block of every stage (the first stage included) has stride ``stride`` (2):
  ``conv(k, stride) -> BN -> ReLU -> conv(k) -> BN``, plus the shortcut (a bias-free 1-wide conv
  with the stride -> BN whenever the stride or the width changes, else identity), then ReLU.
  Convs are bias-free, width ``kernel`` (9), padding ``kernel // 2`` on both sides.

Each stage maps ``T`` frames to ``floor((T - 1) / stride) + 1`` (``ceil(T / 2)``), so the output
is ``[batch, ceil(T / 16), widths[-1]]`` for the default four stages. The official module also
builds a ``batchnorm1 = BatchNorm2d(1)`` that its ``forward`` never uses; it has no counterpart
here (the converter ignores it). The official init (conv ``normal(0, sqrt(2 / fan_out))``, BN
scale 1 / bias 0) is the init here.

Batch norm is functional, as in :mod:`emojax.nn.resnet`: running statistics live in
``batch_stats``; call with ``train=True`` and ``mutable=["batch_stats"]`` to use batch statistics
and update them (momentum 0.9 = PyTorch's 0.1, epsilon 1e-5). Flax updates the running variance
with the biased batch variance, PyTorch with the unbiased one; outputs match in both modes.

Param names: ``stem``, ``stage_{s}_block_{b}/{layer_0, layer_1, shortcut}``, each with ``conv``
(``kernel [k, in, out]``, logical axes ``(None, "conv_in", "conv_out")``) and ``norm``
(``scale``/``bias`` ``("conv_out",)``; ``batch_stats``: ``mean``/``var``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from emojax.nn.resnet import ConvNorm

Dtype = Any


@dataclasses.dataclass(frozen=True)
class ResDAVEnetConfig:
    """Sizes of a ResDAVEnet (defaults: the one MCN and AVLnet use)."""

    feat_dim: int = 40  # mel bins = input channels
    widths: tuple[int, ...] = (128, 128, 256, 512, 1024)  # stem, then one per stage
    depths: tuple[int, ...] = (2, 2, 2, 2)  # basic blocks per stage
    kernel: int = 9  # conv width over time
    stride: int = 2  # of the first block of every stage

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(self.widths))
        object.__setattr__(self, "depths", tuple(self.depths))
        if len(self.widths) != len(self.depths) + 1:
            raise ValueError(
                f"ResDAVEnetConfig: widths {self.widths} must have one entry more than depths "
                f"{self.depths} (the stem width, then one width per stage)"
            )
        if min(self.depths, default=1) < 1 or min(self.widths) < 1 or self.feat_dim < 1:
            raise ValueError(
                f"ResDAVEnetConfig: feat_dim={self.feat_dim}, widths={self.widths} and "
                f"depths={self.depths} must be positive"
            )
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(
                f"ResDAVEnetConfig: kernel={self.kernel} must be odd (with an even width the "
                "block and shortcut lengths differ, in the official code too)"
            )
        if self.stride < 1:
            raise ValueError(f"ResDAVEnetConfig: stride={self.stride} must be >= 1")

    @property
    def out_dim(self) -> int:
        """Channels of the output (``widths[-1]``)."""
        return self.widths[-1]

    def output_length(self, frames: int) -> int:
        """Frames out for ``frames`` in (each stage: ``floor((T - 1) / stride) + 1``)."""
        for _ in self.depths:
            frames = (frames - 1) // self.stride + 1
        return frames


def ConvNorm1d(  # noqa: N802 - a module constructor
    features: int, kernel: int = 9, stride: int = 1, relu: bool = True, dtype=jnp.float32, **kw
) -> ConvNorm:
    """Bias-free 1-D conv + BatchNorm (+ ReLU) on ``[B, T, C]``: :class:`ConvNorm` over one
    spatial dimension (names ``conv``, ``norm``)."""
    return ConvNorm(features, kernel, stride, relu, dtype, spatial_dims=1, **kw)


class SpeechBasicBlock(nn.Module):
    """``relu(BN(conv(relu(BN(conv_stride(x))))) + shortcut(x))``; names ``layer_0``,
    ``layer_1`` and (when the stride or width changes) ``shortcut``."""

    features: int
    stride: int = 1
    kernel: int = 9
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        y = ConvNorm1d(self.features, self.kernel, self.stride, True, self.dtype, name="layer_0")(
            x, train
        )
        y = ConvNorm1d(self.features, self.kernel, 1, False, self.dtype, name="layer_1")(y, train)
        if self.stride != 1 or x.shape[-1] != self.features:
            x = ConvNorm1d(self.features, 1, self.stride, False, self.dtype, name="shortcut")(
                x, train
            )
        return nn.relu(y + x)


class ResDAVEnet(nn.Module):
    """``mel: [batch, frames, feat_dim]`` -> ``[batch, config.output_length(frames),
    widths[-1]]`` (see the module docstring for the structure and names)."""

    config: ResDAVEnetConfig = ResDAVEnetConfig()
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, mel: jax.Array, *, train: bool = False) -> jax.Array:
        c = self.config
        if mel.ndim != 3 or mel.shape[-1] != c.feat_dim:
            raise ValueError(
                f"ResDAVEnet input must be [batch, frames, {c.feat_dim}] (time-major log-mel, "
                f"feat_dim={c.feat_dim} bins last; transpose a PyTorch [batch, bins, frames] "
                f"array), got shape {mel.shape}"
            )
        x = ConvNorm1d(c.widths[0], 1, 1, True, self.dtype, name="stem")(
            mel.astype(self.dtype), train
        )
        for s, depth in enumerate(c.depths):
            for b in range(depth):
                x = SpeechBasicBlock(
                    c.widths[s + 1],
                    c.stride if b == 0 else 1,
                    c.kernel,
                    self.dtype,
                    name=f"stage_{s}_block_{b}",
                )(x, train)
        return x


def time_mean(
    features: jax.Array, nframes: jax.Array | None = None, *, input_frames: int | None = None
) -> jax.Array:
    """Mean over time of ``features: [batch, T', C]`` -> ``[batch, C]`` (float32).

    ``nframes: [batch]`` (integer, valid input frames before the encoder) averages only the first
    ``max(1, nframes // ratio)`` output frames, ``ratio = round(input_frames / T')``, as the
    official MCN / AVLnet evaluation does (their training averages every frame, padding included:
    pass ``nframes=None``). jit-clean: no value is read on the host.
    """
    x = features.astype(jnp.float32)
    if nframes is None:
        return jnp.mean(x, axis=1)
    if input_frames is None:
        raise ValueError("time_mean: nframes needs input_frames (frames before the encoder)")
    if nframes.shape != x.shape[:1]:
        raise ValueError(f"nframes must be [batch] = {x.shape[:1]}, got shape {nframes.shape}")
    t_out = x.shape[1]
    ratio = max(1, round(input_frames / t_out))
    lengths = jnp.clip(nframes.astype(jnp.int32) // ratio, 1, t_out)
    valid = (jnp.arange(t_out)[None, :] < lengths[:, None]).astype(x.dtype)
    return jnp.einsum("btc,bt->bc", x, valid) / lengths[:, None].astype(x.dtype)
