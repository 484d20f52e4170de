"""``emoset``: EmoSet-118K (Yang et al., ICCV 2023) images with per-image attributes, local files.

Expected in ``manual_dir`` (the layout of the EmoSet-118K release)::

    info.json            {attribute: {"label2idx": {name: index}, ...}} for emotion, brightness,
                         colorfulness, scene, object, facial_expression, human_action
    train.json           [[emotion, image_id, image_path, annotation_path], ...]
    val.json, test.json  same (val -> split "validation")
    <image_path>         e.g. image/amusement/amusement_00000.jpg
    <annotation_path>    e.g. annotation/amusement/amusement_00000.json: {"emotion": ...,
                         "brightness": 0.4, "colorfulness": 0.6, "scene": ..., "object": [...],
                         "facial_expression": ..., "human_action": ...}; all but emotion optional

Fields: ``image`` (encoded bytes), ``image_id``, ``emotion`` (8 classes, info.json order),
``sentiment`` (0 positive: amusement/awe/contentment/excitement; 1 negative), the index of each
single-valued attribute (-1 when absent) and its name ("" when absent), ``object`` (indices).
"""

from __future__ import annotations

import json

import numpy as np
import tensorflow_datasets as tfds

from emojax.data.features import raw_tensor
from emojax.data.manual import check_image, manual_dir_of, prepare_builder, require_files

EMOTIONS = (
    "amusement",
    "anger",
    "awe",
    "contentment",
    "disgust",
    "excitement",
    "fear",
    "sadness",
)
POSITIVE = frozenset({"amusement", "awe", "contentment", "excitement"})
ATTRIBUTES = ("brightness", "colorfulness", "scene", "facial_expression", "human_action")
SPLIT_FILES = {"train": "train.json", "validation": "val.json", "test": "test.json"}


def _lookup(info: dict, attribute: str, value, where: str) -> int:
    table = info.get(attribute, {}).get("label2idx")
    if table is None:
        raise ValueError(f"emoset: info.json has no '{attribute}.label2idx' table")
    key = str(value)
    if key not in table:
        raise ValueError(f"emoset: {where}: {attribute} {value!r} is not in info.json")
    return int(table[key])


def annotation_example(info: dict, entry, root: str) -> tuple[str, dict]:
    """One ``[emotion, image_id, image_path, annotation_path]`` entry -> (key, example)."""
    if not (isinstance(entry, list | tuple) and len(entry) == 4):
        raise ValueError(f"emoset: split entry {entry!r} is not [emotion, id, image, annotation]")
    emotion, image_id, image_rel, annotation_rel = entry
    if emotion not in EMOTIONS:
        raise ValueError(f"emoset: image {image_id!r} has emotion {emotion!r}; not in {EMOTIONS}")
    image_path, annotation_path = require_files(root, [image_rel, annotation_rel], "emoset")
    with open(annotation_path, encoding="utf-8") as f:
        annotation = json.load(f)
    if annotation.get("emotion", emotion) != emotion:
        raise ValueError(
            f"emoset: {annotation_rel} says emotion {annotation['emotion']!r} but the split "
            f"file says {emotion!r}"
        )
    with open(image_path, "rb") as f:
        image = f.read()
    check_image(image, image_path, "emoset")
    example = {
        "image": image,
        "image_id": str(image_id),
        "emotion": np.int32(_lookup(info, "emotion", emotion, annotation_rel)),
        "sentiment": np.int32(emotion not in POSITIVE),
    }
    for attribute in ATTRIBUTES:
        value = annotation.get(attribute)
        present = value is not None
        example[attribute] = np.int32(
            _lookup(info, attribute, value, annotation_rel) if present else -1
        )
        example[f"{attribute}_name"] = str(value) if present else ""
    objects = annotation.get("object") or []
    example["object"] = np.array(
        [_lookup(info, "object", o, annotation_rel) for o in objects], np.int32
    )
    return str(image_id), example


class Emoset(tfds.core.GeneratorBasedBuilder):
    """EmoSet-118K: 118,102 images, 8 emotions, 6 describable attributes."""

    VERSION = tfds.core.Version("1.0.0")
    # No checksums file next to the code (nothing is downloaded); also avoids TFDS resolving
    # the package as a resource, which fails for some editable installs.
    code_path = None
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Extract EmoSet-118K (info.json, *.json, image/, annotation/)."

    def _info(self):
        scalar_int = raw_tensor((), np.int32)
        features = {
            "image": tfds.features.Tensor(shape=(), dtype=np.object_),
            "image_id": tfds.features.Text(),
            "emotion": scalar_int,
            "sentiment": scalar_int,
            "object": raw_tensor((None,), np.int32),
        }
        for attribute in ATTRIBUTES:
            features[attribute] = scalar_int
            features[f"{attribute}_name"] = tfds.features.Text()
        return tfds.core.DatasetInfo(
            builder=self, description=__doc__, features=tfds.features.FeaturesDict(features)
        )

    def _split_generators(self, dl_manager):
        root = manual_dir_of(dl_manager, "emoset")
        info_path, *split_paths = require_files(
            root, ["info.json", *SPLIT_FILES.values()], "emoset"
        )
        with open(info_path, encoding="utf-8") as f:
            info = json.load(f)
        return {
            split: self._generate_examples(info, path, root)
            for split, path in zip(SPLIT_FILES, split_paths, strict=True)
        }

    def _generate_examples(self, info, split_path, root):
        with open(split_path, encoding="utf-8") as f:
            entries = json.load(f)
        if not isinstance(entries, list):
            raise ValueError(f"emoset: {split_path} must hold a JSON list of entries")
        for entry in entries:
            yield annotation_example(info, entry, root)


def load_source(split: str, *, manual_dir=None, data_dir=None):
    """Random-access source of ``train``, ``validation`` or ``test``."""
    if split not in SPLIT_FILES:
        raise ValueError(f"emoset: unknown split {split!r}; expected one of {tuple(SPLIT_FILES)}")
    return prepare_builder(Emoset, data_dir=data_dir, manual_dir=manual_dir).as_data_source(
        split=split
    )
