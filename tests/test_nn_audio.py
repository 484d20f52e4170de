"""Log-mel front end vs librosa (filterbank, STFT power, log-mel) and the spectrogram encoder."""

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest

from emojax.nn.audio import (
    AudioEncoder,
    AudioEncoderConfig,
    LogMelConfig,
    log_mel_spectrogram,
    mel_filterbank,
    power_spectrogram,
)


@pytest.mark.parametrize(
    "sr,n_fft,n_mels,fmin,fmax",
    [
        (16000, 400, 64, 0.0, None),
        (48000, 1024, 64, 50.0, 14000.0),
        (22050, 2048, 128, 0.0, 8000.0),
    ],
)
def test_mel_filterbank_matches_librosa(sr, n_fft, n_mels, fmin, fmax):
    ours = mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax).T
    np.testing.assert_allclose(ours, ref, atol=1e-6, rtol=1e-4)


def _signal(seconds=0.5, sr=16000, seed=0):
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.RandomState(seed)
    return (0.5 * np.sin(2 * np.pi * 440 * t) + 0.1 * rng.randn(t.size)).astype(np.float32)


def test_power_spectrogram_matches_librosa_stft():
    wave = _signal()
    ours = np.asarray(power_spectrogram(jnp.asarray(wave), 400, 160))
    ref = np.abs(librosa.stft(wave, n_fft=400, hop_length=160, center=True, pad_mode="constant"))
    ref = ref.T**2
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-4 * ref.max(), rtol=1e-4)


def test_log_mel_matches_librosa_melspectrogram():
    config = LogMelConfig()
    waves = np.stack([_signal(seed=0), _signal(seed=1) * 0.01])
    ours = np.asarray(jax.jit(log_mel_spectrogram, static_argnums=1)(waves, config))
    for wave, got in zip(waves, ours, strict=True):
        mel = librosa.feature.melspectrogram(
            y=wave, sr=16000, n_fft=400, hop_length=160, n_mels=64, pad_mode="constant"
        )
        ref = np.log(mel.T.astype(np.float64) + config.log_offset)
        np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)


def test_front_end_rejects_short_and_bad_ranges():
    with pytest.raises(ValueError, match="samples"):
        power_spectrogram(jnp.zeros(100), 400, 160)
    with pytest.raises(ValueError, match="fmax"):
        mel_filterbank(16000, 400, 64, fmin=0.0, fmax=9000.0)


SMALL = AudioEncoderConfig(
    num_samples=4000,
    n_mels=32,
    patch_frames=8,
    patch_mels=16,
    hidden_size=32,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=64,
)


def test_audio_encoder_shapes_and_gradients():
    enc = AudioEncoder(SMALL)
    wave = jnp.asarray(np.stack([_signal(0.25, seed=i) for i in range(2)]))
    params = jax.jit(enc.init)(jax.random.key(0), wave)
    assert SMALL.frames == 26 and SMALL.num_patches == 3 * 2

    @jax.jit
    def forward(p):
        return enc.apply(p, wave, method=AudioEncoder.encode), enc.apply(p, wave)

    hidden, pooled = forward(params)
    assert hidden.shape == (2, 7, 32)
    np.testing.assert_allclose(pooled, hidden[:, 0], atol=1e-5)
    grads = jax.jit(jax.grad(lambda p: jnp.sum(enc.apply(p, wave) ** 2)))(params)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    with pytest.raises(ValueError, match="num_samples"):
        jax.eval_shape(enc.apply, params, wave[:, :3999])
    with pytest.raises(ValueError, match="patch_mels"):
        AudioEncoderConfig(n_mels=30, patch_mels=16)
