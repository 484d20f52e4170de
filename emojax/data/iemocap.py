"""``iemocap``: IEMOCAP dialogues from the COGMEN/Joyful preprocessed pickle (no download).

Expected in ``manual_dir``:

* ``data_iemocap.pkl`` (config ``iemocap_6``) or ``data_iemocap_4.pkl`` (config ``iemocap_4``):
  a pickle of ``{"train": [...], "dev": [...], "test": [...]}``; each item is one dialogue, a
  COGMEN ``Sample`` object or a dict, with per-utterance lists ``speaker`` ('M'/'F'),
  ``label`` (int), ``text`` (feature vectors), ``audio`` [100], ``visual`` [512], ``sentence`` (str)
  and, in COGMEN's pickles, ``sbert_sentence_embeddings`` [768] (used as the text modality when
  present, as in COGMEN/Joyful). Plural keys (``speakers``, ``labels``) are accepted too.

Labels: IEMOCAP-6 {hap 0, sad 1, neu 2, ang 3, exc 4, fru 5}; IEMOCAP-4 keeps the first four.
One example per dialogue (variable length ``n``); splits train/validation(=dev)/test.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from emojax.data.features import raw_tensor
from emojax.data.manual import manual_dir_of, prepare_builder, require_files
from emojax.data.safe_pickle import safe_load

LABELS_6 = ("hap", "sad", "neu", "ang", "exc", "fru")
LABELS_4 = LABELS_6[:4]
SPEAKERS = {"M": 0, "F": 1}
SPLIT_KEYS = {"train": "train", "validation": "dev", "test": "test"}


@dataclasses.dataclass(eq=False)
class IemocapConfig(tfds.core.BuilderConfig):
    filename: str = "data_iemocap.pkl"
    labels: tuple[str, ...] = LABELS_6
    text_dim: int = 768
    audio_dim: int = 100
    visual_dim: int = 512


def load_dialogues(path: str, *, extra_allowed=()) -> dict[str, list]:
    """The pickle's ``{"train", "dev", "test"}`` lists (validated to exist).

    Read with :func:`emojax.data.safe_pickle.safe_load`: numpy arrays, plain containers and
    the COGMEN/Joyful ``Sample`` class (as an attribute-only record) load; any other global
    (a class of another name, or a code-running gadget) is refused with
    ``UnsafePickleError`` before it is called. ``extra_allowed``: further ``(module, name)``
    data classes to load as records.
    """
    data = safe_load(path, extra_allowed=extra_allowed)
    if not isinstance(data, dict) or not set(SPLIT_KEYS.values()) <= set(data):
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"iemocap: {path} must hold a dict with train/dev/test, got {keys}")
    return data


def _get(sample, names: tuple[str, ...], vid: str):
    record = sample if isinstance(sample, dict) else vars(sample)
    for name in names:
        if name in record:
            return record[name]
    raise ValueError(f"iemocap: dialogue {vid!r} has none of the fields {names}")


def dialogue_example(sample, config: IemocapConfig) -> dict:
    """One dialogue -> example dict, validating lengths, dims, speakers and labels."""
    vid = str(_get(sample, ("vid",), "?"))
    speakers = list(_get(sample, ("speaker", "speakers"), vid))
    labels = np.asarray(_get(sample, ("label", "labels"), vid), np.int64)
    record = sample if isinstance(sample, dict) else vars(sample)
    text_key = "sbert_sentence_embeddings" if "sbert_sentence_embeddings" in record else "text"
    modalities = {
        "text": (text_key, config.text_dim),
        "audio": ("audio", config.audio_dim),
        "visual": ("visual", config.visual_dim),
    }
    n = len(labels)
    out = {"vid": vid, "length": np.int32(n)}
    for field, (key, dim) in modalities.items():
        value = np.asarray(_get(sample, (key,), vid), np.float32)
        if value.shape != (n, dim):
            raise ValueError(
                f"iemocap: dialogue {vid!r} field {key!r} has shape {value.shape}, expected "
                f"({n}, {dim}) ({n} utterances x {field} dim; set {field}_dim in the config)"
            )
        out[field] = value
    sentences = list(_get(sample, ("sentence", "sentences"), vid))
    if len(speakers) != n or len(sentences) != n:
        raise ValueError(
            f"iemocap: dialogue {vid!r} has {n} labels, {len(speakers)} speakers and "
            f"{len(sentences)} sentences; they must match"
        )
    unknown = sorted({s for s in speakers if s not in SPEAKERS})
    if unknown:
        raise ValueError(f"iemocap: dialogue {vid!r} has speakers {unknown}; expected 'M'/'F'")
    if n == 0 or labels.min() < 0 or labels.max() >= len(config.labels):
        raise ValueError(
            f"iemocap: dialogue {vid!r} labels {sorted(set(labels.tolist()))} outside "
            f"[0, {len(config.labels)}) for {config.name} ({config.labels})"
        )
    out["speaker"] = np.array([SPEAKERS[s] for s in speakers], np.int32)
    out["label"] = labels.astype(np.int32)
    out["sentence"] = np.array([str(s) for s in sentences], dtype=object)
    return out


class Iemocap(tfds.core.GeneratorBasedBuilder):
    """IEMOCAP conversations (Busso et al. 2008) as preprocessed by COGMEN (Joshi et al. 2022)."""

    VERSION = tfds.core.Version("1.0.0")
    # No checksums file next to the code (nothing is downloaded); also avoids TFDS resolving
    # the package as a resource, which fails for some editable installs.
    code_path = None
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Place data_iemocap.pkl / data_iemocap_4.pkl in manual_dir."
    BUILDER_CONFIGS = [
        IemocapConfig(name="iemocap_6", filename="data_iemocap.pkl", labels=LABELS_6),
        IemocapConfig(name="iemocap_4", filename="data_iemocap_4.pkl", labels=LABELS_4),
    ]

    def _info(self):
        c = self.builder_config
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "vid": tfds.features.Text(),
                    "length": raw_tensor((), np.int32),
                    "speaker": raw_tensor((None,), np.int32),
                    "label": raw_tensor((None,), np.int32),
                    "text": raw_tensor((None, c.text_dim), np.float32),
                    "audio": raw_tensor((None, c.audio_dim), np.float32),
                    "visual": raw_tensor((None, c.visual_dim), np.float32),
                    "sentence": tfds.features.Tensor(shape=(None,), dtype=np.object_),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        root = manual_dir_of(dl_manager, "iemocap")
        (path,) = require_files(root, [self.builder_config.filename], "iemocap")
        data = load_dialogues(path)
        for key in SPLIT_KEYS.values():
            if not data[key]:
                raise ValueError(f"iemocap: split {key!r} of {path} holds no dialogues")
        return {split: self._generate_examples(data[key]) for split, key in SPLIT_KEYS.items()}

    def _generate_examples(self, dialogues):
        seen = set()
        for sample in dialogues:
            example = dialogue_example(sample, self.builder_config)
            if example["vid"] in seen:
                raise ValueError(f"iemocap: dialogue {example['vid']!r} appears twice in a split")
            seen.add(example["vid"])
            yield example["vid"], example


def load_source(split: str, *, manual_dir=None, data_dir=None, config: str = "iemocap_6"):
    """Random-access source of one split (``train``/``validation``/``test``) of a config."""
    if split not in SPLIT_KEYS:
        raise ValueError(f"iemocap: unknown split {split!r}; expected one of {tuple(SPLIT_KEYS)}")
    builder = prepare_builder(Iemocap, data_dir=data_dir, manual_dir=manual_dir, config=config)
    return builder.as_data_source(split=split)
