"""Per-example transforms and the lexicon reader."""

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from emojax.data import transforms as T
from emojax.data.lexicon import EMOTIONS, load_lexicon, parse_lexicon


@pytest.fixture(scope="module")
def vocab():
    with open(os.path.join(T.minilm_tokenizer_dir(), "vocab.txt"), encoding="utf-8") as f:
        return {line.rstrip("\n"): i for i, line in enumerate(f)}


def test_tokenize_words_with_the_shipped_minilm_vocab(vocab):
    example = {"words": np.array([b"joy", b"fear", b"trust", b"anger", b"taste"], dtype=object)}
    out = T.Tokenize("words", max_length=4).map(example)
    assert out["words_ids"].shape == (5, 4) and out["words_ids"].dtype == np.int32
    for row, word in zip(out["words_ids"], ["joy", "fear", "trust", "anger", "taste"], strict=True):
        np.testing.assert_array_equal(row, [vocab["[CLS]"], vocab[word], vocab["[SEP]"], 0])
    np.testing.assert_array_equal(out["words_mask"][0], [1, 1, 1, 0])
    assert out["words"] is example["words"]  # other fields untouched


def test_tokenize_scalar_text_truncates(vocab):
    out = T.Tokenize("text", max_length=3, prefix="caption").map({"text": "the cat sat"})
    np.testing.assert_array_equal(
        out["caption_ids"], [vocab["[CLS]"], vocab["the"], vocab["[SEP]"]]
    )


def test_tokenize_errors():
    with pytest.raises(KeyError, match="no field 'txt'"):
        T.Tokenize("txt", 8).map({"text": "a"})
    with pytest.raises(ValueError, match="max_length"):
        T.Tokenize("text", 1)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        T.Tokenize("text", 8, tokenizer_dir="/nonexistent").map({"text": "a"})


def _png(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def test_decode_resize_crop_flip_normalize():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
    decoded = T.DecodeImage().map({"image": _png(image)})["image"]
    np.testing.assert_array_equal(decoded, image)  # PNG is lossless
    resized = T.ResizeImage(15).map({"image": image})["image"]
    assert resized.shape == (15, 20, 3)
    assert T.ResizeImage((8, 9)).map({"image": image})["image"].shape == (8, 9, 3)
    center = T.CenterCrop(10).map({"image": image})["image"]
    np.testing.assert_array_equal(center, image[10:20, 15:25])
    crop = T.RandomCrop(10).random_map({"image": image}, np.random.default_rng(1))["image"]
    windows = np.lib.stride_tricks.sliding_window_view(image, (10, 10, 3))
    assert (windows == crop).all(axis=(-3, -2, -1)).any()
    pair = {"image": image, "face": image[..., :1]}
    flips = [
        T.RandomFlip(("image", "face")).random_map(pair, np.random.default_rng(s)) for s in range(8)
    ]
    flipped = [f for f in flips if not np.array_equal(f["image"], image)]
    assert 0 < len(flipped) < 8
    for f in flipped:
        np.testing.assert_array_equal(f["image"], image[:, ::-1])
        np.testing.assert_array_equal(f["face"], image[:, ::-1, :1])
    normal = T.NormalizeImage().map({"image": image})["image"]
    assert normal.dtype == np.float32 and -1 <= normal.min() and normal.max() <= 1


def test_image_errors_name_the_field():
    with pytest.raises(ValueError, match="field 'image': cannot decode"):
        T.DecodeImage().map({"image": b"not an image"})
    with pytest.raises(ValueError, match="smaller than the crop 64"):
        T.CenterCrop(64).map({"image": np.zeros((32, 32, 3), np.uint8)})


def test_fit_waveform_pad_sequence_select():
    wave = np.arange(5, dtype=np.float32)
    np.testing.assert_array_equal(T.FitWaveform(3).map({"audio": wave})["audio"], [0, 1, 2])
    np.testing.assert_array_equal(
        T.FitWaveform(7).map({"audio": wave})["audio"], [0, 1, 2, 3, 4, 0, 0]
    )
    dialogue = {
        "text": np.ones((3, 4), np.float32),
        "label": np.array([1, 2, 3], np.int32),
        "sentence": np.array([b"a", b"b", b"c"], dtype=object),
    }
    padded = T.PadSequence(("text", "label", "sentence"), 5).map(dialogue)
    assert padded["text"].shape == (5, 4) and padded["text"][3:].sum() == 0
    np.testing.assert_array_equal(padded["label"], [1, 2, 3, 0, 0])
    np.testing.assert_array_equal(padded["mask"], [1, 1, 1, 0, 0])
    assert list(padded["sentence"]) == [b"a", b"b", b"c", b"", b""]
    cut = T.PadSequence(("label",), 2).map(dialogue)
    np.testing.assert_array_equal(cut["mask"], [1, 1])
    with pytest.raises(ValueError, match="different lengths"):
        T.PadSequence(("text", "label"), 5).map({"text": np.ones((2, 4)), "label": np.ones(3)})
    assert set(T.SelectFields(("label",)).map(dialogue)) == {"label"}


def test_lexicon_reads_the_nrclex_file():
    lexicon = load_lexicon()
    assert len(lexicon) > 6000 and list(lexicon.words) == sorted(lexicon.words)
    abandon = lexicon.word_id("abandon")
    assert {EMOTIONS[i] for i in np.flatnonzero(lexicon.emotions[abandon])} == {"fear", "sadness"}
    np.testing.assert_array_equal(lexicon.sentiments[abandon], [0, 1])
    with pytest.raises(KeyError, match="not in the NRC lexicon"):
        lexicon.word_id("zzzz")


def test_lexicon_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown labels \\['happy'\\]"):
        parse_lexicon({"sun": ["happy"]})
    with pytest.raises(FileNotFoundError, match="nrc_en.json"):
        load_lexicon(str(tmp_path / "nrc_en.json"))
    path = tmp_path / "small.json"
    path.write_text(json.dumps({"b": ["joy"], "a": ["negative", "anger"]}))
    small = load_lexicon(str(path))
    assert small.words == ("a", "b") and small.emotions[0, EMOTIONS.index("anger")] == 1
