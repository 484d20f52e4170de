"""Built-in data of ``anp_distill`` (no download) and the text side shared with real data.

Each example is an image of ``2..max_regions`` objects (regions) with known boxes, a region
label (the panoptic noun) and top-4 ANPs whose adjectives are real NRC-lexicon words. Rules
(all seeded per example; docs/anp_distill.md repeats them):

* image class ``y``: binary (negative/positive, prior 2:1 like EmotionROI's merge) or the six
  EmotionROI emotions (uniform); every class has a pool of adjectives: NRC words with an
  adjective suffix, labelled with that emotion (binary: only-positive / only-negative words),
  ``adjectives_per_class`` of them, the same pools for every split (SentiBank's fixed vocabulary);
* region 0 is the main object (radius 11-16 px, strong contrast); its class is ``y`` with
  probability ``main_agree``; the others are small (radius 5-8 px) with class ``y`` with
  probability ``minor_agree``, else another class;
* a region's top-4 adjectives come from its class's pool with probability ``anp_precision``,
  else from another class's pool (SentiBank's errors); the noun is the region label;
* pixels: the background's brightness and hue follow the image class (global information the
  ANP text never holds); each object's colour mixes its label's colour with its class's colour
  (Plutchik's wheel, ``emojax.data.senses.affect``) and its brightness follows the class valence;
  Gaussian pixel noise;
* the observed label is ``y`` flipped to another class with probability ``label_noise``
  (annotation noise, in every split);
* splits: disjoint example streams (seed, split, index); train/validation/test sizes by config.

Region text: ``adj_1 label adj_2 label adj_3 label adj_4 label <end>``, left-padded to
``TOKENS = 9`` so the end token is always last; words are hashed into ``vocab_size`` buckets
(crc32), ids 0 = padding and 1 = end. A missing region is ``[pad ... pad, end]`` with mask 0.
"""

from __future__ import annotations

import functools
import zlib

import numpy as np

from emojax.data.senses import affect

PAD, END = 0, 1
TOP_ANPS = 4
TOKENS = 2 * TOP_ANPS + 1
EMOTION_CLASSES = ("anger", "disgust", "fear", "joy", "sadness", "surprise")  # EmotionROI
SENTIMENT_CLASSES = ("negative", "positive")
ADJECTIVE_SUFFIXES = ("ful", "ous", "ive", "able", "ible", "less", "ish", "ic", "al", "ant", "ent")
NOUN_SUFFIXES = ("ment", "ness", "ity", "ion", "ist", "dent")
# region label -> (shape: 0 circle, 1 square, 2 triangle; base RGB colour)
REGION_LABELS = {
    "person": (0, (200, 160, 130)),
    "dog": (0, (150, 100, 60)),
    "cat": (2, (120, 120, 120)),
    "car": (1, (60, 60, 180)),
    "tree": (2, (40, 140, 40)),
    "flower": (0, (230, 90, 160)),
    "house": (1, (170, 90, 60)),
    "sky": (1, (120, 180, 230)),
    "boat": (2, (240, 240, 240)),
    "bird": (2, (90, 70, 40)),
    "food": (0, (220, 170, 60)),
    "horse": (1, (110, 70, 40)),
}


def class_names(num_classes: int) -> tuple[str, ...]:
    if num_classes == 2:
        return SENTIMENT_CLASSES
    if num_classes == 6:
        return EMOTION_CLASSES
    raise ValueError(f"num_classes={num_classes}: 2 (sentiment, the paper) or 6 (EmotionROI)")


def token_id(word: str, vocab_size: int) -> int:
    """Hashed id of a word in ``[2, vocab_size)`` (0 and 1 are padding and end)."""
    return 2 + zlib.crc32(word.strip().lower().encode()) % (vocab_size - 2)


def region_tokens(adjectives, label: str, vocab_size: int) -> np.ndarray:
    """``[TOKENS]`` int32: ``adj label`` pairs of the (up to 4) top ANPs, left-padded, then end."""
    adjectives = list(adjectives)[:TOP_ANPS]
    ids = []
    for adjective in adjectives:
        ids += [token_id(adjective, vocab_size), token_id(label, vocab_size)]
    return np.array([PAD] * (TOKENS - 1 - len(ids)) + ids + [END], np.int32)


def empty_tokens() -> np.ndarray:
    return np.array([PAD] * (TOKENS - 1) + [END], np.int32)


@functools.cache
def adjective_pools(num_classes: int, per_class: int, seed: int = 0) -> tuple[tuple[str, ...], ...]:
    """One tuple of real NRC adjectives per class (disjoint across classes, seeded choice)."""
    from emojax.data.lexicon import EMOTIONS, load_lexicon

    lexicon = load_lexicon()
    words = np.array(lexicon.words)
    adjective = np.array(
        [
            w.endswith(ADJECTIVE_SUFFIXES) and not w.endswith(NOUN_SUFFIXES) and len(w) > 4
            for w in words
        ]
    )
    positive, negative = lexicon.sentiments[:, 0] == 1, lexicon.sentiments[:, 1] == 1
    rng = np.random.default_rng([seed, 0xA4B])
    if num_classes == 2:
        labelled = np.stack([negative & ~positive, positive & ~negative], axis=1)
    else:
        labelled = lexicon.emotions[:, [EMOTIONS.index(n) for n in class_names(num_classes)]] == 1
    # each class takes its words carrying the fewest other classes first; pools stay disjoint
    spread = labelled.sum(axis=1)
    taken = np.zeros(len(words), bool)
    pools = []
    for cls in range(num_classes):
        candidates = np.flatnonzero(labelled[:, cls] & adjective & ~taken)
        order = np.lexsort((rng.random(len(candidates)), spread[candidates]))
        chosen = candidates[order[:per_class]]
        if len(chosen) < per_class:
            raise ValueError(
                f"only {len(chosen)} NRC adjectives for class {cls}; lower adjectives_per_class"
            )
        taken[chosen] = True
        pools.append(tuple(sorted(str(w) for w in words[chosen])))
    return tuple(pools)


def _class_colour(cls: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    from emojax.data.lexicon import EMOTIONS

    if num_classes == 2:  # positive: joy/trust colours; negative: anger/fear/sadness/disgust
        names = ("joy", "trust") if cls == 1 else ("anger", "fear", "sadness", "disgust")
        name = names[int(rng.integers(len(names)))]
    else:
        name = EMOTION_CLASSES[cls]
    return affect.COLOURS[EMOTIONS.index(name)]


def _valence(cls: int, num_classes: int) -> float:
    from emojax.data.lexicon import EMOTIONS

    if num_classes == 2:
        return 1.0 if cls == 1 else -1.0
    return float(affect.VALENCE[EMOTIONS.index(EMOTION_CLASSES[cls])])


def _shape_mask(size: int, kind: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    dy, dx = yy - cy, xx - cx
    if kind == 0:
        return dy * dy + dx * dx <= r * r
    if kind == 1:
        return (np.abs(dy) <= 0.85 * r) & (np.abs(dx) <= 0.85 * r)
    return (dy >= -r) & (dy <= 0.8 * r) & (np.abs(dx) <= 0.6 * (dy + r))


def _other(rng: np.random.Generator, cls: int, num_classes: int) -> int:
    return int((cls + rng.integers(1, num_classes)) % num_classes)


def make_example(c, split: str, index: int) -> dict[str, np.ndarray]:
    """One built-in example (``c``: the ``config.data`` fields used below)."""
    split_id = ("train", "validation", "test").index(split)
    rng = np.random.default_rng([c.data_seed, split_id, index])
    k, size, max_regions = c.num_classes, c.image_size, c.max_regions
    pools = adjective_pools(k, c.adjectives_per_class, c.data_seed)
    labels = tuple(REGION_LABELS)
    y = int(rng.random() < c.positive_rate) if k == 2 else int(rng.integers(k))
    valence = _valence(y, k)
    base = 120 + c.background_valence * valence + rng.normal(0, 30)
    tint = _class_colour(y, k, rng) - 128
    image = np.full((size, size, 3), base, np.float32) + 0.1 * tint + rng.normal(0, 15, 3)
    n = int(rng.integers(2, max_regions + 1))
    boxes = np.zeros((max_regions, 4), np.float32)
    mask = np.zeros((max_regions,), np.float32)
    tokens = np.tile(empty_tokens(), (max_regions, 1))
    region_class = np.zeros((max_regions,), np.int32)
    for r in range(n):
        agree = c.main_agree if r == 0 else c.minor_agree
        z = y if rng.random() < agree else _other(rng, y, k)
        label = labels[int(rng.integers(len(labels)))]
        kind, label_colour = REGION_LABELS[label]
        radius = rng.uniform(11, 16) if r == 0 else rng.uniform(5, 8)
        cy, cx = rng.uniform(radius, size - radius, 2)
        mix = c.colour_mix
        colour = (1 - mix) * np.asarray(label_colour) + mix * _class_colour(z, k, rng)
        colour = (colour + rng.normal(0, 30, 3)) * (1 + 0.1 * _valence(z, k))
        if r == 0:  # the main object stands out from the background
            colour = colour + np.sign(colour.mean() - base + 1e-3) * 40
        image[_shape_mask(size, kind, cy, cx, radius)] = colour
        boxes[r] = np.clip([cy - radius, cx - radius, cy + radius, cx + radius], 0, size) / size
        adjectives = []
        for _ in range(TOP_ANPS):
            source = z if rng.random() < c.anp_precision else _other(rng, z, k)
            adjectives.append(pools[source][int(rng.integers(len(pools[source])))])
        tokens[r] = region_tokens(adjectives, label, c.vocab_size)
        mask[r] = 1.0
        region_class[r] = z
    image += rng.normal(0, 12, image.shape)
    observed = _other(rng, y, k) if rng.random() < c.label_noise else y
    return {
        "image": np.clip(image, 0, 255).astype(np.uint8),
        "label": np.int32(observed),
        "boxes": boxes,
        "region_mask": mask,
        "tokens": tokens,
    }


class BuiltinRegions:
    """Random-access source of one split of the built-in data (examples made on access)."""

    def __init__(self, c, split: str):
        sizes = {"train": c.num_train, "validation": c.num_validation, "test": c.num_test}
        if split not in sizes:
            raise ValueError(f"anp_distill built-in data: unknown split {split!r}; {sorted(sizes)}")
        self.config, self.split, self.size = c, split, int(sizes[split])
        adjective_pools(c.num_classes, c.adjectives_per_class, c.data_seed)  # fail early

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return make_example(self.config, self.split, int(index))
