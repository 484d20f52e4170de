"""Joyful's real-data builders: MELD CSVs (MiniLM text features at build time, optional audio /
visual files, per-dialogue speakers) and MOSEI pickles (multi-label, allow-listed unpickling),
with errors that name the file and line."""

import os
import pickle

import numpy as np
import pytest

from emojax.data import meld, mosei
from emojax.data.safe_pickle import UnsafePickleError

HEADER = (
    "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,"
    "StartTime,EndTime\n"
)


def _row(i, text, speaker, emotion, dia, utt):
    times = "00:00:01.000,00:00:02.000"
    return f'{i},"{text}",{speaker},{emotion},neutral,{dia},{utt},1,1,{times}\n'


def _write_meld(root, rows_by_split=None):
    os.makedirs(root, exist_ok=True)
    default = [
        _row(1, "Oh my God, you’re here!", "Monica", "surprise", 0, 0),
        _row(2, "I said, \u201chi\u201d.", "Joey", "joy", 0, 1),
        _row(3, "Whatever.", "Monica", "neutral", 0, 2),
        _row(4, "No way", "Ross", "anger", 3, 1),
        _row(5, "Way.", "Rachel", "disgust", 3, 0),
    ]
    for name in meld.FILES.values():
        with open(os.path.join(root, name), "w", encoding="utf-8") as f:
            f.write(HEADER + "".join((rows_by_split or {}).get(name, default)))


def test_read_csv_groups_dialogues_with_per_dialogue_speakers(tmp_path):
    _write_meld(tmp_path)
    rows = meld.read_csv(str(tmp_path / "train_sent_emo.csv"))
    dialogues = meld.group_dialogues(rows)
    assert [d["id"] for d in dialogues] == [0, 3]
    assert dialogues[0]["speaker"].tolist() == [0, 1, 0]  # Monica, Joey, Monica
    assert dialogues[1]["speaker"].tolist() == [0, 1]  # Rachel (utt 0), Ross (utt 1)
    assert [r["label"] for r in dialogues[1]["rows"]] == [
        meld.LABELS.index("disgust"),
        meld.LABELS.index("anger"),
    ]
    assert dialogues[0]["rows"][1]["utterance"] == "I said, \u201chi\u201d."


@pytest.mark.parametrize(
    "bad,match",
    [
        (
            _row(9, "x", "A", "happiness", 1, 0),
            r"train_sent_emo.csv:3: unknown emotion 'happiness'",
        ),
        ("9,only,three\n", r"train_sent_emo.csv:3: 3 fields, the header has 11"),
        (_row(9, "x", "A", "joy", "one", 0), r"train_sent_emo.csv:3: Dialogue_ID / Utterance_ID"),
        (
            _row(9, "x", "A", "joy", 0, 0),
            r"train_sent_emo.csv:3: Dialogue_ID 0 Utterance_ID 0 repeats",
        ),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, bad, match):
    _write_meld(tmp_path, {"train_sent_emo.csv": [_row(1, "a", "A", "joy", 0, 0), bad]})
    with pytest.raises(ValueError, match=match):
        meld.group_dialogues(meld.read_csv(str(tmp_path / "train_sent_emo.csv")))


def test_missing_column_and_missing_file(tmp_path):
    path = tmp_path / "train_sent_emo.csv"
    path.write_text("Utterance,Speaker,Dialogue_ID\nhi,A,0\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"train_sent_emo.csv:1: missing columns \['Emotion'"):
        meld.read_csv(str(path))
    with pytest.raises(FileNotFoundError, match="dev_sent_emo.csv"):
        meld.load_source("train", manual_dir=str(tmp_path), data_dir=str(tmp_path / "tfds"))


@pytest.mark.slow  # loads and compiles the MiniLM tower
def test_meld_builds_with_minilm_text_and_user_audio(tmp_path):
    _write_meld(tmp_path / "manual")
    table = {}
    for split in ("train", "dev", "test"):
        for dia, utts in ((0, 3), (3, 2)):
            for u in range(utts):
                table[f"{split}_dia{dia}_utt{u}"] = np.full(4, dia * 10 + u, np.float32)
    np.savez(tmp_path / "audio.npz", **table)
    source = meld.load_source(
        "validation",
        manual_dir=str(tmp_path / "manual"),
        data_dir=str(tmp_path / "tfds"),
        audio_file=str(tmp_path / "audio.npz"),
        audio_dim=4,
    )
    assert len(source) == 2
    by_vid = {
        str(source[i]["vid"], "utf-8")
        if isinstance(source[i]["vid"], bytes)
        else str(source[i]["vid"]): source[i]
        for i in range(len(source))
    }
    assert sorted(by_vid) == ["dev_dia0", "dev_dia3"]
    first = by_vid["dev_dia0"]
    assert first["text"].shape == (3, meld.TEXT_DIM)
    np.testing.assert_allclose(np.linalg.norm(first["text"], axis=1), 1.0, rtol=1e-4)
    assert first["speaker"].tolist() == [0, 1, 0]
    np.testing.assert_array_equal(first["audio"][:, 0], [0, 1, 2])
    assert not np.allclose(first["text"][0], first["text"][1])
    del table["train_dia3_utt1"]
    np.savez(tmp_path / "audio2.npz", **table)
    with pytest.raises(ValueError, match=r"audio2.npz has no audio vector for 'train_dia3_utt1'"):
        meld.load_source(
            "train",
            manual_dir=str(tmp_path / "manual"),
            data_dir=str(tmp_path / "tfds2"),
            audio_file=str(tmp_path / "audio2.npz"),
            audio_dim=4,
        )


class _Gadget:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def _mosei_video(rng, n, labels_shape=None):
    return {
        "vid": f"v{n}",
        "speaker": ["A"] * n,
        "label": rng.random(labels_shape or (n, 6)) - 0.5,
        "sbert_sentence_embeddings": rng.normal(size=(n, 768)).astype(np.float32),
        "audio": rng.normal(size=(n, 80)).astype(np.float32),
        "visual": rng.normal(size=(n, 35)).astype(np.float32),
    }


def test_mosei_pickle_multilabel_and_refuses_code(tmp_path):
    rng = np.random.default_rng(0)
    manual = tmp_path / "manual"
    manual.mkdir()
    data = {k: [_mosei_video(rng, n) for n in (2, 3)] for k in ("train", "dev", "test")}
    with open(manual / "data_mosei.pkl", "wb") as f:
        pickle.dump(data, f)
    source = mosei.load_source("test", manual_dir=str(manual), data_dir=str(tmp_path / "tfds"))
    ex = next(source[i] for i in range(len(source)) if source[i]["label"].shape[0] == 3)
    np.testing.assert_array_equal(ex["label"], (data["test"][1]["label"] > 0).astype(np.float32))
    assert ex["speaker"].tolist() == [0, 0, 0] and ex["visual"].shape == (3, 35)
    with pytest.raises(ValueError, match=r"video 'v2' labels have shape \(2, 4\)"):
        mosei.video_example(_mosei_video(rng, 2, (2, 4)), mosei.MoseiConfig(name="x"), "f.pkl")
    bad = tmp_path / "bad"
    bad.mkdir()
    with open(bad / "data_mosei.pkl", "wb") as f:
        pickle.dump({"train": [_Gadget()], "dev": [], "test": []}, f)
    with pytest.raises(UnsafePickleError, match="system"):
        mosei.load_source("train", manual_dir=str(bad), data_dir=str(tmp_path / "tfds_bad"))


def test_iemocap_pickle_feeds_the_joyful_batch(tmp_path):
    from emojax.models.joyful.method import Joyful
    from emojax.train import load_config
    from emojax.train.config import validate_config

    rng = np.random.default_rng(1)
    manual = tmp_path / "manual"
    manual.mkdir()

    def dialogue(vid, n):
        return {
            "vid": vid,
            "speaker": list("MFMFMFMF"[:n]),
            "label": rng.integers(0, 6, n).tolist(),
            "text": rng.normal(size=(n, 768)).astype(np.float32),
            "audio": rng.normal(size=(n, 100)).astype(np.float32),
            "visual": rng.normal(size=(n, 512)).astype(np.float32),
            "sentence": ["x"] * n,
        }

    data = {
        k: [dialogue(f"{k}{i}", n) for i, n in enumerate((3, 5))] for k in ("train", "dev", "test")
    }
    with open(manual / "data_iemocap.pkl", "wb") as f:
        pickle.dump(data, f)
    path = os.path.join(
        os.path.dirname(__file__), "..", "emojax", "configs", "joyful", "iemocap6.py"
    )
    c = load_config(path, {"data.manual_dir": str(manual), "data.data_dir": str(tmp_path / "tfds")})
    method = Joyful(validate_config(c))
    source = method.data_source("validation")
    batch = method.collate([source[i] for i in range(len(source))])
    assert batch["text"].shape == (2, c.data.max_len, 768)
    assert sorted(batch["utt_mask"].sum(1).tolist()) == [3, 5]
    assert batch["edge_type"].max() < 8  # 2 speakers: 8 relations
