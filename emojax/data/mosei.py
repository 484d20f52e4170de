"""``mosei``: CMU-MOSEI emotion dialogues from the COGMEN/Joyful-style feature pickle (no download).

Expected in ``manual_dir``: ``data_mosei.pkl``, the same pickle family as IEMOCAP's
(:mod:`emojax.data.iemocap`): ``{"train", "dev", "test"}`` lists of per-video samples (``Sample``
objects or dicts) with per-utterance ``speaker``, ``label``, ``text`` (or
``sbert_sentence_embeddings``, 768-d), ``audio`` (80-d), ``visual`` (35-d). Labels are
multi-label over :data:`EMOTIONS`: each utterance's ``label`` is a vector of 6 intensities or
flags (> 0 means present). Speakers: ints, or letters mapped in order of first appearance.
Loaded only through :func:`emojax.data.safe_pickle.safe_load` (an explicit allow-list).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from emojax.data.features import raw_tensor
from emojax.data.manual import manual_dir_of, prepare_builder, require_files
from emojax.data.safe_pickle import safe_load

EMOTIONS = ("happy", "sad", "anger", "surprise", "disgust", "fear")
SPLIT_KEYS = {"train": "train", "validation": "dev", "test": "test"}


@dataclasses.dataclass(eq=False)
class MoseiConfig(tfds.core.BuilderConfig):
    filename: str = "data_mosei.pkl"
    text_dim: int = 768
    audio_dim: int = 80
    visual_dim: int = 35


def _field(record: dict, names, vid, path):
    for name in names:
        if name in record:
            return record[name]
    raise ValueError(f"mosei: {path}: video {vid!r} has none of the fields {names}")


def video_example(sample, config: MoseiConfig, path: str) -> dict:
    """One video (a list of utterances) -> example, validating every field."""
    record = sample if isinstance(sample, dict) else vars(sample)
    vid = str(record.get("vid", "?"))
    labels = np.asarray(_field(record, ("label", "labels"), vid, path), np.float32)
    n = len(labels)
    if n == 0 or labels.shape != (n, len(EMOTIONS)) or not np.all(np.isfinite(labels)):
        raise ValueError(
            f"mosei: {path}: video {vid!r} labels have shape {labels.shape}; expected "
            f"[utterances, {len(EMOTIONS)}] finite values for {EMOTIONS}"
        )
    out = {"vid": vid, "label": (labels > 0).astype(np.float32)}
    text_key = ("sbert_sentence_embeddings", "text")
    for field, keys, dim in (
        ("text", text_key, config.text_dim),
        ("audio", ("audio",), config.audio_dim),
        ("visual", ("visual",), config.visual_dim),
    ):
        value = np.asarray(_field(record, keys, vid, path), np.float32)
        if value.shape != (n, dim) or not np.all(np.isfinite(value)):
            raise ValueError(
                f"mosei: {path}: video {vid!r} field {field!r} has shape {value.shape}, expected "
                f"({n}, {dim}) finite values"
            )
        out[field] = value
    speakers = list(_field(record, ("speaker", "speakers"), vid, path))
    if len(speakers) != n:
        raise ValueError(
            f"mosei: {path}: video {vid!r} has {len(speakers)} speakers for {n} labels"
        )
    names: dict = {}
    out["speaker"] = np.asarray(
        [
            int(s) if isinstance(s, (int, np.integer)) else names.setdefault(s, len(names))
            for s in speakers
        ],
        np.int32,
    )
    return out


class Mosei(tfds.core.GeneratorBasedBuilder):
    """CMU-MOSEI (Zadeh et al. 2018) emotion recognition, one example per video."""

    VERSION = tfds.core.Version("1.0.0")
    code_path = None
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Place data_mosei.pkl in manual_dir."
    BUILDER_CONFIGS = [MoseiConfig(name="emotion")]

    def _info(self):
        c = self.builder_config
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "vid": tfds.features.Text(),
                    "speaker": raw_tensor((None,), np.int32),
                    "label": raw_tensor((None, len(EMOTIONS)), np.float32),
                    "text": raw_tensor((None, c.text_dim), np.float32),
                    "audio": raw_tensor((None, c.audio_dim), np.float32),
                    "visual": raw_tensor((None, c.visual_dim), np.float32),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        root = manual_dir_of(dl_manager, "mosei")
        (path,) = require_files(root, [self.builder_config.filename], "mosei")
        data = safe_load(path)
        if not isinstance(data, dict) or not set(SPLIT_KEYS.values()) <= set(data):
            keys = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"mosei: {path} must hold a dict with train/dev/test, got {keys}")
        return {
            split: self._generate_examples(data[key], path) for split, key in SPLIT_KEYS.items()
        }

    def _generate_examples(self, videos, path):
        for i, sample in enumerate(videos):
            example = video_example(sample, self.builder_config, path)
            yield f"{i}_{example['vid']}", example


def load_source(split: str, *, manual_dir=None, data_dir=None):
    """Random-access source of one split (``train``/``validation``/``test``)."""
    if split not in SPLIT_KEYS:
        raise ValueError(f"mosei: unknown split {split!r}; expected one of {tuple(SPLIT_KEYS)}")
    builder = prepare_builder(Mosei, data_dir=data_dir, manual_dir=manual_dir, config="emotion")
    return builder.as_data_source(split=split)
