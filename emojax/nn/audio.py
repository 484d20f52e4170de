"""Audio: a log-mel front end in JAX (STFT, mel filterbank, log) and a spectrogram transformer.

The front end follows librosa's defaults so its output can be checked against it: periodic Hann
window, ``center=True`` with zero padding of ``n_fft // 2`` on both sides, power spectrum
(``|STFT|^2``), Slaney mel scale with Slaney (area) normalisation, then ``log(mel + log_offset)``.
The encoder cuts the ``[frames, mels]`` log-mel image into patches (as AST does) and runs a
pre-norm transformer over them with a class token.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from emojax.nn.patch import cls_and_pos_params, flatten_patches, patch_conv, prepend_cls
from emojax.nn.transformer import check_attention_impl, encoder_from_config, layer_norm

Dtype = Any
# Slaney mel scale: (Hz per mel below 1 kHz, 1 kHz, mel at 1 kHz, log step per mel above it)
_SLANEY = (200.0 / 3, 1000.0, 1000.0 / (200.0 / 3), math.log(6.4) / 27.0)


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz (3 mel / 200 Hz), logarithmic above."""
    hz = np.asarray(hz, np.float64)
    f_sp, min_log_hz, min_log_mel, logstep = _SLANEY
    log_part = min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep
    return np.where(hz >= min_log_hz, log_part, hz / f_sp)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mel = np.asarray(mel, np.float64)
    f_sp, min_log_hz, min_log_mel, logstep = _SLANEY
    return np.where(
        mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel
    )


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """Triangular Slaney-normalised mel filters ``[n_fft // 2 + 1, n_mels]`` (float32).

    Matches ``librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax).T`` (htk=False, norm="slaney").
    """
    fmax = sample_rate / 2 if fmax is None else fmax
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(
            f"need 0 <= fmin < fmax <= sample_rate/2, got fmin={fmin}, fmax={fmax}, "
            f"sample_rate={sample_rate}"
        )
    fft_freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    mel_freqs = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(mel_freqs)
    ramps = mel_freqs[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_freqs[2:] - mel_freqs[:-2]))[:, None]
    return weights.T.astype(np.float32)


def hann_window(n: int) -> np.ndarray:
    """Periodic Hann window (``scipy.signal.get_window("hann", n, fftbins=True)``)."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


def num_frames(num_samples: int, hop_length: int) -> int:
    """Frames of a centred STFT: ``1 + num_samples // hop_length``."""
    return 1 + num_samples // hop_length


def power_spectrogram(wave: jax.Array, n_fft: int, hop_length: int) -> jax.Array:
    """``wave: [..., samples]`` -> ``|STFT|^2``: ``[..., frames, n_fft // 2 + 1]`` float32."""
    if wave.shape[-1] < n_fft // 2 + 1:
        raise ValueError(
            f"waveform has {wave.shape[-1]} samples; need at least n_fft//2+1 = {n_fft // 2 + 1}"
        )
    pad = [(0, 0)] * (wave.ndim - 1) + [(n_fft // 2, n_fft // 2)]
    padded = jnp.pad(wave.astype(jnp.float32), pad)
    frames = num_frames(wave.shape[-1], hop_length)
    index = np.arange(frames)[:, None] * hop_length + np.arange(n_fft)[None, :]
    windowed = padded[..., index] * hann_window(n_fft)
    spec = jnp.fft.rfft(windowed, n=n_fft, axis=-1)
    return jnp.real(spec) ** 2 + jnp.imag(spec) ** 2


@dataclasses.dataclass(frozen=True)
class LogMelConfig:
    """Front-end settings (defaults: 16 kHz, 25 ms window, 10 ms hop, 64 mel bins)."""

    sample_rate: int = 16000
    n_fft: int = 400
    hop_length: int = 160
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float | None = None
    log_offset: float = 1e-6


def log_mel_spectrogram(wave: jax.Array, config: LogMelConfig = LogMelConfig()) -> jax.Array:
    """``wave: [..., samples]`` -> ``log(mel power + log_offset)``: ``[..., frames, n_mels]``."""
    c = config
    fb = mel_filterbank(c.sample_rate, c.n_fft, c.n_mels, c.fmin, c.fmax)
    power = power_spectrogram(wave, c.n_fft, c.hop_length)
    mel = jnp.matmul(power, fb, precision=jax.lax.Precision.HIGHEST)
    return jnp.log(mel + c.log_offset)


@dataclasses.dataclass(frozen=True)
class AudioEncoderConfig:
    """Spectrogram transformer over ``num_samples``-long waveforms.

    The log-mel image ``[frames, n_mels]`` is cropped to whole ``patch_frames x patch_mels``
    patches (trailing frames dropped) and normalised as ``(x - mel_mean) / mel_std``.
    """

    sample_rate: int = 16000
    num_samples: int = 16000
    n_fft: int = 400
    hop_length: int = 160
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float | None = None
    log_offset: float = 1e-6
    mel_mean: float = 0.0
    mel_std: float = 1.0
    patch_frames: int = 16
    patch_mels: int = 16
    hidden_size: int = 192
    num_hidden_layers: int = 4
    num_attention_heads: int = 3
    intermediate_size: int = 768
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-6
    hidden_dropout_prob: float = 0.0
    pool: str = "cls"
    attention_impl: str = "xla"  # softmax attention: "xla" | "cudnn" | "pallas_flash"

    def __post_init__(self):
        check_attention_impl(self.attention_impl)
        if self.n_mels % self.patch_mels:
            raise ValueError(
                f"n_mels={self.n_mels} is not a multiple of patch_mels={self.patch_mels}"
            )
        if self.time_patches < 1:
            raise ValueError(
                f"num_samples={self.num_samples} gives {self.frames} frames, fewer "
                f"than patch_frames={self.patch_frames}"
            )
        if self.pool not in ("cls", "mean"):
            raise ValueError(f"pool={self.pool!r}; choose 'cls' or 'mean'")

    @property
    def front_end(self) -> LogMelConfig:
        names = (f.name for f in dataclasses.fields(LogMelConfig))
        return LogMelConfig(**{name: getattr(self, name) for name in names})

    @property
    def frames(self) -> int:
        return num_frames(self.num_samples, self.hop_length)

    @property
    def time_patches(self) -> int:
        return self.frames // self.patch_frames

    @property
    def num_patches(self) -> int:
        return self.time_patches * (self.n_mels // self.patch_mels)


class AudioEncoder(nn.Module):
    """``waveform: [batch, num_samples]`` -> pooled embedding ``[batch, hidden]``.

    :meth:`encode` gives the hidden states ``[batch, 1 + patches, hidden]``;
    :meth:`encode_log_mel` starts from a log-mel ``[batch, frames, n_mels]``.
    """

    config: AudioEncoderConfig
    normalizer: str = "softmax"
    dtype: Dtype = jnp.float32

    def setup(self):
        c = self.config
        self.patch_embed = patch_conv(
            c.hidden_size,
            (c.patch_frames, c.patch_mels),
            dtype=self.dtype,
        )
        self.cls_token, self.pos_embedding = cls_and_pos_params(self, c.hidden_size, c.num_patches)
        self.encoder = encoder_from_config(
            c,
            pre_norm=True,
            normalizer=self.normalizer,
            dtype=self.dtype,
        )
        self.norm = layer_norm(c.layer_norm_eps, dtype=self.dtype)

    def encode_log_mel(self, mel: jax.Array, *, train: bool = False) -> jax.Array:
        """``mel: [batch, frames >= time_patches * patch_frames, n_mels]`` -> hidden states."""
        c = self.config
        need = c.time_patches * c.patch_frames
        if mel.ndim != 3 or mel.shape[2] != c.n_mels or mel.shape[1] < need:
            raise ValueError(
                f"log-mel must be [batch, >= {need} frames, {c.n_mels} mels], got {mel.shape}"
            )
        mel = (mel[:, : c.time_patches * c.patch_frames] - c.mel_mean) / c.mel_std
        x = self.patch_embed(mel[..., None].astype(self.dtype))  # [b, T', F', hidden]
        x = flatten_patches(x) + self.pos_embedding[:, 1:].astype(self.dtype)
        x = prepend_cls(x, self.cls_token, self.pos_embedding, self.dtype)
        return self.norm(self.encoder(x, None, train=train))

    def encode(self, waveform: jax.Array, *, train: bool = False) -> jax.Array:
        """``waveform: [batch, num_samples]`` -> ``[batch, 1 + patches, hidden]``."""
        c = self.config
        if waveform.ndim != 2 or waveform.shape[1] != c.num_samples:
            raise ValueError(
                f"waveform must be [batch, {c.num_samples}] (num_samples of the "
                f"config), got shape {waveform.shape}"
            )
        return self.encode_log_mel(log_mel_spectrogram(waveform, c.front_end), train=train)

    def __call__(self, waveform: jax.Array, *, train: bool = False) -> jax.Array:
        hidden = self.encode(waveform, train=train)
        if self.config.pool == "cls":
            return hidden[:, 0]
        return jnp.mean(hidden[:, 1:], axis=1)
