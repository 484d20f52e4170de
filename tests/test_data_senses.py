"""emojax_senses: fields, real lexicon targets, word-disjoint splits, determinism, signal."""

import glob
import os

import numpy as np
import pytest

from emojax.data import senses
from emojax.data.lexicon import EMOTIONS, load_lexicon
from emojax.data.senses import affect
from emojax.data.senses.scenes import scene_targets, split_words

SMALL = {"num_train": 600, "num_validation": 60, "num_test": 60}  # train: 3 chunks of 256


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("senses"))
    senses.get_builder(root, seed=0, workers=2, **SMALL)  # train rendered in 2 processes
    return root


@pytest.fixture(scope="module")
def train(data_dir):
    source = senses.load_source("train", data_dir, seed=0, **SMALL)
    return [source[i] for i in range(len(source))]


def _records(data_dir, seed):
    pattern = os.path.join(data_dir, "emojax_senses", f"s{seed}_*", "*", "*.array_record*")
    files = sorted(glob.glob(pattern))
    assert files, pattern
    return {os.path.basename(f): open(f, "rb").read() for f in files}


def test_fields_shapes_and_dtypes(train):
    assert len(train) == SMALL["num_train"]
    example = train[0]
    assert set(example) == set(senses.FIELDS)
    for name, (shape, dtype, _) in senses.FIELDS.items():
        value = np.asarray(example[name])
        assert value.shape == shape, name
        if dtype == "string":
            assert all(isinstance(w, bytes) for w in value)
        else:
            assert value.dtype == np.dtype(dtype), name


def test_targets_come_from_the_lexicon(train):
    lexicon = load_lexicon()
    for example in train[:100]:
        words = [w.decode() for w in example["words"]]
        ids = [lexicon.word_id(w) for w in words]
        np.testing.assert_array_equal(example["word_ids"], ids)
        union = lexicon.emotions[ids].max(axis=0)
        support = example["emotion"] > 0
        np.testing.assert_array_equal(example["emotion_multi_hot"], support)
        assert np.all(union[support] == 1)  # only emotions the words carry
        assert example["emotion"].sum() == pytest.approx(1.0, abs=1e-5)
        assert example["sentiment"].sum() == pytest.approx(1.0, abs=1e-5)
        kept = example["emotion"][support]
        assert kept.min() >= 0.5 * kept.max() - 1e-6
        assert example["emotion"][example["label"]] == pytest.approx(example["emotion"].max())
        assert len(set(words)) == 5


def test_scene_targets_by_hand():
    lexicon = load_lexicon()
    # abandon: fear, sadness, negative; abandoned: anger, fear, sadness, negative;
    # aberrant, abrasion: negative only; ability: positive only
    words = ["abandon", "aberrant", "abandoned", "ability", "abrasion"]
    ids = np.array([lexicon.word_id(w) for w in words])
    # mixture: anger 1/6, fear 5/12, sadness 5/12; anger < half the max -> dropped
    expected = np.zeros(8, np.float32)
    expected[EMOTIONS.index("fear")] = expected[EMOTIONS.index("sadness")] = 0.5
    for theme in ("fear", "sadness"):
        targets = scene_targets(ids, theme=EMOTIONS.index(theme), lexicon=lexicon)
        np.testing.assert_allclose(targets["emotion"], expected, rtol=1e-6)
        assert targets["label"] == EMOTIONS.index(theme)  # exact tie fear/sadness -> theme
    targets = scene_targets(ids, theme=EMOTIONS.index("joy"), lexicon=lexicon)
    assert targets["label"] == EMOTIONS.index("fear")  # theme not tied -> lowest index
    np.testing.assert_array_equal(targets["emotion_multi_hot"], [0, 0, 0, 1, 0, 1, 0, 0])
    np.testing.assert_allclose(targets["sentiment"], [1 / 5, 4 / 5])


def test_splits_are_word_disjoint(data_dir):
    pools = {split: set(senses.split_vocabulary(split)) for split in senses.SPLITS}
    assert not pools["train"] & pools["test"]
    assert not pools["train"] & pools["validation"]
    assert not pools["validation"] & pools["test"]
    assert sum(map(len, pools.values())) == len(senses.vocabulary())
    seen = {split: set() for split in senses.SPLITS}
    for split in senses.SPLITS:
        source = senses.load_source(split, data_dir, seed=0, **SMALL)
        for i in range(len(source)):
            seen[split].update(w.decode() for w in source[i]["words"])
        assert seen[split] <= pools[split]
    assert not seen["test"] & seen["train"]


def test_targets_are_sparse_and_multi_label(train):
    active = np.array([e["emotion_multi_hot"].sum() for e in train])
    assert 1.5 < active.mean() < 3.0
    assert (active == 1).any() and (active >= 2).mean() > 0.3


def test_every_split_has_words_of_every_emotion():
    lexicon = load_lexicon()
    for ids in split_words(lexicon, seed=3).values():
        assert lexicon.emotions[ids].sum(axis=0).min() > 10


def test_same_seed_same_bytes_other_seed_differs(data_dir, tmp_path):
    again = str(tmp_path / "again")
    senses.get_builder(again, seed=0, workers=0, **SMALL)  # in-process == 2 workers
    assert _records(again, 0) == _records(data_dir, 0)
    senses.get_builder(again, seed=1, workers=0, **SMALL)
    other = _records(again, 1)
    assert other.keys() == _records(data_dir, 0).keys()
    assert all(other[k] != v for k, v in _records(data_dir, 0).items())


def test_cached_after_first_build(data_dir, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("rebuilt a prepared dataset")

    monkeypatch.setattr(senses.EmojaxSenses, "download_and_prepare", fail)
    assert len(senses.load_source("test", data_dir, seed=0, **SMALL)) == SMALL["num_test"]


def _correlation(a, b):
    return float(np.corrcoef(np.asarray(a, float), np.asarray(b, float))[0, 1])


def _smile(face):
    """How much the dark mouth pixels curve up at the corners (cov of (x - x0)^2 and -y)."""
    box = face[19:27, 10:23, 0]
    ys, xs = np.nonzero(box < 80)
    if len(xs) < 3:
        return 0.0
    return -float(np.cov((xs - xs.mean()) ** 2, ys)[0, 1])


def test_renderings_carry_the_documented_signal(train):
    lexicon = load_lexicon()

    def word_affect(example, sense):
        word = example["word_ids"][senses.SENSES.index(sense)]
        return affect.word_affect(lexicon.emotions[word], lexicon.sentiments[word])

    sight_valence = [word_affect(e, "sight")[1] for e in train]
    brightness = [e["image"].mean() for e in train]
    assert _correlation(sight_valence, brightness) > 0.3
    scene_valence = [float(e["emotion"] @ affect.VALENCE) for e in train]
    assert _correlation(scene_valence, [_smile(e["face"]) for e in train]) > 0.3
    rough = [
        sum(word_affect(e, "sound")[0][k] for k in (affect.ANGER, affect.FEAR, affect.DISGUST))
        for e in train
    ]
    hf_noise = [np.abs(np.diff(e["audio"])).mean() for e in train]
    assert _correlation(rough, hf_noise) > 0.3
    touch_q = [word_affect(e, "touch")[0] for e in train]
    temperature = [e["touch"][1] for e in train]
    expected = [q @ affect.TEMPERATURE if q.sum() else 0.0 for q in touch_q]
    assert _correlation(expected, temperature) > 0.5
    # noisy: renderings are not a deterministic function of the label
    assert np.std(brightness) > 5


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="split 'dev'"):
        senses.load_source("dev")
    with pytest.raises(ValueError, match="num_train"):
        senses.make_config(num_train=0)
    with pytest.raises(ValueError, match="seed"):
        senses.make_config(seed=-1)


def test_through_the_grain_pipeline(data_dir):
    from emojax.data.pipeline import make_data_iterator
    from emojax.data.transforms import SelectFields

    source = senses.load_source("train", data_dir, seed=0, **SMALL)
    fields = ("image", "face", "audio", "touch", "word_ids", "emotion", "label")
    iterator = make_data_iterator(
        source,
        global_batch_size=32,
        seed=0,
        transforms=[SelectFields(fields)],
        process_index=0,
        process_count=1,
    )
    batch = next(iterator)
    close = getattr(iterator, "close", None)
    if close is not None:  # stop grain's read threads before the worker exits
        close()
    assert batch["image"].shape == (32, 32, 32, 3)
    assert batch["audio"].shape == (32, 4000)
    assert batch["emotion"].shape == (32, 8)
    assert batch["label"].shape == (32,)


def _same_examples(a, b):
    assert [i for i, _ in a] == [i for i, _ in b] == list(range(len(a)))
    for (_, x), (_, y) in zip(a, b, strict=True):
        for name in x:
            np.testing.assert_array_equal(x[name], y[name], err_msg=name)


def test_parallel_generation_equals_serial_and_falls_back(caplog, monkeypatch):
    from emojax.data.senses import generate

    serial = list(generate.generate_split(5, "validation", 300, workers=0, chunk=100))
    with caplog.at_level("WARNING"):
        parallel = list(generate.generate_split(5, "validation", 300, workers=2, chunk=100))
    assert "parallel generation stopped" not in caplog.text  # the pool really ran
    _same_examples(serial, parallel)

    def broken_pool(*args, **kwargs):
        raise OSError("no processes here")

    monkeypatch.setattr(generate.concurrent.futures, "ProcessPoolExecutor", broken_pool)
    with caplog.at_level("WARNING"):
        fallback = list(generate.generate_split(5, "validation", 300, workers=2, chunk=100))
    assert "parallel generation stopped" in caplog.text
    _same_examples(serial, fallback)


def test_concurrent_first_use_from_two_processes(tmp_path):
    import subprocess
    import sys

    code = (
        "from emojax.data import senses\n"
        f"s = senses.load_source('test', {str(tmp_path)!r}, seed=7, num_train=200,"
        " num_validation=20, num_test=30, workers=0)\n"
        "print('rows', len(s), s[29]['word_ids'].tolist())\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    rows = [line for out in outputs for line in out.splitlines() if line.startswith("rows")]
    assert len(rows) == 2 and rows[0] == rows[1] and rows[0].startswith("rows 30 ")
