"""``howto100m_features``: HowTo100M clips (Miech et al. 2019) as precomputed features, for MCN.

Expected in ``manual_dir``::

    caption.json                 {video_id: {"start": [s...], "end": [s...], "text": [str...]}}
                                 (the HowTo100M caption file; times in seconds)
    splits/train.txt             one video_id per line (splits/validation.txt optional)
    video/<video_id>.npy         float32 [seconds, video_dim]: one feature per second
                                 (MCN: 2D ResNet-152 + 3D ResNeXt-101 -> 4096)
    audio/<video_id>.npy         float32 [frames, n_mels]: log-mel, frames_per_second per second

One example per caption segment: the segment's video rows floor(start)..ceil(end) (at least one),
its audio frames, the caption text and the times. Clips longer than ``max_seconds`` are cut.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

import numpy as np
import tensorflow_datasets as tfds

from emojax.data.features import raw_tensor
from emojax.data.manual import manual_dir_of, prepare_builder, require_files

SPLITS = ("train", "validation")


@dataclasses.dataclass(eq=False)
class HowTo100MConfig(tfds.core.BuilderConfig):
    video_dim: int = 4096
    n_mels: int = 40
    audio_frames_per_second: int = 100
    max_seconds: int = 32


def read_video_ids(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        ids = [line.strip() for line in f if line.strip()]
    if not ids:
        raise ValueError(f"howto100m_features: {path} lists no video ids")
    return ids


def _load_features(path: str, dim: int, name: str) -> np.ndarray:
    array = np.load(path)
    if array.ndim != 2 or array.shape[1] != dim or array.shape[0] == 0:
        raise ValueError(
            f"howto100m_features: {path} has shape {array.shape}; expected [time>0, {dim}] "
            f"({name}; set it in the config if your features differ)"
        )
    return array.astype(np.float32)


def clip_examples(video_id: str, captions: dict, video, audio, config: HowTo100MConfig):
    """(key, example) per caption segment of one video, validated."""
    starts, ends, texts = (captions.get(k) for k in ("start", "end", "text"))
    if (
        starts is None
        or ends is None
        or texts is None
        or not len(starts) == len(ends) == len(texts)
    ):
        raise ValueError(
            f"howto100m_features: caption.json[{video_id!r}] needs equal-length "
            "'start', 'end' and 'text' lists"
        )
    fps = config.audio_frames_per_second
    for index, (start, end, text) in enumerate(zip(starts, ends, texts, strict=True)):
        start, end = float(start), float(end)
        if not 0 <= start < end:
            raise ValueError(
                f"howto100m_features: {video_id} caption {index}: start {start} / end {end} "
                "must satisfy 0 <= start < end"
            )
        end = min(end, start + config.max_seconds)
        first = min(int(math.floor(start)), len(video) - 1)
        last = max(first + 1, min(int(math.ceil(end)), len(video)))
        a_first = min(int(start * fps), len(audio) - 1)
        a_last = max(a_first + 1, min(int(end * fps), len(audio)))
        yield (
            f"{video_id}_{index}",
            {
                "video_id": video_id,
                "text": str(text),
                "start": np.float32(start),
                "end": np.float32(end),
                "video": video[first:last],
                "audio": audio[a_first:a_last],
            },
        )


class Howto100mFeatures(tfds.core.GeneratorBasedBuilder):
    """HowTo100M caption clips with per-second video features and log-mel audio."""

    VERSION = tfds.core.Version("1.0.0")
    # No checksums file next to the code (nothing is downloaded); also avoids TFDS resolving
    # the package as a resource, which fails for some editable installs.
    code_path = None
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Place caption.json, splits/, video/, audio/ in manual_dir."
    BUILDER_CONFIGS = [HowTo100MConfig(name="default")]

    def _info(self):
        c = self.builder_config
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "video_id": tfds.features.Text(),
                    "text": tfds.features.Text(),
                    "start": raw_tensor((), np.float32),
                    "end": raw_tensor((), np.float32),
                    "video": raw_tensor((None, c.video_dim), np.float32),
                    "audio": raw_tensor((None, c.n_mels), np.float32),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        root = manual_dir_of(dl_manager, "howto100m_features")
        caption_path, train_list = require_files(
            root, ["caption.json", "splits/train.txt"], "howto100m_features"
        )
        with open(caption_path, encoding="utf-8") as f:
            captions = json.load(f)
        splits = {"train": self._generate_examples(root, captions, read_video_ids(train_list))}
        validation_list = os.path.join(root, "splits", "validation.txt")
        if os.path.exists(validation_list):
            ids = read_video_ids(validation_list)
            splits["validation"] = self._generate_examples(root, captions, ids)
        return splits

    def _generate_examples(self, root, captions, video_ids):
        config = self.builder_config
        for video_id in video_ids:
            if video_id not in captions:
                raise ValueError(f"howto100m_features: video {video_id!r} not in caption.json")
            video_path, audio_path = require_files(
                root, [f"video/{video_id}.npy", f"audio/{video_id}.npy"], "howto100m_features"
            )
            video = _load_features(video_path, config.video_dim, "video_dim")
            audio = _load_features(audio_path, config.n_mels, "n_mels")
            yield from clip_examples(video_id, captions[video_id], video, audio, config)


def load_source(split: str, *, manual_dir=None, data_dir=None, config=None):
    """Random-access source of ``train`` or ``validation`` (``config``: a HowTo100MConfig)."""
    if split not in SPLITS:
        raise ValueError(f"howto100m_features: unknown split {split!r}; expected {SPLITS}")
    builder = prepare_builder(
        Howto100mFeatures, data_dir=data_dir, manual_dir=manual_dir, config=config
    )
    return builder.as_data_source(split=split)
