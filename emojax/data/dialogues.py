"""``emojax_dialogues``: built-in multi-speaker dialogues for emotion recognition in conversation.

No download. Real: the words and their emotion labels (NRC Emotion Lexicon via ``nrclex``, the
same word-disjoint train/validation/test vocabulary split as ``emojax_senses``), the text features
(the pretrained all-MiniLM-L6-v2 token-embedding table) and the renderers of ``emojax_senses``
(sound, face). Synthetic: who speaks when and what each speaker feels.

Generation of one dialogue (seeded, :func:`generate_dialogue`):

1. ``2..max_speakers`` speakers; ``min_len..max_len`` utterances; the next utterance changes
   speaker with probability ``SWITCH`` (0.7).
2. Every speaker carries a hidden emotion (one of :data:`CLASSES`), drawn at the start; before
   each of the speaker's utterances it changes to another class with probability ``SHIFT`` (0.1).
3. An utterance is *revealing* with probability ``REVEAL`` (0.35), and always right after a shift:
   its words are one lexicon word labelled with the speaker's emotion plus one random word of the
   split's vocabulary; its face shows the emotion (intensity U(0.4, 1)) and its sound is rendered
   from the emotion word's affect. Otherwise it is *ambiguous*: two words without any emotion label,
   a face with a faint trace of the emotion (intensity U(0, 0.15)) and a neutral sound.
4. The label of every utterance is its speaker's current emotion.

So an ambiguous utterance can only be labelled from the same speaker's revealing utterances
around it (context- and speaker-dependent): a per-utterance model stays near chance on them.

Features per utterance: ``text [384]`` (mean MiniLM token-embedding rows of the words' word
pieces), ``audio [80]`` (mean and std over time of a 40-bin log-mel spectrogram of the 0.5 s
rendered sound), ``visual [256]`` (the 32x32 rendered face, 2x2 average-pooled, in [0, 1]).
Every feature dimension is standardised with the train split's mean and std (the three
modalities have very different raw scales: MiniLM rows ~0.04, log-mels ~5). The arrays are
cached as ``.npz`` in ``data_dir`` (or kept in memory when it is empty).
"""

from __future__ import annotations

import functools
import hashlib
import os

import numpy as np

CLASSES = ("anger", "disgust", "fear", "joy", "sadness", "surprise")
SPLITS = ("train", "validation", "test")
DIMS = {"audio": 80, "text": 384, "visual": 256}
SWITCH, SHIFT, REVEAL = 0.7, 0.1, 0.35
SAMPLE_RATE, WINDOW, HOP, N_MELS = 8000, 200, 80, 40
VERSION = "2"


def _lexicon_classes():
    from emojax.data.lexicon import EMOTIONS

    return np.array([EMOTIONS.index(c) for c in CLASSES])


@functools.cache
def _filterbank() -> np.ndarray:
    from emojax.nn.audio import mel_filterbank

    return mel_filterbank(SAMPLE_RATE, 256, N_MELS)


def audio_features(wave: np.ndarray) -> np.ndarray:
    """``wave [samples]`` -> ``[80]``: mean and std over 25 ms frames (10 ms hop) of the
    log-mel (40 bins) power spectrum."""
    frames = 1 + (len(wave) - WINDOW) // HOP
    index = np.arange(WINDOW)[None, :] + HOP * np.arange(frames)[:, None]
    power = np.abs(np.fft.rfft(wave[index] * np.hamming(WINDOW), n=256)) ** 2 / 256
    mel = np.log(power @ _filterbank() + 1e-6)
    return np.concatenate([mel.mean(0), mel.std(0)]).astype(np.float32)


def visual_features(face: np.ndarray) -> np.ndarray:
    """``face [32, 32, 1] uint8`` -> ``[256]`` (2x2 average pooling, scaled to [0, 1])."""
    f = face[..., 0].astype(np.float32).reshape(16, 2, 16, 2).mean((1, 3)) / 255.0
    return f.reshape(-1)


@functools.cache
def word_table(minilm_path: str | None = None) -> np.ndarray:
    """``[vocab, 384]``: each lexicon word's mean word-piece row of MiniLM's embedding table."""
    from emojax.convert.bert import load_minilm
    from emojax.data.lexicon import load_lexicon

    _, variables, tokenizer = load_minilm(minilm_path)
    table = np.asarray(variables["params"]["word_embeddings"]["embedding"])
    pieces = tokenizer(list(load_lexicon().words), add_special_tokens=False)["input_ids"]
    return np.stack([table[p].mean(0) if p else np.zeros(table.shape[1]) for p in pieces]).astype(
        np.float32
    )


def generate_dialogue(rng: np.random.Generator, pools: dict, *, min_len, max_len, max_speakers):
    """One dialogue: ``{"speaker" [n], "label" [n], "revealing" [n], "words" [n, 2],
    "intensity" [n], "emotion_word" [n]}`` (word ids; -1: none). ``pools``: the split's
    ``"neutral"`` word ids and ``"by_class"`` (a list of word-id arrays, one per class)."""
    n = int(rng.integers(min_len, max_len + 1))
    n_spk = int(rng.integers(2, max_speakers + 1))
    state = rng.integers(len(CLASSES), size=n_spk)
    speaker = int(rng.integers(n_spk))
    out = {k: [] for k in ("speaker", "label", "revealing", "words", "intensity", "emotion_word")}
    for i in range(n):
        if i and rng.random() < SWITCH:
            speaker = int((speaker + rng.integers(1, n_spk)) % n_spk)
        shifted = i > 0 and rng.random() < SHIFT
        if shifted:
            state[speaker] = (state[speaker] + rng.integers(1, len(CLASSES))) % len(CLASSES)
        emotion = int(state[speaker])
        revealing = shifted or rng.random() < REVEAL
        if revealing:
            cue = int(rng.choice(pools["by_class"][emotion]))
            other = int(rng.choice(pools["all"]))
            words, intensity = [cue, other], rng.uniform(0.4, 1.0)
        else:
            cue = -1
            words, intensity = list(rng.choice(pools["neutral"], 2)), rng.uniform(0.0, 0.15)
        out["speaker"].append(speaker)
        out["label"].append(emotion)
        out["revealing"].append(revealing)
        out["words"].append(words)
        out["intensity"].append(intensity)
        out["emotion_word"].append(cue)
    return {k: np.asarray(v) for k, v in out.items()}


def _render(rng, dialogue, lexicon, table) -> dict:
    from emojax.data.senses import affect, render

    classes = _lexicon_classes()
    feats = {"text": [], "audio": [], "visual": []}
    for i in range(len(dialogue["label"])):
        lex_class = classes[dialogue["label"][i]]
        face_q = np.zeros(8, np.float32)
        face_q[lex_class] = dialogue["intensity"][i]
        valence = float(affect.VALENCE[lex_class]) * dialogue["intensity"][i]
        cue = dialogue["emotion_word"][i]
        if cue >= 0:
            q, v, a = affect.word_affect(lexicon.emotions[cue], lexicon.sentiments[cue])
            q = 0.5 * q + 0.5 * (face_q > 0)
            v, a = (
                0.5 * v + 0.5 * affect.VALENCE[lex_class],
                0.5 * a + 0.5 * affect.AROUSAL[lex_class],
            )
        else:
            q, v, a = np.zeros(8, np.float32), rng.normal(0, 0.2), rng.normal(0, 0.2)
        feats["audio"].append(audio_features(render.render_audio(rng, q, v, a)))
        feats["visual"].append(visual_features(render.render_face(rng, face_q, valence)))
        feats["text"].append(table[dialogue["words"][i]].mean(0))
    return {k: np.stack(v).astype(np.float32) for k, v in feats.items()}


def _split_pools(split: str, seed: int) -> dict:
    from emojax.data.lexicon import load_lexicon
    from emojax.data.senses.scenes import split_words

    lexicon = load_lexicon()
    pool = split_words(lexicon, seed)[split]
    emotions = lexicon.emotions[pool]
    return {
        "all": pool,
        "neutral": pool[emotions.sum(1) == 0],
        "by_class": [pool[emotions[:, c] == 1] for c in _lexicon_classes()],
    }


def generate_split(
    split: str,
    num_dialogues: int,
    *,
    seed: int = 0,
    min_len: int = 6,
    max_len: int = 20,
    max_speakers: int = 3,
    minilm_path: str | None = None,
) -> dict[str, np.ndarray]:
    """A split as flat utterance arrays plus ``offsets [num_dialogues + 1]``."""
    from emojax.data.lexicon import load_lexicon

    if split not in SPLITS:
        raise ValueError(f"emojax_dialogues: unknown split {split!r}; expected one of {SPLITS}")
    if not 2 <= max_speakers or min_len < 1 or max_len < min_len:
        raise ValueError(
            f"emojax_dialogues: need max_speakers >= 2 and 1 <= min_len <= max_len, got "
            f"{max_speakers}, {min_len}, {max_len}"
        )
    lexicon, table = load_lexicon(), word_table(minilm_path)
    pools = _split_pools(split, seed)
    rng = np.random.default_rng([seed, SPLITS.index(split), 0xD1A])
    parts = []
    for _ in range(num_dialogues):
        d = generate_dialogue(
            rng, pools, min_len=min_len, max_len=max_len, max_speakers=max_speakers
        )
        parts.append({**d, **_render(rng, d, lexicon, table)})
    keys = ("text", "audio", "visual", "speaker", "label", "revealing")
    flat = {k: np.concatenate([p[k] for p in parts]) for k in keys}
    flat["speaker"] = flat["speaker"].astype(np.int32)
    flat["label"] = flat["label"].astype(np.int32)
    flat["offsets"] = np.concatenate([[0], np.cumsum([len(p["label"]) for p in parts])])
    return flat


class DialogueSource:
    """grain random-access source: ``source[i]`` -> one dialogue ``{"text" [n, 384],
    "audio" [n, 80], "visual" [n, 256], "speaker" [n], "label" [n], "revealing" [n]}``."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays
        self.offsets = arrays["offsets"]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> dict:
        lo, hi = int(self.offsets[index]), int(self.offsets[index + 1])
        return {k: v[lo:hi] for k, v in self.arrays.items() if k != "offsets"}

    def __repr__(self) -> str:
        return f"DialogueSource({len(self)} dialogues)"


def load_source(split: str, data_dir: str | None = None, **config) -> DialogueSource:
    """The split's source; ``config``: num_dialogues (of this split), num_train (the train
    split's size, for the standardisation statistics), seed, min_len, max_len, max_speakers,
    minilm_path. With ``data_dir`` the raw arrays are cached there (``emojax_dialogues/*.npz``)."""
    num_train = config.pop("num_train", None)
    raw = _load(split, data_dir or "", tuple(sorted(config.items())))
    if split == "train":
        train = raw
    else:
        train_config = {**config, "num_dialogues": num_train or config["num_dialogues"]}
        train = _load("train", data_dir or "", tuple(sorted(train_config.items())))
    return DialogueSource(standardize(raw, train))


def standardize(arrays: dict, train: dict) -> dict:
    """Each modality ``(x - mean_train) / std_train`` per feature dimension (std floored)."""
    out = dict(arrays)
    for m in DIMS:
        mean, std = train[m].mean(0), train[m].std(0)
        out[m] = ((arrays[m] - mean) / np.maximum(std, 1e-3)).astype(np.float32)
    return out


@functools.lru_cache(maxsize=8)
def _load(split: str, data_dir: str, config: tuple) -> dict:
    """Raw (unstandardised) arrays of a split, generated or read from the ``.npz`` cache."""
    kwargs = dict(config)
    if not data_dir:
        return generate_split(split, **kwargs)
    key = hashlib.sha1(repr((VERSION, split, config)).encode()).hexdigest()[:12]
    path = os.path.join(os.path.expanduser(data_dir), "emojax_dialogues", f"{split}-{key}.npz")
    if os.path.exists(path):
        with np.load(path) as f:
            return dict(f)
    arrays = generate_split(split, **kwargs)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return arrays
