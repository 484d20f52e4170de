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

Real data (``data.source = "howto100m_features"``, configs/mcn/howto100m.py): :class:`FeatureClips`
turns ``howto100m_features`` / ``retrieval_features`` examples into the same clip fields (video
max-pooled and L2-normalised per part, audio cropped / padded with ``audio_nframes``, caption
word vectors from a local file); :func:`feature_source` picks the split's builder (docs/mcn.md
"Real data").
"""

from __future__ import annotations

import functools
import os

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


# -- real data: howto100m_features (pretraining) and retrieval_features (evaluation) -----------

FEATURE_SOURCES = ("howto100m_features",)
EVAL_SOURCES = ("", "howto100m_features", "retrieval_features")


def pool_video(
    video: np.ndarray, parts: tuple[int, ...] = (), *, where: str = "clip"
) -> np.ndarray:
    """MCN's clip video feature: ``video [seconds, D]`` -> max over the seconds, each part of the
    concatenated feature (``parts``: widths summing to D, e.g. (2048, 2048) for 2D + 3D; ``()``:
    one part) L2-normalised -> ``[D]`` float32."""
    video = np.asarray(video, np.float32)
    if video.ndim != 2 or video.shape[0] == 0:
        raise ValueError(f"{where}: video features must be [seconds>0, dim], got {video.shape}")
    parts = tuple(parts) or (video.shape[1],)
    if sum(parts) != video.shape[1]:
        raise ValueError(
            f"{where}: data.video_parts={parts} sum to {sum(parts)}, the video features have "
            f"{video.shape[1]} values"
        )
    pooled = np.split(video.max(axis=0), np.cumsum(parts)[:-1])
    return np.concatenate([p / max(float(np.linalg.norm(p)), 1e-12) for p in pooled]).astype(
        np.float32
    )


def crop_audio(audio: np.ndarray, frames: int, *, where: str = "clip") -> tuple[np.ndarray, int]:
    """``audio [F, bins]`` -> its first ``frames`` frames, zero-padded: ``([frames, bins],
    nframes = min(F, frames))`` (the official loaders' crop / pad)."""
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 2 or audio.shape[0] == 0:
        raise ValueError(f"{where}: audio must be [frames>0, bins], got {audio.shape}")
    n = min(audio.shape[0], frames)
    out = np.zeros((frames, audio.shape[1]), np.float32)
    out[:n] = audio[:n]
    return out, n


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes | np.bytes_) else str(value)


def clip_name(example: dict) -> str:
    """``howto100m_features`` clip ``<video_id> <start>-<end> s`` or ``retrieval_features``
    clip ``<clip_id>``, for error messages."""
    if "clip_id" in example:
        return f"retrieval_features clip {_text(example['clip_id'])!r}"
    video_id = _text(example.get("video_id", "?"))
    start, end = float(example.get("start", np.nan)), float(example.get("end", np.nan))
    return f"howto100m_features clip of video {video_id!r} at {start:.2f}-{end:.2f} s"


class FeatureClips(grain.transforms.Map):
    """A ``howto100m_features`` / ``retrieval_features`` example -> ``{"video" [video_dim],
    "audio" [audio_frames, n_mels], "audio_nframes" int32, "text" [max_words, word_dim],
    "text_mask" [max_words]}``, checked by :func:`check_clip` (a caption with no word in the
    word-vector file is an empty caption and raises, naming the clip and the caption).

    The word vectors are loaded from ``word_vectors_path`` on first use, once per process (the
    transform itself carries only the path to grain's workers).
    """

    def __init__(
        self,
        *,
        word_vectors_path: str,
        video_dim: int,
        word_dim: int,
        n_mels: int,
        audio_frames: int,
        max_words: int,
        video_parts: tuple[int, ...] = (),
        lowercase: bool = True,
        word_vectors_format: str = "auto",
        word_vectors_limit: int = 0,
    ):
        parts = tuple(int(p) for p in video_parts)
        if parts and sum(parts) != video_dim:
            raise ValueError(
                f"config.data.video_parts={parts} must sum to model.video_dim={video_dim}"
            )
        self.vectors_args = (str(word_vectors_path), word_vectors_format, int(word_vectors_limit))
        self.video_dim, self.word_dim, self.n_mels = video_dim, word_dim, n_mels
        self.audio_frames, self.max_words = audio_frames, max_words
        self.video_parts, self.lowercase = parts, lowercase

    def vectors(self):
        from emojax.data.word_vectors import cached_word_vectors

        vectors = cached_word_vectors(*self.vectors_args)
        if vectors.dim != self.word_dim:
            raise ValueError(
                f"word vectors {vectors.path!r} are {vectors.dim}-d, config.model.word_dim is "
                f"{self.word_dim}"
            )
        return vectors

    def map(self, example):
        from emojax.data.word_vectors import caption_vectors

        name = clip_name(example)
        caption = _text(example["text"])
        vectors = self.vectors()
        text, mask = caption_vectors(caption, vectors, self.max_words, lowercase=self.lowercase)
        audio, nframes = crop_audio(example["audio"], self.audio_frames, where=name)
        clip = {
            "video": pool_video(example["video"], self.video_parts, where=name),
            "audio": audio,
            "audio_nframes": np.int32(nframes),
            "text": text,
            "text_mask": mask,
        }
        where = f"{name} (caption {caption[:80]!r}; words known to {vectors.path})"
        return check_clip(
            clip, video_dim=self.video_dim, word_dim=self.word_dim, n_mels=self.n_mels, where=where
        )


def _howto_config(d, m):
    from emojax.data import howto100m

    fields = dict(
        video_dim=int(m.video_dim),
        n_mels=int(m.n_mels),
        audio_frames_per_second=int(d.get("audio_frames_per_second", 100)),
        max_seconds=int(d.get("max_seconds", 32)),
    )
    default = howto100m.HowTo100MConfig(name="default")
    same = all(getattr(default, k) == v for k, v in fields.items())
    name = "default" if same else "v{video_dim}_m{n_mels}_f{audio_frames_per_second}_s{max_seconds}"
    return howto100m.HowTo100MConfig(name=name.format(**fields), **fields)


def _retrieval_config(m):
    from emojax.data import retrieval_features

    fields = dict(video_dim=int(m.video_dim), n_mels=int(m.n_mels))
    same = (fields["video_dim"], fields["n_mels"]) == (4096, 40)
    name = "default" if same else "v{video_dim}_m{n_mels}".format(**fields)
    return retrieval_features.RetrievalFeaturesConfig(name=name, **fields)


def _eval_source(d) -> str:
    source = str(d.get("eval_source", "") or "")
    if source not in EVAL_SOURCES:
        raise ValueError(
            f"config.data.eval_source={source!r}: expected one of {EVAL_SOURCES} ('' = the "
            "training source's own validation split)"
        )
    return source or d.source


def feature_source(config, split: str):
    """The random-access source of ``split`` for MCN on real features: ``train`` from
    ``howto100m_features`` (``data.manual_dir``); other splits from ``data.eval_source``
    (``retrieval_features`` in ``data.eval_manual_dir``, or ``howto100m_features``'
    validation split when it is empty)."""
    d, m = config.data, config.model
    data_dir = d.get("data_dir", "") or None
    if split == "train":
        _check_eval_dir(config)
    if split == "train" or _eval_source(d) == "howto100m_features":
        from emojax.data import howto100m
        from emojax.data.manual import prepare_builder

        if split not in howto100m.SPLITS:
            raise ValueError(
                f"howto100m_features: unknown split {split!r}; expected {howto100m.SPLITS}"
            )
        builder = prepare_builder(
            howto100m.Howto100mFeatures,
            data_dir=data_dir,
            manual_dir=_required_dir(d, "manual_dir", "howto100m_features"),
            config=_howto_config(d, m),
        )
        if split not in builder.info.splits:
            raise ValueError(
                f"howto100m_features has no {split!r} split (no splits/{split}.txt when it was "
                "built): set config.data.eval_source='retrieval_features' and "
                "data.eval_manual_dir, or config.train.eval_every=0"
            )
        return builder.as_data_source(split=split)
    from emojax.data import retrieval_features

    manual = _required_dir(d, "eval_manual_dir", "retrieval_features")
    return retrieval_features.load_source(
        split, manual_dir=manual, data_dir=data_dir, config=_retrieval_config(m)
    )


def _check_eval_dir(config) -> None:
    """Fail at the start of a run, not at its first evaluation, when the eval files are unset."""
    if not config.train.get("eval_every", 0) or _eval_source(config.data) != "retrieval_features":
        return
    path = _required_dir(config.data, "eval_manual_dir", "retrieval_features")
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"config.data.eval_manual_dir={path!r} does not exist (the retrieval_features "
            "files; or set config.train.eval_every=0)"
        )


def _required_dir(d, key: str, dataset: str) -> str:
    path = str(d.get(key, "") or "")
    if not path:
        raise ValueError(
            f"config.data.{key} is empty: give the directory with the {dataset} files "
            f"(layout: docs/data.md, section '{dataset}')"
        )
    return path


def _word_vectors_path(d) -> str:
    path = str(d.get("word_vectors_path", "") or "")
    if not path:
        raise ValueError(
            "config.data.word_vectors_path is empty: give a local word2vec / GloVe file for the "
            "caption words (MCN: GoogleNews-vectors-negative300.bin); nothing is downloaded"
        )
    return path


def feature_transforms(config) -> list:
    """``[FeatureClips]`` for ``config`` (the same for every split)."""
    d, m = config.data, config.model
    return [
        FeatureClips(
            word_vectors_path=_word_vectors_path(d),
            video_dim=m.video_dim,
            word_dim=m.word_dim,
            n_mels=m.n_mels,
            audio_frames=d.audio_frames,
            max_words=d.max_words,
            video_parts=tuple(d.get("video_parts", ())),
            lowercase=bool(d.get("lowercase", True)),
            word_vectors_format=str(d.get("word_vectors_format", "auto")),
            word_vectors_limit=int(d.get("word_vectors_limit", 0)),
        )
    ]


def prepare_feature_data(config) -> None:
    """Build the training split and, when configured, the evaluation splits (and load the word
    vectors once, so a bad file fails here rather than in a grain worker)."""
    feature_source(config, "train")
    if config.train.get("eval_every", 0):
        feature_source(config, config.eval.split)
    feature_transforms(config)[0].vectors()
