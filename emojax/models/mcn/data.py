"""MCN's built-in data: ``emojax_senses`` scenes as video / audio / text clips (no download).

Each scene of ``emojax_senses`` becomes one clip:

* video: the sight image [32, 32, 3] through a fixed random ReLU feature map
  (``relu(x P)``, ``P`` Gaussian, seeded; x the image scaled to [0, 1] and centred), L2-normalised:
  ``[video_dim]``, the role of MCN's pooled 2D+3D CNN features;
* audio: the sound rendering (0.5 s at 8 kHz) as a 40-bin log-mel spectrogram with MCN's front end
  (pre-emphasis 0.97, 25 ms Hamming window, 10 ms hop): ``[48, 40]``, input of ResDAVEnet;
* text: the scene's five identifier words as word vectors: each word is the mean of its word-piece
  rows of the all-MiniLM-L6-v2 token embedding table (the real pretrained table, 384-d; MCN uses
  300-d word2vec), ``[5, 384]`` with a mask ``[5]``.

The splits are the word-disjoint splits of ``emojax_senses``: no test word, so no test scene,
is seen in training. Zero-shot retrieval asks which clip a caption (the words) belongs to.
"""

from __future__ import annotations

import functools

import grain
import numpy as np

from emojax.nn.audio import mel_filterbank

SAMPLE_RATE = 8000  # emojax_senses audio
N_MELS = 40
WINDOW = 200  # 25 ms at 8 kHz
HOP = 80  # 10 ms
PRE_EMPHASIS = 0.97
WORD_DIM = 384
IMAGE_DIM = 32 * 32 * 3


def log_mel(wave: np.ndarray) -> np.ndarray:
    """MCN's audio front end: ``wave [samples]`` -> ``log(mel power + 1e-6)`` ``[frames, 40]``."""
    wave = np.asarray(wave, np.float32)
    if wave.ndim != 1 or wave.shape[0] < WINDOW:
        raise ValueError(f"audio must be one channel of >= {WINDOW} samples, got {wave.shape}")
    emphasised = np.append(wave[:1], wave[1:] - PRE_EMPHASIS * wave[:-1])
    frames = 1 + (len(emphasised) - WINDOW) // HOP
    index = np.arange(WINDOW)[None, :] + HOP * np.arange(frames)[:, None]
    windowed = emphasised[index] * np.hamming(WINDOW).astype(np.float32)
    power = np.abs(np.fft.rfft(windowed, n=256)) ** 2 / 256
    mel = power @ _filterbank()
    return np.log(mel + 1e-6).astype(np.float32)


@functools.cache
def _filterbank() -> np.ndarray:
    return mel_filterbank(SAMPLE_RATE, 256, N_MELS)


@functools.cache
def video_projection(video_dim: int, seed: int = 0) -> np.ndarray:
    """The fixed feature map ``[3072, video_dim]`` (Gaussian, variance 2 / fan-in)."""
    rng = np.random.default_rng(seed + 4)
    return (rng.standard_normal((IMAGE_DIM, video_dim)) * np.sqrt(2.0 / IMAGE_DIM)).astype(
        np.float32
    )


def video_features(image: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """``image [..., 32, 32, 3] uint8`` -> L2-normalised ``relu(x P)`` ``[..., video_dim]``."""
    x = np.asarray(image, np.float32).reshape(*np.shape(image)[:-3], IMAGE_DIM) / 255.0 - 0.5
    features = np.maximum(x @ projection, 0.0)
    norm = np.linalg.norm(features, axis=-1, keepdims=True)
    return (features / np.maximum(norm, 1e-12)).astype(np.float32)


@functools.cache
def word_vector_table(words: tuple[str, ...], path: str | None = None) -> np.ndarray:
    """``[V, 384]``: each word's mean word-piece row of the MiniLM token embedding table."""
    from emojax.convert.bert import load_minilm

    _, variables, tokenizer = load_minilm(path)
    table = np.asarray(variables["params"]["word_embeddings"]["embedding"])
    pieces = tokenizer(list(words), add_special_tokens=False)["input_ids"]
    if any(len(p) == 0 for p in pieces):
        empty = [w for w, p in zip(words, pieces, strict=True) if not p][:5]
        raise ValueError(f"words without word pieces: {empty}")
    return np.stack([table[p].mean(axis=0) for p in pieces]).astype(np.float32)


def _check_features(clip: dict, field: str, shape: tuple, what: str, where: str) -> None:
    """``clip[field]`` (if present) has ``len(shape)`` dims, the given sizes (None: any) and
    only finite values."""
    if field not in clip:
        return
    value = np.asarray(clip[field])
    if value.ndim != len(shape) or any(
        want is not None and got != want for got, want in zip(value.shape, shape, strict=False)
    ):
        want = ", ".join("?" if n is None else str(n) for n in shape)
        raise ValueError(f"{where}: {field!r} must be [{want}] {what}, got {value.shape}")
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{where}: {field!r} has non-finite values")


def check_clip(
    clip: dict,
    *,
    video_dim: int | None = None,
    word_dim: int | None = None,
    n_mels: int | None = N_MELS,
    where: str = "clip",
) -> dict:
    """Check one clip on the host (NumPy, before batching) and return it unchanged.

    ``clip``: ``{"video": [video_dim], "audio": [frames, n_mels], "text": [W, word_dim],
    "text_mask": [W]}`` (a modality may be absent). Raises ``ValueError`` naming ``where``, the
    field, the value and what to do for: an empty caption (no valid word in ``text_mask``, or no
    words at all), mismatched ``text`` / ``text_mask`` lengths, wrong feature widths or ranks,
    non-finite features. For real data (a builder or a grain map), so that the model (which
    never reads device arrays on the host) only sees valid clips.
    """
    if "text" in clip or "text_mask" in clip:
        if "text" not in clip or "text_mask" not in clip:
            raise ValueError(f"{where}: 'text' and 'text_mask' go together; got {sorted(clip)}")
        text = np.asarray(clip["text"])
        mask = np.asarray(clip["text_mask"])
        if text.ndim != 2 or (word_dim is not None and text.shape[1] != word_dim):
            want = f"[words, {word_dim}]" if word_dim is not None else "[words, word_dim]"
            raise ValueError(f"{where}: 'text' must be {want} word vectors, got {text.shape}")
        if mask.shape != text.shape[:1]:
            raise ValueError(
                f"{where}: 'text_mask' must be [words] = {text.shape[:1]} (one flag per row of "
                f"'text'), got {mask.shape}"
            )
        if not np.any(mask != 0):
            raise ValueError(
                f"{where}: empty caption (no valid word: text_mask={mask.tolist()}); a clip "
                "needs at least one caption word to be retrieved by its text: drop it or give "
                "it a caption"
            )
        if not np.all(np.isfinite(text)):
            raise ValueError(f"{where}: 'text' has non-finite word vectors")
    _check_features(clip, "video", (video_dim,), "pooled features", where)
    _check_features(clip, "audio", (None, n_mels), "log-mel (bins last)", where)
    return clip


class SensesAsClips(grain.transforms.Map):
    """An ``emojax_senses`` example -> ``{"video", "audio", "text", "text_mask", "label"}``.

    Every clip passes :func:`check_clip` (an example without words is an empty caption and
    raises, naming the example's words and label).
    """

    def __init__(self, word_table: np.ndarray, video_dim: int, seed: int = 0):
        self.word_table = word_table
        self.video_dim = video_dim
        self.projection = video_projection(video_dim, seed)

    def map(self, example):
        words = np.asarray(example["word_ids"], np.int64).reshape(-1)
        clip = {
            "video": video_features(example["image"], self.projection),
            "audio": log_mel(example["audio"]),
            "text": self.word_table[words],
            "text_mask": np.ones(len(words), np.float32),
            "label": np.int32(example["label"]),
        }
        where = f"emojax_senses example (label {int(example['label'])}, words {words.tolist()})"
        return check_clip(
            clip, video_dim=self.video_dim, word_dim=self.word_table.shape[1], where=where
        )


def audio_frames(num_samples: int = 4000) -> int:
    """Frames of :func:`log_mel` for ``num_samples`` (48 for emojax_senses' 0.5 s)."""
    return 1 + (num_samples - WINDOW) // HOP
