"""``emojax_senses``: the built-in default dataset (no download; built on first use, cached).

Real: the words and their emotion/sentiment labels (NRC Emotion Lexicon, Mohammad & Turney 2013,
shipped by ``nrclex``). Synthetic: the scenes (which words are seen together) and the renderings.
Each example is a scene of five lexicon words, one per sense (sight, sound, touch, smell, taste);
the vocabulary is split word-disjointly into train/validation/test. docs/data.md gives every rule.

Usage::

    from emojax.data import senses
    source = senses.load_source("train")         # random access: len(source), source[i] -> dict
    senses.FIELDS["emotion"]                     # shape/dtype/meaning of each field
"""

from __future__ import annotations

import fcntl
import os

from emojax.data.lexicon import EMOTIONS, SENTIMENTS, Lexicon, load_lexicon
from emojax.data.senses.builder import EmojaxSenses, SensesConfig, features, make_config
from emojax.data.senses.render import AUDIO_SAMPLES, IMAGE_SIZE, SAMPLE_RATE
from emojax.data.senses.scenes import SENSES, SPLITS, split_words

NAME = "emojax_senses"

# field -> (shape, dtype, meaning). The names are a contract (EmoSense, the trainer, the docs).
FIELDS = {
    "image": ((32, 32, 3), "uint8", "sight rendering of the sight word (shapes, colours, light)"),
    "face": ((32, 32, 1), "uint8", "face whose expression shows the scene's emotion"),
    "audio": ((4000,), "float32", "0.5 s at 8 kHz, tones rendered from the sound word"),
    "touch": ((2,), "float32", "(pressure in [0,1], temperature in [-1,1]) from the touch word"),
    "words": ((5,), "string", "identifiers of sight, sound, touch, smell, taste (bytes)"),
    "word_ids": ((5,), "int32", "index of each word in vocabulary()"),
    "emotion": ((8,), "float32", "target distribution over EMOTIONS (sums to 1, sparse)"),
    "emotion_multi_hot": ((8,), "int32", "emotions carried by any word of the scene"),
    "sentiment": ((2,), "float32", "(positive, negative) distribution, sums to 1"),
    "label": ((), "int32", "argmax of emotion (ties: theme emotion, then lowest index)"),
}


def vocabulary() -> tuple[str, ...]:
    """All lexicon words in ``word_ids`` order (sorted)."""
    return load_lexicon().words


def split_vocabulary(split: str, seed: int = 0) -> tuple[str, ...]:
    """The words a split's scenes are drawn from (disjoint across splits)."""
    _check_split(split)
    lexicon = load_lexicon()
    return tuple(lexicon.words[i] for i in split_words(lexicon, seed)[split])


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"emojax_senses: unknown split {split!r}; expected one of {SPLITS}")


def _builder(config: SensesConfig, data_dir: str | None) -> EmojaxSenses:
    # TFDS refuses a custom config that shares a registered config's name: pass those by name.
    registered = {c.name for c in EmojaxSenses.BUILDER_CONFIGS}
    arg = config.name if config.name in registered else config
    return EmojaxSenses(config=arg, data_dir=data_dir, file_format="array_record")


def get_builder(
    data_dir: str | None = None,
    *,
    seed: int = 0,
    num_train: int = 20_000,
    num_validation: int = 2_000,
    num_test: int = 2_000,
    workers: int | None = None,
) -> EmojaxSenses:
    """The builder, prepared: generated into ``data_dir`` (TFDS default dir if None) on first use.

    Concurrent first uses (several processes) are serialised with a lock file in ``data_dir``.
    ``workers``: processes rendering examples during a first build (default: min(2, cpus));
    the bytes written do not depend on it.
    """
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    config = make_config(seed, num_train, num_validation, num_test)
    builder = _builder(config, data_dir)
    if not builder.is_prepared():
        root = os.path.expanduser(os.fspath(builder.data_dir_root))
        os.makedirs(root, exist_ok=True)
        with open(os.path.join(root, f".{NAME}.{config.name}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                builder = _builder(config, data_dir)
                if not builder.is_prepared():
                    builder.generation_workers = workers
                    builder.download_and_prepare()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    return builder


def load_source(split: str, data_dir: str | None = None, **config):
    """Random-access source of a split (``len``, ``source[i]`` -> dict of numpy fields).

    ``config``: seed, num_train, num_validation, num_test, workers (see :func:`get_builder`).
    """
    _check_split(split)
    return get_builder(data_dir, **config).as_data_source(split=split)


__all__ = [
    "AUDIO_SAMPLES",
    "EMOTIONS",
    "FIELDS",
    "IMAGE_SIZE",
    "NAME",
    "SAMPLE_RATE",
    "SENSES",
    "SENTIMENTS",
    "SPLITS",
    "EmojaxSenses",
    "Lexicon",
    "SensesConfig",
    "features",
    "get_builder",
    "load_lexicon",
    "load_source",
    "make_config",
    "split_vocabulary",
    "vocabulary",
]
