"""``retrieval_features``: text -> video retrieval clips (YouCook2 / MSR-VTT style) as features.

The evaluation counterpart of ``howto100m_features`` (same per-clip fields, so the same
preprocessing applies; MCN's zero-shot retrieval). Expected in ``manual_dir``::

    splits/<split>.tsv      one clip per line: ``clip_id<TAB>caption`` (split: validation,
                            test or train; at least one); blank lines and '#' lines skipped
    video/<clip_id>.npy     float32 [seconds, video_dim]: the clip's per-second features
                            (MCN: 2D ResNet-152 + 3D ResNeXt-101 -> 4096), or [video_dim]
                            already pooled (one row)
    audio/<clip_id>.npy     float32 [frames, n_mels]: the clip's log-mel (bins last)

One example per line, in file order: ``{"clip_id", "text", "video" [seconds, video_dim],
"audio" [frames, n_mels]}``. Every listed clip needs a caption and both feature files with at
least one row; errors name the file and the line (a missing modality file, a repeated clip id,
an empty caption, a wrong width, non-finite features).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds

from emojax.data.features import raw_tensor
from emojax.data.manual import manual_dir_of, prepare_builder

NAME = "retrieval_features"
SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(eq=False)
class RetrievalFeaturesConfig(tfds.core.BuilderConfig):
    video_dim: int = 4096
    n_mels: int = 40


def read_clip_list(path: str) -> list[tuple[int, str, str]]:
    """``(line number, clip_id, caption)`` per clip line of a ``splits/<split>.tsv`` file."""
    clips, seen = [], {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line.strip() or line.startswith("#"):
                continue
            clip_id, tab, caption = line.partition("\t")
            clip_id, caption = clip_id.strip(), caption.strip()
            if not tab or not clip_id:
                raise ValueError(
                    f"{NAME}: {path}, line {number}: expected 'clip_id<TAB>caption', got "
                    f"{line[:80]!r}"
                )
            if not caption:
                raise ValueError(
                    f"{NAME}: {path}, line {number}: clip {clip_id!r} has an empty "
                    "caption; give it one or drop the line"
                )
            if clip_id in seen:
                raise ValueError(
                    f"{NAME}: {path}, line {number}: clip {clip_id!r} already listed on line "
                    f"{seen[clip_id]}"
                )
            seen[clip_id] = number
            clips.append((number, clip_id, caption))
    if not clips:
        raise ValueError(f"{NAME}: {path} lists no clips ('clip_id<TAB>caption' per line)")
    return clips


def load_clip_features(path: str, dim: int, field: str, where: str) -> np.ndarray:
    """``[rows > 0, dim]`` float32 from ``path`` (a 1-D ``[dim]`` video file is one row)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{where}: no {field} features: {path} is missing")
    array = np.load(path, allow_pickle=False)
    if field == "video" and array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != dim or array.shape[0] == 0:
        hint = " (frames first, bins last)" if field == "audio" else ""
        raise ValueError(f"{where}: {path} has shape {array.shape}; expected [rows>0, {dim}]{hint}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{where}: {path} has non-finite values")
    return array.astype(np.float32)


class RetrievalFeatures(tfds.core.GeneratorBasedBuilder):
    """Captioned evaluation clips with video features and log-mel audio."""

    VERSION = tfds.core.Version("1.0.0")
    code_path = None  # nothing is downloaded (see howto100m.py)
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Place splits/<split>.tsv, video/, audio/ in manual_dir."
    BUILDER_CONFIGS = [RetrievalFeaturesConfig(name="default")]

    def _info(self):
        c = self.builder_config
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            disable_shuffling=True,  # file order: clip i of the split is line i's clip
            features=tfds.features.FeaturesDict(
                {
                    "clip_id": tfds.features.Text(),
                    "text": tfds.features.Text(),
                    "video": raw_tensor((None, c.video_dim), np.float32),
                    "audio": raw_tensor((None, c.n_mels), np.float32),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        root = manual_dir_of(dl_manager, NAME)
        lists = {s: os.path.join(root, "splits", f"{s}.tsv") for s in SPLITS}
        lists = {s: p for s, p in lists.items() if os.path.exists(p)}
        if not lists:
            raise FileNotFoundError(
                f"{NAME}: no splits/<split>.tsv in manual_dir {root!r} (split one of {SPLITS}). "
                "Expected layout: docs/data.md, section 'retrieval_features'."
            )
        return {s: self._generate_examples(root, p) for s, p in lists.items()}

    def _generate_examples(self, root, list_path):
        c = self.builder_config
        for number, clip_id, caption in read_clip_list(list_path):
            where = f"{NAME}: {list_path}, line {number} (clip {clip_id!r})"
            video = load_clip_features(
                os.path.join(root, "video", f"{clip_id}.npy"), c.video_dim, "video", where
            )
            audio = load_clip_features(
                os.path.join(root, "audio", f"{clip_id}.npy"), c.n_mels, "audio", where
            )
            yield number, {"clip_id": clip_id, "text": caption, "video": video, "audio": audio}


def load_source(split: str, *, manual_dir=None, data_dir=None, config=None):
    """Random-access source of ``split`` (``config``: a RetrievalFeaturesConfig)."""
    if split not in SPLITS:
        raise ValueError(f"{NAME}: unknown split {split!r}; expected one of {SPLITS}")
    builder = prepare_builder(
        RetrievalFeatures, data_dir=data_dir, manual_dir=manual_dir, config=config
    )
    if split not in builder.info.splits:
        raise ValueError(
            f"{NAME}: no {split!r} split in {builder.data_dir} (built from splits/"
            f"{{{','.join(builder.info.splits)}}}.tsv); add splits/{split}.tsv to manual_dir and "
            "delete the built copy, or evaluate another split (config.eval.split)"
        )
    return builder.as_data_source(split=split)
