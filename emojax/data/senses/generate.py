"""One ``emojax_senses`` example from (seed, split, index): scene -> targets -> renderings."""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import multiprocessing

import numpy as np

from emojax.data.lexicon import Lexicon, load_lexicon
from emojax.data.senses import affect, render
from emojax.data.senses.scenes import (
    SENSES,
    SPLITS,
    sample_scene,
    scene_targets,
    split_words,
    themed_pools,
)

SIGHT, SOUND, TOUCH = SENSES.index("sight"), SENSES.index("sound"), SENSES.index("touch")


def example_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """Independent generator per example, so examples do not depend on generation order."""
    return np.random.default_rng([seed, SPLITS.index(split), index])


def make_example(
    lexicon: Lexicon,
    pool: np.ndarray,
    seed: int,
    split: str,
    index: int,
    pools_by_emotion: list[np.ndarray] | None = None,
) -> dict:
    """All fields of one example (see ``emojax.data.senses.FIELDS``).

    The image, sound and touch renderings follow the affect of the sight, sound and touch words;
    the face shows the scene's overall target distribution. Smell and taste are text only.
    ``pools_by_emotion``: ``themed_pools(pool, lexicon)``, precomputed when generating many.
    """
    rng = example_rng(seed, split, index)
    if pools_by_emotion is None:
        pools_by_emotion = themed_pools(pool, lexicon)
    scene = sample_scene(rng, pool, pools_by_emotion)
    targets = scene_targets(scene.word_ids, scene.theme, lexicon)

    def affect_of(sense: int):
        word = scene.word_ids[sense]
        return affect.word_affect(lexicon.emotions[word], lexicon.sentiments[word])

    sight_q, sight_v, sight_a = affect_of(SIGHT)
    sound_q, sound_v, sound_a = affect_of(SOUND)
    touch_q, touch_v, _ = affect_of(TOUCH)
    scene_valence = float(targets["emotion"] @ affect.VALENCE)
    sentiment = targets["sentiment"]
    if targets["emotion"].sum() == 0:  # cannot happen (theme word), kept for safety
        scene_valence = 0.6 * float(sentiment[0] - sentiment[1])
    return {
        "image": render.render_image(rng, sight_q, sight_v, sight_a),
        "face": render.render_face(rng, targets["emotion"], scene_valence),
        "audio": render.render_audio(rng, sound_q, sound_v, sound_a),
        "touch": render.render_touch(rng, touch_q, touch_v),
        "words": np.array([lexicon.words[i] for i in scene.word_ids], dtype=object),
        "word_ids": scene.word_ids,
        **targets,
    }


@functools.lru_cache(maxsize=8)
def _split_pools(seed: int, split: str):
    lexicon = load_lexicon()
    pool = split_words(lexicon, seed)[split]
    return lexicon, pool, themed_pools(pool, lexicon)


def generate_range(seed: int, split: str, start: int, stop: int) -> list[dict]:
    """Examples ``start..stop-1`` of a split (the unit of work of parallel builds)."""
    lexicon, pool, by_emotion = _split_pools(seed, split)
    return [make_example(lexicon, pool, seed, split, i, by_emotion) for i in range(start, stop)]


def _generate_range_args(args: tuple[int, str, int, int]) -> list[dict]:
    return generate_range(*args)


def generate_split(seed: int, split: str, num_examples: int, workers: int = 0, chunk: int = 256):
    """Yields (index, example) for a whole split, in index order.

    ``workers > 1`` renders chunks in that many spawned processes (the caller's script needs the
    usual ``if __name__ == "__main__"`` guard, as for grain workers). If the pool cannot start or
    breaks, generation continues in this process. The bytes do not depend on ``workers``.
    """
    next_index = 0
    if workers > 1 and num_examples >= 2 * chunk:
        ranges = [
            (seed, split, s, min(s + chunk, num_examples)) for s in range(0, num_examples, chunk)
        ]
        try:
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
                for examples in pool.map(_generate_range_args, ranges):
                    for example in examples:
                        yield next_index, example
                        next_index += 1
        except (concurrent.futures.process.BrokenProcessPool, OSError, RuntimeError) as error:
            logging.warning(
                "emojax_senses: parallel generation stopped (%s); continuing in-process", error
            )
    for start in range(next_index, num_examples, chunk):
        stop = min(start + chunk, num_examples)
        for offset, example in enumerate(generate_range(seed, split, start, stop)):
            yield start + offset, example
