"""Word-disjoint vocabulary splits and scene sampling for ``emojax_senses``.

A scene assigns one lexicon word (a sense identifier) to each of the five senses. Its targets come
only from the words' real NRC lexicon labels (see :func:`scene_targets`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emojax.data.lexicon import EMOTIONS, Lexicon

SENSES = ("sight", "sound", "touch", "smell", "taste")
SPLITS = ("train", "validation", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
# An emotion stays in the target if its mixture mass is at least this fraction of the largest.
SPARSITY_RATIO = 0.5
# Probability that a sense (other than the first) carries a word of the scene's theme emotion.
THEME_COHERENCE = 0.5


def split_words(lexicon: Lexicon, seed: int) -> dict[str, np.ndarray]:
    """Partitions word ids into disjoint train/validation/test pools (80/10/10, seeded).

    The permutation is stratified by each word's first emotion label (or "none"), so every split
    has words of every emotion. Returns split name -> sorted int32 word ids.
    """
    rng = np.random.default_rng([seed, 0x5E15E])
    first_label = np.where(
        lexicon.emotions.any(axis=1), lexicon.emotions.argmax(axis=1), len(EMOTIONS)
    )
    pools = {name: [] for name in SPLITS}
    for stratum in range(len(EMOTIONS) + 1):
        ids = rng.permutation(np.flatnonzero(first_label == stratum))
        n_train = int(round(SPLIT_FRACTIONS[0] * len(ids)))
        n_val = int(round(SPLIT_FRACTIONS[1] * len(ids)))
        pools["train"].append(ids[:n_train])
        pools["validation"].append(ids[n_train : n_train + n_val])
        pools["test"].append(ids[n_train + n_val :])
    return {k: np.sort(np.concatenate(v)).astype(np.int32) for k, v in pools.items()}


@dataclass(frozen=True)
class Scene:
    """word_ids: [5] (sight, sound, touch, smell, taste); theme: the sampled theme emotion."""

    word_ids: np.ndarray
    theme: int


def themed_pools(pool: np.ndarray, lexicon: Lexicon) -> list[np.ndarray]:
    """For each emotion, the words of ``pool`` labelled with it (computed once per split)."""
    return [pool[lexicon.emotions[pool, e] == 1] for e in range(len(EMOTIONS))]


def sample_scene(
    rng: np.random.Generator, pool: np.ndarray, pools_by_emotion: list[np.ndarray]
) -> Scene:
    """Samples a scene from a split's word pool.

    Theme emotion t ~ uniform over the 8 emotions; k = 1 + Binomial(4, THEME_COHERENCE) senses
    (chosen at random) get distinct words labelled with t; the others get distinct random words
    of the pool.
    """
    theme = int(rng.integers(len(EMOTIONS)))
    themed_pool = pools_by_emotion[theme]
    k = 1 + int(rng.binomial(len(SENSES) - 1, THEME_COHERENCE))
    chosen: list[int] = []
    while len(chosen) < k:
        word = int(themed_pool[rng.integers(len(themed_pool))])
        if word not in chosen:
            chosen.append(word)
    while len(chosen) < len(SENSES):
        word = int(pool[rng.integers(len(pool))])
        if word not in chosen:
            chosen.append(word)
    order = rng.permutation(len(SENSES))
    word_ids = np.asarray(chosen, np.int32)[np.argsort(order)]
    return Scene(word_ids=word_ids.astype(np.int32), theme=theme)


def scene_targets(word_ids: np.ndarray, theme: int, lexicon: Lexicon) -> dict[str, np.ndarray]:
    """Targets of a scene from its words' lexicon labels.

    mixture [8]: mean over the scene's emotion-bearing words of (multi-hot / its count), so each
      such word contributes one unit of mass split equally over its emotions.
    emotion [8]: the mixture keeping only emotions with at least SPARSITY_RATIO x its largest
      mass, renormalised to sum 1 (about 2 emotions per scene instead of 5 in the mixture).
    emotion_multi_hot [8]: emotion > 0.
    sentiment [2]: (positive, negative) word counts normalised to sum 1; [0.5, 0.5] if none.
    label: argmax of emotion; exact ties go to the theme emotion, then to the lowest index.
    """
    emotions = lexicon.emotions[word_ids].astype(np.float32)  # [5, 8]
    counts = emotions.sum(axis=1, keepdims=True)
    bearing = counts[:, 0] > 0
    mixture = (emotions[bearing] / counts[bearing]).mean(axis=0)
    emotion = np.where(mixture >= SPARSITY_RATIO * mixture.max(), mixture, 0.0)
    emotion = emotion / emotion.sum()
    sentiment_counts = lexicon.sentiments[word_ids].astype(np.float32).sum(axis=0)
    total = sentiment_counts.sum()
    sentiment = sentiment_counts / total if total > 0 else np.full(2, 0.5, np.float32)
    is_max = emotion >= emotion.max() - 1e-6
    label = theme if is_max[theme] else int(is_max.argmax())
    return {
        "emotion": emotion.astype(np.float32),
        "emotion_multi_hot": (emotion > 0).astype(np.int32),
        "sentiment": sentiment.astype(np.float32),
        "label": np.int32(label),
    }
