"""``meld``: MELD dialogues (Poria et al., ACL 2019) from the official release CSVs (no download).

Expected in ``manual_dir`` (the ``MELD.Raw`` archive users download): ``train_sent_emo.csv``,
``dev_sent_emo.csv``, ``test_sent_emo.csv`` with the columns ``Sr No., Utterance, Speaker,
Emotion, Sentiment, Dialogue_ID, Utterance_ID, Season, Episode, StartTime, EndTime`` (UTF-8).

Text features are computed at build time with the all-MiniLM-L6-v2 text tower (mean-pooled,
L2-normalised sentence embeddings, 384-d; ``minilm_path`` or the installed package). Audio and
visual features are optional and come from files the user supplies: an ``.npz`` holding one
vector per utterance under the key ``"{split}_dia{Dialogue_ID}_utt{Utterance_ID}"`` (split in
train/dev/test). Speaker ids are per dialogue (0, 1, ... in order of first appearance; MELD has
260 speakers in train, up to 9 in one dialogue). Labels in the DialogueRNN order
:data:`LABELS`. A missing file or column, a malformed row, an unknown emotion or a missing feature
vector is an error naming the file and line (or key).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import os

import numpy as np
import tensorflow_datasets as tfds

from emojax.data.features import raw_tensor
from emojax.data.manual import manual_dir_of, prepare_builder, require_files

LABELS = ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger")
COLUMNS = ("Utterance", "Speaker", "Emotion", "Dialogue_ID", "Utterance_ID")
FILES = {
    "train": "train_sent_emo.csv",
    "validation": "dev_sent_emo.csv",
    "test": "test_sent_emo.csv",
}
CSV_SPLIT = {"train": "train", "validation": "dev", "test": "test"}
TEXT_DIM = 384


def read_csv(path: str) -> list[dict]:
    """The rows of one MELD CSV as ``{"utterance", "speaker", "label", "dialogue", "index",
    "line"}`` (validated; errors name ``path:line``)."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise ValueError(f"meld: {path}:1: empty file (expected a header row)")
            header = [h.strip().lstrip("\ufeff") for h in header]
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                raise ValueError(
                    f"meld: {path}:1: missing columns {missing}; found {header} (expected the "
                    f"official MELD columns, e.g. {list(COLUMNS)})"
                )
            col = {c: header.index(c) for c in COLUMNS}
            rows, line = [], reader.line_num
            for fields in reader:
                where = f"{path}:{line + 1}"
                line = reader.line_num
                if not fields or all(not x.strip() for x in fields):
                    continue
                if len(fields) != len(header):
                    raise ValueError(
                        f"meld: {where}: {len(fields)} fields, the header has {len(header)} "
                        "(a malformed row or an unbalanced quote)"
                    )
                emotion = fields[col["Emotion"]].strip().lower()
                if emotion not in LABELS:
                    raise ValueError(f"meld: {where}: unknown emotion {emotion!r}; one of {LABELS}")
                try:
                    dialogue, index = (
                        int(fields[col["Dialogue_ID"]]),
                        int(fields[col["Utterance_ID"]]),
                    )
                except ValueError:
                    raise ValueError(
                        f"meld: {where}: Dialogue_ID / Utterance_ID must be integers, got "
                        f"{fields[col['Dialogue_ID']]!r} / {fields[col['Utterance_ID']]!r}"
                    ) from None
                rows.append(
                    {
                        "utterance": fields[col["Utterance"]],
                        "speaker": fields[col["Speaker"]].strip(),
                        "label": LABELS.index(emotion),
                        "dialogue": dialogue,
                        "index": index,
                        "line": where,
                    }
                )
    except UnicodeDecodeError as err:
        raise ValueError(f"meld: {path}: not UTF-8 ({err}); re-save the CSV as UTF-8") from err
    if not rows:
        raise ValueError(f"meld: {path}: no utterances")
    return rows


def group_dialogues(rows: list[dict]) -> list[dict]:
    """Rows -> dialogues ``{"id", "rows"}`` ordered by Dialogue_ID, utterances by Utterance_ID,
    with per-dialogue speaker ids; a repeated (Dialogue_ID, Utterance_ID) is an error."""
    by_id: dict[int, dict[int, dict]] = {}
    for row in rows:
        utts = by_id.setdefault(row["dialogue"], {})
        if row["index"] in utts:
            raise ValueError(
                f"meld: {row['line']}: Dialogue_ID {row['dialogue']} Utterance_ID {row['index']} "
                f"repeats {utts[row['index']]['line']}"
            )
        utts[row["index"]] = row
    out = []
    for dialogue in sorted(by_id):
        ordered = [by_id[dialogue][i] for i in sorted(by_id[dialogue])]
        names: dict[str, int] = {}
        speakers = [names.setdefault(r["speaker"], len(names)) for r in ordered]
        out.append({"id": dialogue, "rows": ordered, "speaker": np.asarray(speakers, np.int32)})
    return out


def text_features(sentences: list[str], minilm_path: str | None = None, batch: int = 32):
    """``[n, 384]`` MiniLM sentence embeddings (mean-pooled, L2-normalised)."""
    embed, tokenizer = _minilm_embedder(minilm_path)
    out = []
    for start in range(0, len(sentences), batch):
        chunk = sentences[start : start + batch]
        tok = tokenizer(
            chunk, padding="max_length", truncation=True, max_length=64, return_tensors="np"
        )
        ids = np.zeros((batch, 64), np.int32)
        mask = np.zeros((batch, 64), np.int32)
        ids[: len(chunk)], mask[: len(chunk)] = tok["input_ids"], tok["attention_mask"]
        out.append(np.asarray(embed(ids, mask))[: len(chunk)])
    return np.concatenate(out).astype(np.float32)


@functools.cache
def _minilm_embedder(minilm_path: str | None):
    """(jitted ``(ids, mask) -> embeddings``, tokenizer), loaded once per process."""
    import jax

    from emojax.convert.bert import load_minilm
    from emojax.nn.bert import BertEncoder

    module, variables, tokenizer = load_minilm(minilm_path)
    embed = jax.jit(
        lambda ids, mask: module.apply(variables, ids, mask, method=BertEncoder.sentence_embedding)
    )
    return embed, tokenizer


def read_feature_file(path: str, dim: int | None = None) -> dict[str, np.ndarray]:
    """A user's ``.npz`` of per-utterance vectors (keys ``{split}_dia{D}_utt{U}``)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"meld: feature file {path!r} does not exist")
    with np.load(path, allow_pickle=False) as f:
        table = {k: np.asarray(f[k], np.float32) for k in f.files}
    widths = {v.shape for v in table.values()}
    if len(widths) != 1 or len(next(iter(widths))) != 1:
        raise ValueError(
            f"meld: {path}: every entry must be one vector of one width, got {sorted(widths)[:3]}"
        )
    if dim is not None and next(iter(widths)) != (dim,):
        raise ValueError(
            f"meld: {path}: vectors of width {next(iter(widths))[0]}, config says {dim}"
        )
    return table


@dataclasses.dataclass(eq=False)
class MeldConfig(tfds.core.BuilderConfig):
    audio_file: str = ""
    visual_file: str = ""
    audio_dim: int = 0
    visual_dim: int = 0
    minilm_path: str = ""


class Meld(tfds.core.GeneratorBasedBuilder):
    """MELD (Friends TV dialogues), one example per dialogue."""

    VERSION = tfds.core.Version("1.0.0")
    code_path = None
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Place train/dev/test_sent_emo.csv (MELD.Raw) in manual_dir."
    BUILDER_CONFIGS = [MeldConfig(name="text")]

    def _info(self):
        c = self.builder_config
        features = {
            "vid": tfds.features.Text(),
            "speaker": raw_tensor((None,), np.int32),
            "label": raw_tensor((None,), np.int32),
            "text": raw_tensor((None, TEXT_DIM), np.float32),
        }
        if c.audio_file:
            features["audio"] = raw_tensor((None, c.audio_dim), np.float32)
        if c.visual_file:
            features["visual"] = raw_tensor((None, c.visual_dim), np.float32)
        return tfds.core.DatasetInfo(
            builder=self, description=__doc__, features=tfds.features.FeaturesDict(features)
        )

    def _split_generators(self, dl_manager):
        root = manual_dir_of(dl_manager, "meld")
        paths = require_files(root, list(FILES.values()), "meld")
        c = self.builder_config
        extra = {}
        for name, file, dim in (
            ("audio", c.audio_file, c.audio_dim),
            ("visual", c.visual_file, c.visual_dim),
        ):
            if file:
                extra[name] = (file, read_feature_file(file, dim))
        return {
            split: self._generate_examples(path, CSV_SPLIT[split], extra)
            for split, path in zip(FILES, paths, strict=True)
        }

    def _generate_examples(self, path, csv_split, extra):
        dialogues = group_dialogues(read_csv(path))
        keys = {
            d["id"]: [f"{csv_split}_dia{d['id']}_utt{r['index']}" for r in d["rows"]]
            for d in dialogues
        }
        for name, (file, table) in extra.items():  # every vector present before the text tower
            for d in dialogues:
                missing = [k for k in keys[d["id"]] if k not in table]
                if missing:
                    row = d["rows"][keys[d["id"]].index(missing[0])]
                    raise ValueError(
                        f"meld: {file} has no {name} vector for {missing[0]!r} ({row['line']})"
                    )
        sentences = [r["utterance"] for d in dialogues for r in d["rows"]]
        text = text_features(sentences, self.builder_config.minilm_path or None)
        start = 0
        for d in dialogues:
            n = len(d["rows"])
            example = {
                "vid": f"{csv_split}_dia{d['id']}",
                "speaker": d["speaker"],
                "label": np.asarray([r["label"] for r in d["rows"]], np.int32),
                "text": text[start : start + n],
            }
            start += n
            for name, (_, table) in extra.items():
                example[name] = np.stack([table[k] for k in keys[d["id"]]])
            yield example["vid"], example


def make_config(audio_file="", visual_file="", audio_dim=0, visual_dim=0, minilm_path=""):
    """A builder config for the given optional feature files (its name encodes them)."""
    import hashlib

    if not (audio_file or visual_file or minilm_path):
        return "text"
    key = hashlib.sha1(repr((audio_file, visual_file, audio_dim, visual_dim, minilm_path)).encode())
    return MeldConfig(
        name=f"text_av_{key.hexdigest()[:10]}",
        audio_file=audio_file,
        visual_file=visual_file,
        audio_dim=audio_dim,
        visual_dim=visual_dim,
        minilm_path=minilm_path,
    )


def load_source(split: str, *, manual_dir=None, data_dir=None, **config):
    """Random-access source of a split (train / validation / test); ``config``: audio_file,
    visual_file, audio_dim, visual_dim, minilm_path."""
    if split not in FILES:
        raise ValueError(f"meld: unknown split {split!r}; expected one of {tuple(FILES)}")
    builder = prepare_builder(
        Meld, data_dir=data_dir, manual_dir=manual_dir, config=make_config(**config)
    )
    return builder.as_data_source(split=split)
