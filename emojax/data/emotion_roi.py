"""``emotion_roi``: EmotionROI image emotion dataset (Peng et al. 2016) from local files.

Expected in ``manual_dir``::

    images/<class>/<file>                       JPEG/PNG, <class> one of CLASSES
    training_testing_split/training.txt         one "<class>/<file>" per line
    training_testing_split/testing.txt          one "<class>/<file>" per line

Fields: ``image`` (encoded bytes; decode with ``transforms.DecodeImage``), ``label`` (6 classes),
``sentiment`` (the seed-002 merge: anger, disgust, fear, sadness -> 0 negative; joy, surprise ->
1 positive), ``filename``.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

from emojax.data.features import raw_tensor
from emojax.data.manual import check_image, manual_dir_of, prepare_builder, require_files

CLASSES = ("anger", "disgust", "fear", "joy", "sadness", "surprise")
SENTIMENTS = ("negative", "positive")
POSITIVE = frozenset({"joy", "surprise"})
SPLIT_FILES = {
    "train": "training_testing_split/training.txt",
    "test": "training_testing_split/testing.txt",
}


def sentiment_of(class_name: str) -> int:
    """The binary merge used by the ANP-distillation seed: 1 positive, 0 negative."""
    return int(class_name in POSITIVE)


def read_split_list(path: str) -> list[tuple[str, str]]:
    """(class, relative image path) per non-empty line; validates the class names."""
    entries = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip().replace("\\", "/")
            if not line:
                continue
            parts = line.split("/")
            if parts[0] == "images":
                parts = parts[1:]
            if len(parts) != 2 or parts[0] not in CLASSES:
                raise ValueError(
                    f"emotion_roi: {path}:{number}: {line!r} is not '<class>/<file>' with a "
                    f"class in {CLASSES}"
                )
            entries.append((parts[0], "/".join(parts)))
    if not entries:
        raise ValueError(f"emotion_roi: {path} lists no images")
    return entries


class EmotionRoi(tfds.core.GeneratorBasedBuilder):
    """EmotionROI: 1,980 Flickr images, 6 emotions, fixed train/test split."""

    VERSION = tfds.core.Version("1.0.0")
    # No checksums file next to the code (nothing is downloaded); also avoids TFDS resolving
    # the package as a resource, which fails for some editable installs.
    code_path = None
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Extract EmotionROI (images/, training_testing_split/) here."

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=(), dtype=np.object_),
                    "label": raw_tensor((), np.int32),
                    "sentiment": raw_tensor((), np.int32),
                    "filename": tfds.features.Text(),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        root = manual_dir_of(dl_manager, "emotion_roi")
        lists = require_files(root, list(SPLIT_FILES.values()), "emotion_roi")
        return {
            split: self._generate_examples(root, read_split_list(path))
            for split, path in zip(SPLIT_FILES, lists, strict=True)
        }

    def _generate_examples(self, root, entries):
        for class_name, relative in entries:
            (path,) = require_files(root, [os.path.join("images", relative)], "emotion_roi")
            with open(path, "rb") as f:
                data = f.read()
            check_image(data, path, "emotion_roi")
            yield (
                relative,
                {
                    "image": data,
                    "label": np.int32(CLASSES.index(class_name)),
                    "sentiment": np.int32(sentiment_of(class_name)),
                    "filename": relative,
                },
            )


def load_source(split: str, *, manual_dir=None, data_dir=None):
    """Random-access source of ``train`` or ``test``."""
    if split not in SPLIT_FILES:
        raise ValueError(
            f"emotion_roi: unknown split {split!r}; expected one of {tuple(SPLIT_FILES)}"
        )
    return prepare_builder(EmotionRoi, data_dir=data_dir, manual_dir=manual_dir).as_data_source(
        split=split
    )
