"""Real-dataset builders built from tiny fixtures written in each dataset's real format."""

import io
import json
import os
import pickle
import sys
import types

import numpy as np
import pytest
from emoset_fixture import emoset_info
from PIL import Image

from emojax.data import emoset, emotion_roi, howto100m, iemocap
from emojax.data.transforms import DecodeImage


def _jpeg(seed: int, size=(20, 24)) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, size + (3,), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def _write(path, data: bytes | str):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


# ----------------------------------------------------------------------------- iemocap


def _cogmen_sample_class():
    """A class pickled as ``cogmen.Sample.Sample``, like COGMEN's preprocessed files."""
    package, module = types.ModuleType("cogmen"), types.ModuleType("cogmen.Sample")

    class Sample:
        def __init__(self, vid, speaker, label, text, audio, visual, sentence):
            self.vid, self.speaker, self.label = vid, speaker, label
            self.text, self.audio, self.visual, self.sentence = text, audio, visual, sentence
            self.sbert_sentence_embeddings = [np.full(768, i, np.float32) for i in label]

    Sample.__module__ = "cogmen.Sample"
    Sample.__qualname__ = "Sample"
    module.Sample = Sample
    package.Sample = module
    return package, module, Sample


def _dialogue(Sample, vid, n, rng, num_labels=6):
    labels = [int(x) for x in rng.integers(0, num_labels, n)]
    return Sample(
        vid,
        ["M" if i % 2 else "F" for i in range(n)],
        labels,
        [rng.normal(size=100).astype(np.float32) for _ in range(n)],
        [rng.normal(size=100).astype(np.float32) for _ in range(n)],
        [rng.normal(size=512).astype(np.float32) for _ in range(n)],
        [f"utterance {i} of {vid}" for i in range(n)],
    )


def _write_iemocap(root, filename="data_iemocap.pkl", num_labels=6, mutate=None):
    package, module, Sample = _cogmen_sample_class()
    rng = np.random.default_rng(0)
    data = {
        "train": [_dialogue(Sample, f"Ses0{i}", 3 + i, rng, num_labels) for i in range(3)],
        "dev": [_dialogue(Sample, "Ses10", 4, rng, num_labels)],
        "test": [_dialogue(Sample, "Ses20", 5, rng, num_labels)],
    }
    if mutate:
        mutate(data)
    sys.modules.update({"cogmen": package, "cogmen.Sample": module})
    try:
        _write(os.path.join(root, filename), pickle.dumps(data))
    finally:  # the loader must not need cogmen
        del sys.modules["cogmen"], sys.modules["cogmen.Sample"]
    return data


def test_iemocap_from_cogmen_pickle(tmp_path):
    manual = str(tmp_path / "manual")
    written = _write_iemocap(manual)
    source = iemocap.load_source("train", manual_dir=manual, data_dir=str(tmp_path / "data"))
    assert len(source) == 3
    by_vid = {source[i]["vid"].decode(): source[i] for i in range(3)}  # strings are bytes
    for dialogue in written["train"]:
        example = by_vid[dialogue.vid]
        n = len(dialogue.label)
        assert example["length"] == n and example["text"].shape == (n, 768)
        np.testing.assert_array_equal(example["label"], dialogue.label)
        assert example["label"].dtype == np.int32
        np.testing.assert_array_equal(example["speaker"], [s == "F" for s in dialogue.speaker])
        np.testing.assert_array_equal(example["audio"], np.stack(dialogue.audio))
        np.testing.assert_array_equal(example["visual"], np.stack(dialogue.visual))
        np.testing.assert_array_equal(example["text"][:, 0], dialogue.label)  # sbert rows
        assert [s.decode() for s in example["sentence"]] == dialogue.sentence
    test = iemocap.load_source("test", manual_dir=manual, data_dir=str(tmp_path / "data"))
    assert len(test) == 1 and test[0]["length"] == 5


def test_iemocap_4_rejects_six_way_labels(tmp_path):
    manual = str(tmp_path / "manual")
    _write_iemocap(manual, filename="data_iemocap_4.pkl", num_labels=6)
    with pytest.raises(ValueError, match=r"labels .* outside \[0, 4\)"):
        iemocap.load_source(
            "train", manual_dir=manual, data_dir=str(tmp_path / "d"), config="iemocap_4"
        )


def test_iemocap_missing_file_and_bad_shapes(tmp_path):
    manual = str(tmp_path / "manual")
    os.makedirs(manual)
    with pytest.raises(FileNotFoundError, match="data_iemocap.pkl.*" + str(tmp_path)):
        iemocap.load_source("train", manual_dir=manual, data_dir=str(tmp_path / "d"))

    def bad_audio(data):
        data["train"][0].audio = [np.zeros(99, np.float32)] * len(data["train"][0].label)

    _write_iemocap(manual, mutate=bad_audio)
    with pytest.raises(ValueError, match=r"'audio' has shape \(3, 99\), expected \(3, 100\)"):
        iemocap.load_source("train", manual_dir=manual, data_dir=str(tmp_path / "d2"))

    def no_dev(data):
        data["dev"] = []

    _write_iemocap(manual, mutate=no_dev)
    with pytest.raises(ValueError, match="split 'dev' of .*data_iemocap.pkl holds no dialogues"):
        iemocap.load_source("train", manual_dir=manual, data_dir=str(tmp_path / "d3"))


# ------------------------------------------------------------------------- emotion_roi


def _write_emotion_roi(root):
    lines = {"training": [], "testing": []}
    for c, name in enumerate(emotion_roi.CLASSES):
        for k in range(2):
            relative = f"{name}/{k + 1}.jpg"
            _write(os.path.join(root, "images", relative), _jpeg(10 * c + k))
            lines["training" if k == 0 else "testing"].append(relative)
    for split, entries in lines.items():
        path = os.path.join(root, "training_testing_split", f"{split}.txt")
        _write(path, "\n".join(entries) + "\n")


def test_emotion_roi_labels_and_sentiment_merge(tmp_path):
    manual = str(tmp_path / "manual")
    _write_emotion_roi(manual)
    source = emotion_roi.load_source("train", manual_dir=manual, data_dir=str(tmp_path / "d"))
    assert len(source) == 6
    for i in range(6):
        example = DecodeImage().map(source[i])
        name = example["filename"].decode().split("/")[0]
        assert example["label"] == emotion_roi.CLASSES.index(name)
        assert example["sentiment"] == (name in ("joy", "surprise"))
        assert example["image"].shape == (20, 24, 3) and example["image"].dtype == np.uint8
    assert sum(emotion_roi.sentiment_of(c) for c in emotion_roi.CLASSES) == 2


def test_emotion_roi_missing_image_and_bad_class(tmp_path):
    manual = str(tmp_path / "manual")
    _write_emotion_roi(manual)
    os.remove(os.path.join(manual, "images", "fear", "1.jpg"))
    with pytest.raises(FileNotFoundError, match="images/fear/1.jpg"):
        emotion_roi.load_source("train", manual_dir=manual, data_dir=str(tmp_path / "d"))
    _write(os.path.join(manual, "training_testing_split", "training.txt"), "happy/1.jpg\n")
    with pytest.raises(ValueError, match="training.txt:1: 'happy/1.jpg'"):
        emotion_roi.load_source("train", manual_dir=manual, data_dir=str(tmp_path / "d2"))


def test_emotion_roi_rejects_a_file_that_is_not_an_image(tmp_path):
    manual = str(tmp_path / "manual")
    _write_emotion_roi(manual)
    _write(os.path.join(manual, "images", "joy", "1.jpg"), b"<html>404</html>")
    with pytest.raises(ValueError, match="joy/1.jpg is not a readable image"):
        emotion_roi.load_source("train", manual_dir=manual, data_dir=str(tmp_path / "d"))


def test_emotion_roi_missing_split_file_says_where(tmp_path):
    manual = str(tmp_path / "manual")
    os.makedirs(manual)
    with pytest.raises(FileNotFoundError, match="training.txt.*testing.txt.*in manual_dir"):
        emotion_roi.load_source("train", manual_dir=manual, data_dir=str(tmp_path / "d"))


# ------------------------------------------------------------------------------ emoset


def _write_emoset(root, bad_scene=False):
    info = emoset_info()
    _write(os.path.join(root, "info.json"), json.dumps(info))
    splits = {"train.json": [], "val.json": [], "test.json": []}
    for i, emotion in enumerate(emoset.EMOTIONS):
        image = f"image/{emotion}/{emotion}_{i:05d}.jpg"
        annotation_path = f"annotation/{emotion}/{emotion}_{i:05d}.json"
        annotation = {"emotion": emotion, "brightness": 0.4, "colorfulness": 0.6}
        annotation |= {"scene": "forest" if bad_scene else "beach", "object": ["dog", "tree"]}
        if i % 2:
            annotation |= {"facial_expression": "sad", "human_action": "running"}
        _write(os.path.join(root, image), _jpeg(i))
        _write(os.path.join(root, annotation_path), json.dumps(annotation))
        name = ["train.json", "train.json", "val.json", "test.json"][i % 4]
        splits[name].append([emotion, f"{emotion}_{i:05d}", image, annotation_path])
    for name, entries in splits.items():
        _write(os.path.join(root, name), json.dumps(entries))


def test_emoset_attributes(tmp_path):
    manual = str(tmp_path / "manual")
    _write_emoset(manual)
    source = emoset.load_source("train", manual_dir=manual, data_dir=str(tmp_path / "d"))
    assert len(source) == 4
    for i in range(4):
        example = source[i]
        image_id = example["image_id"].decode()
        emotion = image_id.rsplit("_", 1)[0]
        assert example["emotion"] == emoset.EMOTIONS.index(emotion)
        assert example["sentiment"] == (emotion not in emoset.POSITIVE)
        assert example["brightness"] == 4 and example["colorfulness"] == 6
        assert example["scene"] == 0 and example["scene_name"] == b"beach"
        np.testing.assert_array_equal(example["object"], [0, 2])
        index = int(image_id.rsplit("_", 1)[1])
        assert example["facial_expression"] == (1 if index % 2 else -1)
        assert example["human_action_name"] == (b"running" if index % 2 else b"")
        assert DecodeImage().map(example)["image"].shape == (20, 24, 3)
    validation = emoset.load_source("validation", manual_dir=manual, data_dir=str(tmp_path / "d"))
    assert len(validation) == 2


def test_emoset_unknown_attribute_and_missing_annotation(tmp_path):
    manual = str(tmp_path / "manual")
    _write_emoset(manual, bad_scene=True)
    with pytest.raises(ValueError, match="scene 'forest' is not in info.json"):
        emoset.load_source("train", manual_dir=manual, data_dir=str(tmp_path / "d"))
    manual2 = str(tmp_path / "manual2")
    _write_emoset(manual2)
    os.remove(os.path.join(manual2, "annotation", "anger", "anger_00001.json"))
    with pytest.raises(FileNotFoundError, match="annotation/anger/anger_00001.json"):
        emoset.load_source("train", manual_dir=manual2, data_dir=str(tmp_path / "d2"))


# ------------------------------------------------------------------ howto100m_features

SMALL_HOWTO = howto100m.HowTo100MConfig(name="small", video_dim=16, n_mels=8)


def _write_howto(root):
    rng = np.random.default_rng(0)
    captions = {
        "vid_a": {"start": [0.0, 2.5], "end": [2.0, 6.0], "text": ["crack the eggs", "whisk"]},
        "vid_b": {"start": [1.2], "end": [3.7], "text": ["pour the batter"]},
    }
    _write(os.path.join(root, "caption.json"), json.dumps(captions))
    _write(os.path.join(root, "splits", "train.txt"), "vid_a\nvid_b\n")
    for vid, seconds in (("vid_a", 8), ("vid_b", 5)):
        os.makedirs(os.path.join(root, "video"), exist_ok=True)
        os.makedirs(os.path.join(root, "audio"), exist_ok=True)
        video = np.arange(seconds, dtype=np.float32)[:, None] * np.ones(16, np.float32)
        np.save(os.path.join(root, "video", f"{vid}.npy"), video)
        audio = rng.normal(size=(seconds * 100, 8)).astype(np.float32)
        np.save(os.path.join(root, "audio", f"{vid}.npy"), audio)


def test_howto100m_clips(tmp_path):
    manual = str(tmp_path / "manual")
    _write_howto(manual)
    source = howto100m.load_source(
        "train", manual_dir=manual, data_dir=str(tmp_path / "d"), config=SMALL_HOWTO
    )
    clips = {source[i]["text"].decode(): source[i] for i in range(len(source))}
    assert set(clips) == {"crack the eggs", "whisk", "pour the batter"}
    whisk = clips["whisk"]  # 2.5 s .. 6.0 s -> seconds 2..5, audio frames 250..600
    np.testing.assert_array_equal(whisk["video"][:, 0], [2, 3, 4, 5])
    assert whisk["audio"].shape == (350, 8) and whisk["video_id"] == b"vid_a"
    assert clips["pour the batter"]["video"].shape == (3, 16)  # 1.2 .. 3.7 -> 1, 2, 3


def test_howto100m_missing_features_and_bad_dim(tmp_path):
    manual = str(tmp_path / "manual")
    _write_howto(manual)
    os.remove(os.path.join(manual, "audio", "vid_b.npy"))
    with pytest.raises(FileNotFoundError, match="audio/vid_b.npy"):
        howto100m.load_source(
            "train", manual_dir=manual, data_dir=str(tmp_path / "d"), config=SMALL_HOWTO
        )
    _write_howto(manual)
    wrong = howto100m.HowTo100MConfig(name="wrong", video_dim=32, n_mels=8)
    with pytest.raises(ValueError, match=r"shape \(8, 16\); expected \[time>0, 32\]"):
        howto100m.load_source(
            "train", manual_dir=manual, data_dir=str(tmp_path / "d"), config=wrong
        )


def test_unknown_split_names():
    with pytest.raises(ValueError, match="'dev'"):
        iemocap.load_source("dev")
    with pytest.raises(ValueError, match="'validation'"):
        emotion_roi.load_source("validation")
