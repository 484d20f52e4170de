"""One ``emojax_senses`` example from (seed, split, index): scene -> targets -> renderings."""

from __future__ import annotations

import numpy as np

from emojax.data.lexicon import Lexicon
from emojax.data.senses import affect, render
from emojax.data.senses.scenes import SENSES, SPLITS, sample_scene, scene_targets, themed_pools

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
