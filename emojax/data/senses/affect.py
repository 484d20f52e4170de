"""Per-emotion affect tables: the documented rules that map lexicon labels to rendered signals.

Order follows :data:`emojax.data.lexicon.EMOTIONS`:
anger, anticipation, disgust, fear, joy, sadness, surprise, trust.
Valence/arousal are coarse circumplex positions; colours follow Plutchik's wheel.
"""

from __future__ import annotations

import numpy as np

# valence in [-1, 1] (unpleasant .. pleasant)
VALENCE = np.array([-0.6, 0.4, -0.6, -0.7, 0.9, -0.7, 0.2, 0.6], np.float32)
# arousal in [-1, 1] (calm .. excited)
AROUSAL = np.array([0.8, 0.5, 0.3, 0.8, 0.6, -0.5, 0.9, -0.2], np.float32)
# RGB colour of each emotion (Plutchik wheel)
COLOURS = np.array(
    [
        [220, 30, 30],  # anger: red
        [255, 140, 0],  # anticipation: orange
        [150, 60, 190],  # disgust: purple
        [20, 120, 60],  # fear: dark green
        [250, 220, 40],  # joy: yellow
        [40, 80, 220],  # sadness: blue
        [40, 190, 230],  # surprise: light blue
        [130, 210, 90],  # trust: light green
    ],
    np.float32,
)
# touch: pressure in [0, 1], temperature in [-1 cold, 1 warm]
PRESSURE = np.array([0.9, 0.5, 0.6, 0.7, 0.4, 0.2, 0.6, 0.3], np.float32)
TEMPERATURE = np.array([0.8, 0.3, -0.4, -0.7, 0.6, -0.6, 0.0, 0.5], np.float32)

ANGER, ANTICIPATION, DISGUST, FEAR, JOY, SADNESS, SURPRISE, TRUST = range(8)


def word_affect(emotion_multi_hot: np.ndarray, sentiment_multi_hot: np.ndarray):
    """Affect of one word from its lexicon labels.

    emotion_multi_hot: [8]; sentiment_multi_hot: [2] (positive, negative).
    Returns (q [8] float32 summing to 1, or all zeros for a word with no emotion label;
    valence scalar; arousal scalar). A word without emotions gets valence 0.6*(pos - neg) and
    arousal 0.
    """
    counts = emotion_multi_hot.astype(np.float32)
    total = counts.sum()
    if total > 0:
        q = counts / total
        return q, float(q @ VALENCE), float(q @ AROUSAL)
    valence = 0.6 * float(sentiment_multi_hot[0]) - 0.6 * float(sentiment_multi_hot[1])
    return counts, valence, 0.0
