"""``twitter_borth``: the Twitter image-sentiment set of Borth et al. (2013), from local files.

603 tweets' images whose three AMT annotators agreed (470 positive, 133 negative), the set the
ANP-distillation seed evaluates on. Expected in ``manual_dir``::

    images/<file>          JPEG/PNG
    labels.txt             one "<file> <label>" per line (space, tab or comma separated);
                           label 1 / positive or 0 / negative; '#' starts a comment

Splits: a seeded, class-stratified 80/20 train/test partition (the paper: 80/20), the same for a
given ``split_seed``. Fields: ``image`` (encoded bytes), ``label`` (0 negative, 1 positive),
``filename``.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

from emojax.data.features import raw_tensor
from emojax.data.manual import check_image, manual_dir_of, prepare_builder, require_files

LABELS = {"0": 0, "1": 1, "negative": 0, "positive": 1, "neg": 0, "pos": 1}
TRAIN_FRACTION = 0.8


def read_labels(path: str) -> list[tuple[str, int]]:
    """(file, label) per line of ``labels.txt``; errors name file:line."""
    entries, seen = [], {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.replace(",", " ").split()
            if len(parts) != 2 or parts[1].lower() not in LABELS:
                raise ValueError(
                    f"twitter_borth: {path}:{number}: {line!r} is not '<file> <label>' with a "
                    f"label in {sorted(LABELS)}"
                )
            if parts[0] in seen:
                raise ValueError(
                    f"twitter_borth: {path}:{number}: {parts[0]!r} already listed on line "
                    f"{seen[parts[0]]}"
                )
            seen[parts[0]] = number
            entries.append((parts[0], LABELS[parts[1].lower()]))
    if not entries:
        raise ValueError(f"twitter_borth: {path} lists no images")
    return entries


def split_entries(entries, split_seed: int) -> dict[str, list[tuple[str, int]]]:
    """Class-stratified seeded 80/20 partition (order of ``entries`` kept inside each split)."""
    rng = np.random.default_rng([split_seed, 0x7B07])
    test = set()
    for label in (0, 1):
        members = [i for i, (_, y) in enumerate(entries) if y == label]
        chosen = rng.permutation(members)[: int(round((1 - TRAIN_FRACTION) * len(members)))]
        test.update(int(i) for i in chosen)
    return {
        "train": [e for i, e in enumerate(entries) if i not in test],
        "test": [e for i, e in enumerate(entries) if i in test],
    }


class TwitterBorthConfig(tfds.core.BuilderConfig):
    def __init__(self, *, split_seed: int = 0, **kwargs):
        super().__init__(name=f"split{split_seed}", **kwargs)
        self.split_seed = split_seed


class TwitterBorth(tfds.core.GeneratorBasedBuilder):
    """Borth et al. 2013 Twitter images (three-agree), binary sentiment."""

    VERSION = tfds.core.Version("1.0.0")
    code_path = None  # nothing downloaded, no checksums file
    BUILDER_CONFIGS = [TwitterBorthConfig(split_seed=0)]
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Put images/ and labels.txt here."

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=(), dtype=np.object_),
                    "label": raw_tensor((), np.int32),
                    "filename": tfds.features.Text(),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        root = manual_dir_of(dl_manager, "twitter_borth")
        (labels,) = require_files(root, ["labels.txt"], "twitter_borth")
        splits = split_entries(read_labels(labels), self.builder_config.split_seed)
        return {name: self._generate_examples(root, entries) for name, entries in splits.items()}

    def _generate_examples(self, root, entries):
        for name, label in entries:
            (path,) = require_files(root, [os.path.join("images", name)], "twitter_borth")
            with open(path, "rb") as f:
                data = f.read()
            check_image(data, path, "twitter_borth")
            yield name, {"image": data, "label": np.int32(label), "filename": name}


def load_source(split: str, *, split_seed: int = 0, manual_dir=None, data_dir=None):
    """Random-access source of ``train`` or ``test``."""
    if split not in ("train", "test"):
        raise ValueError(f"twitter_borth: unknown split {split!r}; expected 'train' or 'test'")
    config = TwitterBorthConfig(split_seed=split_seed)
    return prepare_builder(
        TwitterBorth, data_dir=data_dir, manual_dir=manual_dir, config=config
    ).as_data_source(split=split)
