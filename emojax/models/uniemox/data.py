"""UniEmoX's built-in data: ``emojax_senses`` scenes with a person placed in them (no download).

Each ``emojax_senses`` example (a 32x32 sight image, a 32x32 face showing the scene's emotion,
five words, the emotion label) becomes one scene photo:

* the sight image upsampled 2x (nearest) to the canvas ``[64, 64, 3]``;
* a person: the face resized to a head of ``s`` px (``s`` uniform in 22..30), tinted with a
  skin tone, on a torso rectangle (random clothing colour, width 0.8 s, height 0.6 s) below it,
  at a uniform position; its box ``[y0, x0, y1, x1]`` (fractions of the canvas) is the person box;
* attributes, as EmoSet's: scene type = the sight word; main subjects = "a person" and where it
  stands (left / centre / right); brightness (mean luma) and colour saturation (mean HSV
  saturation), both COMPUTED FROM THE PIXELS of the composed photo and binned
  (low / medium / high); facial expression = the expression word of the emotion the face shows;
  action = the sound word; emotion = the label's name;
* the caption: the six REFERENCES.md templates filled in, tokenised with a closed word-level
  vocabulary (:func:`vocabulary`), ``[48]`` int32 ending in EOT, zero-padded.

Placement and tint are seeded by (data seed, split, index). The splits are ``emojax_senses``'
word-disjoint splits (no test word, so no test scene, is seen in training), of the configured
sizes (``emojax_senses`` builds them on first use; the default 20,000 / 2,000 / 2,000).
"""

from __future__ import annotations

import functools
import re
import zlib

import numpy as np
from PIL import Image

IMAGE_SIZE = 64
CAPTION_LENGTH = 48
PAD, UNK, BOS, EOT = 0, 1, 2, 3  # EOT != 2: CLIP's text tower pools at the first EOT token
EMOTIONS = ("anger", "anticipation", "disgust", "fear", "joy", "sadness", "surprise", "trust")
EXPRESSIONS = ("angry", "eager", "disgusted", "scared", "happy", "sad", "surprised", "calm")
LEVELS = ("low", "medium", "high")
PLACES = ("on the left", "in the centre", "on the right")
# the templates of REFERENCES.md ("UniEmoX"), in order
TEMPLATES = (
    "The scene type of this photo is {}.",
    "The main subjects are {}.",
    "The image has a brightness of {} and color saturation of {}.",
    "Human facial expression is {}.",
    "The action being performed is {}.",
    "The overall emotion conveyed is {}.",
)
# bin edges (fractions in [0, 1]) of brightness and saturation: terciles of the built-in photos
BRIGHTNESS_EDGES = (0.31, 0.50)
SATURATION_EDGES = (0.33, 0.40)
_SKIN = np.array([[224, 172, 140], [198, 134, 96], [141, 85, 54], [240, 200, 170]], np.float32)
_SPLIT_CODE = {"train": 0, "validation": 1, "test": 2}


def captions(attributes: dict) -> tuple[str, ...]:
    """The prompt sentences of one example's attributes (keys: scene, subjects, brightness,
    saturation, expression, action, emotion), template order; a sentence whose value is absent
    (None or "") is left out (EmoSet; the built-in photos have every attribute)."""
    a = attributes
    filled = (
        (TEMPLATES[0], (a["scene"],)),
        (TEMPLATES[1], (a["subjects"],)),
        (TEMPLATES[2], (a["brightness"], a["saturation"])),
        (TEMPLATES[3], (a["expression"],)),
        (TEMPLATES[4], (a["action"],)),
        (TEMPLATES[5], (a["emotion"],)),
    )
    return tuple(t.format(*values) for t, values in filled if all(values))


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9'\-]+", text.lower())


@functools.cache
def vocabulary() -> tuple[str, ...]:
    """The closed word-level vocabulary of the captions: 4 specials, template words, attribute
    words and every ``emojax_senses`` word (sorted)."""
    from emojax.data import senses

    words = set()
    for template in TEMPLATES:
        words.update(_words(template.replace("{}", " ")))
    for group in (EMOTIONS, EXPRESSIONS, LEVELS, PLACES, ("a person",)):
        for phrase in group:
            words.update(_words(phrase))
    words.update(w.lower() for w in senses.vocabulary())
    return ("<pad>", "<unk>", "<bos>", "<eot>", *sorted(words))


@functools.cache
def _word_index() -> dict[str, int]:
    return {w: i for i, w in enumerate(vocabulary())}


def tokenize(sentences, length: int = CAPTION_LENGTH) -> np.ndarray:
    """Sentences joined -> ``[length]`` int32 word ids + EOT, zero-padded (truncated to fit)."""
    index = _word_index()
    ids = [index.get(w, UNK) for s in sentences for w in _words(s)][: length - 1] + [EOT]
    out = np.zeros(length, np.int32)
    out[: len(ids)] = ids
    return out


def brightness(image: np.ndarray) -> float:
    """Mean luma (ITU-R BT.601) of ``[H, W, 3]`` uint8, in [0, 1]."""
    x = np.asarray(image, np.float32) / 255.0
    return float(np.mean(x @ np.array([0.299, 0.587, 0.114], np.float32)))


def saturation(image: np.ndarray) -> float:
    """Mean HSV saturation ``(max - min) / max`` of ``[H, W, 3]`` uint8, in [0, 1]."""
    x = np.asarray(image, np.float32)
    high, low = x.max(axis=-1), x.min(axis=-1)
    return float(np.mean(np.where(high > 0, (high - low) / np.maximum(high, 1e-6), 0.0)))


def level(value: float, edges: tuple[float, float]) -> str:
    """low / medium / high by two bin edges."""
    return LEVELS[int(np.searchsorted(np.asarray(edges), value, side="right"))]


def place_person(
    canvas: np.ndarray, face: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Paste a person (tinted face on a torso) into ``canvas [S, S, 3] uint8``.

    Returns the new canvas and the box ``[y0, x0, y1, x1]`` float32 in [0, 1].
    """
    size = canvas.shape[0]
    head = int(rng.integers(22, 31))
    torso_w, torso_h = int(round(0.8 * head)), int(round(0.6 * head))
    height = head + torso_h
    y0 = int(rng.integers(0, size - height + 1))
    x0 = int(rng.integers(0, size - head + 1))
    grey = np.asarray(Image.fromarray(face[..., 0]).resize((head, head), Image.BILINEAR))
    skin = _SKIN[int(rng.integers(len(_SKIN)))]
    tinted = grey[..., None].astype(np.float32) / 170.0 * skin
    out = canvas.astype(np.float32)
    out[y0 : y0 + head, x0 : x0 + head] = tinted
    tx = x0 + (head - torso_w) // 2
    out[y0 + head : y0 + height, tx : tx + torso_w] = rng.uniform(20, 235, size=3)
    box = np.array([y0, x0, y0 + height, x0 + head], np.float32) / size
    return np.clip(out, 0, 255).astype(np.uint8), box


def compose(example: dict, rng: np.random.Generator) -> dict:
    """One ``emojax_senses`` example -> ``{"image", "box", "label", "attributes"}``."""
    scene = np.repeat(np.repeat(np.asarray(example["image"]), 2, axis=0), 2, axis=1)
    image, box = place_person(scene, np.asarray(example["face"]), rng)
    words = [w.decode() if isinstance(w, bytes) else str(w) for w in example["words"]]
    label = int(example["label"])
    centre = (box[1] + box[3]) / 2
    attributes = {
        "scene": words[0],
        "subjects": f"a person {PLACES[min(int(centre * 3), 2)]}",
        "brightness": level(brightness(image), BRIGHTNESS_EDGES),
        "saturation": level(saturation(image), SATURATION_EDGES),
        "expression": EXPRESSIONS[label],
        "action": words[1],
        "emotion": EMOTIONS[label],
    }
    return {"image": image, "box": box, "label": np.int32(label), "attributes": attributes}


class SensesScenes:
    """Random-access source (grain): ``len`` and ``[i]`` -> ``{"image" [64, 64, 3] uint8,
    "box" [4] float32, "label" [] int32, "caption" [48] int32, "prompt_id" [] int32}``.

    ``prompt_id`` indexes the prompt table of :func:`all_captions` (train, validation, test
    concatenated), so text features are computed once per prompt set.
    """

    def __init__(self, split: str, sizes: dict, *, data_dir: str | None = None, seed: int = 0):
        from emojax.data import senses

        if split not in _SPLIT_CODE:
            raise ValueError(
                f"uniemox built-in data: unknown split {split!r}; {tuple(_SPLIT_CODE)}"
            )
        self.split, self.seed = split, seed
        counts = {f"num_{k}": int(v) for k, v in sizes.items()}
        self.source = senses.load_source(split, data_dir, seed=seed, **counts)
        self.length = len(self.source)
        self.offset = sum(int(sizes[s]) for s in tuple(_SPLIT_CODE)[: _SPLIT_CODE[split]])

    def __len__(self) -> int:
        return self.length

    def example(self, index: int) -> dict:
        """The composed example with its attribute strings (for captions and docs)."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} examples")
        key = (self.seed, _SPLIT_CODE[self.split], index, zlib.crc32(b"uniemox"))
        return compose(self.source[index], np.random.default_rng(key))

    def __getitem__(self, index: int) -> dict:
        ex = self.example(int(index))
        return {
            "image": ex["image"],
            "box": ex["box"],
            "label": ex["label"],
            "caption": tokenize(captions(ex["attributes"])),
            "prompt_id": np.int32(self.offset + int(index)),
        }


def all_captions(sizes: dict, *, data_dir: str | None = None, seed: int = 0) -> np.ndarray:
    """``[train + validation + test, 48]`` int32: every example's caption, in prompt_id order."""
    rows = []
    for split in _SPLIT_CODE:
        source = SensesScenes(split, sizes, data_dir=data_dir, seed=seed)
        rows += [source[i]["caption"] for i in range(len(source))]
    return np.stack(rows)
