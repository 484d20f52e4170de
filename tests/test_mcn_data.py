"""MCN on real features: word-vector files (text / binary), the caption tokeniser, the per-clip
pooling, the ``retrieval_features`` builder, and configs/mcn/howto100m.py trained a few steps on a
tiny synthetic howto100m_features + retrieval_features layout with whole-split retrieval."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest

from emojax.data import retrieval_features
from emojax.data.word_vectors import caption_vectors, load_word_vectors, tokenize
from emojax.models.mcn.data import FeatureClips, crop_audio, pool_video

ROOT = Path(__file__).parents[1]
WORD_DIM, VIDEO_DIM, N_MELS, FPS = 8, 16, 8, 20


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _vectors_text(words, table, header=False):
    lines = [f"{len(words)} {table.shape[1]}"] if header else []
    lines += [
        w + " " + " ".join(f"{x:.9g}" for x in row) for w, row in zip(words, table, strict=True)
    ]
    return "\n".join(lines) + "\n"


def _vectors_binary(words, table):
    out = f"{len(words)} {table.shape[1]}\n".encode()
    for w, row in zip(words, table, strict=True):
        out += w.encode() + b" " + row.astype("<f4").tobytes() + b"\n"
    return out


# -- word vectors and captions -------------------------------------------------------------------

WORDS = ["crack", "the", "eggs", "whisk", "don't", "café"]
TABLE = np.random.default_rng(0).standard_normal((len(WORDS), 4)).astype(np.float32)


@pytest.mark.parametrize("header", [False, True])
def test_text_word_vectors(tmp_path, header):
    path = str(tmp_path / "vectors.txt")
    _write(path, _vectors_text(WORDS, TABLE, header))
    vectors = load_word_vectors(path)
    assert len(vectors) == 6 and vectors.dim == 4
    np.testing.assert_allclose(vectors.table[vectors.index["café"]], TABLE[5], atol=1e-6)


@pytest.mark.parametrize("name", ["vectors.bin", "vectors.bin.gz"])
def test_binary_word_vectors_match_the_text_file(tmp_path, name):
    path = str(tmp_path / name)
    data = _vectors_binary(WORDS, TABLE)
    with (gzip.open if name.endswith(".gz") else open)(path, "wb") as f:
        f.write(data)
    vectors = load_word_vectors(path)
    assert list(vectors.index) == WORDS
    np.testing.assert_array_equal(vectors.table, TABLE)
    assert len(load_word_vectors(path, limit=2)) == 2
    with open(str(tmp_path / "cut.bin"), "wb") as f:
        f.write(data[:-10])
    with pytest.raises(ValueError, match=r"cut.bin: truncated at word 6 of 6"):
        load_word_vectors(str(tmp_path / "cut.bin"))


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("whisk 1.0 2.0 3.0", r"line 3: 3 values after the word 'whisk', expected 4"),
        ("whisk 1.0 2.0 x 4.0", r"line 3: a value of word 'whisk' is not a number"),
        ("whisk 1.0 nan 3.0 4.0", r"line 3: word 'whisk' has non-finite values"),
    ],
)
def test_malformed_vector_lines_name_file_and_line(tmp_path, bad_line, message):
    path = str(tmp_path / "bad.txt")
    lines = _vectors_text(WORDS[:2], TABLE[:2]) + bad_line + "\n"
    _write(path, lines)
    with pytest.raises(ValueError, match=rf"bad.txt, {message}"):
        load_word_vectors(path)
    with pytest.raises(ValueError, match=r"line 1: expected word2vec's binary header"):
        load_word_vectors(path, fmt="binary")
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load_word_vectors(str(tmp_path / "missing.txt"))


def test_captions_skip_unknown_words_and_truncate(tmp_path):
    path = str(tmp_path / "vectors.txt")
    _write(path, _vectors_text(WORDS, TABLE))
    vectors = load_word_vectors(path)
    assert tokenize("Don't crack THE eggs, café-style!") == [
        "don't", "crack", "the", "eggs", "café", "style"
    ]  # fmt: skip
    words, mask = caption_vectors("Crack the eggs, then whisk", vectors, 3)
    np.testing.assert_array_equal(mask, [1, 1, 1])
    np.testing.assert_array_equal(words, TABLE[[0, 1, 2]])  # "then" skipped, "whisk" cut
    words, mask = caption_vectors("then whisk", vectors, 3)
    np.testing.assert_array_equal(mask, [1, 0, 0])
    np.testing.assert_array_equal(words[0], TABLE[3])
    assert not words[1:].any()
    assert caption_vectors("Crack", vectors, 2, lowercase=False)[1].sum() == 0


# -- per-clip pooling ----------------------------------------------------------------------------


def test_video_max_pool_normalises_each_part_and_audio_crop_pad():
    video = np.array([[1.0, -2.0, 0.0, 3.0], [0.5, 0.0, 4.0, -1.0]], np.float32)
    np.testing.assert_allclose(pool_video(video, (2, 2)), [1.0, 0.0, 0.8, 0.6], atol=1e-6)
    whole = pool_video(video)
    np.testing.assert_allclose(whole, np.array([1, 0, 4, 3]) / np.sqrt(26), atol=1e-6)
    with pytest.raises(ValueError, match=r"video_parts=\(3, 2\) sum to 5"):
        pool_video(video, (3, 2))
    with pytest.raises(ValueError, match=r"clip x: video features must be \[seconds>0"):
        pool_video(video[:0], where="clip x")
    audio = np.arange(10, dtype=np.float32).reshape(5, 2)
    cropped, n = crop_audio(audio, 3)
    np.testing.assert_array_equal(cropped, audio[:3])
    assert n == 3
    padded, n = crop_audio(audio, 7)
    assert n == 5 and padded.shape == (7, 2) and not padded[5:].any()


def test_feature_clip_with_no_known_word_is_an_empty_caption(tmp_path):
    path = str(tmp_path / "vectors.txt")
    _write(path, _vectors_text(WORDS, TABLE))
    kwargs = dict(video_dim=4, n_mels=2, audio_frames=6, max_words=3, video_parts=(2, 2))
    transform = FeatureClips(word_vectors_path=path, word_dim=4, **kwargs)
    example = {
        "clip_id": b"yc2_0007",
        "text": b"Whisk the eggs",
        "video": np.ones((3, 4), np.float32),
        "audio": np.ones((4, 2), np.float32),
    }
    clip = transform.map(example)
    assert clip["audio"].shape == (6, 2) and int(clip["audio_nframes"]) == 4
    np.testing.assert_array_equal(clip["text_mask"], [1, 1, 1])
    with pytest.raises(ValueError, match=r"retrieval_features clip 'yc2_0007'.*empty caption"):
        transform.map({**example, "text": b"zzz qqq"})
    howto = {k: v for k, v in example.items() if k != "clip_id"}
    howto.update(video_id=b"vid_a", start=np.float32(2.5), end=np.float32(6.0), text=b"-")
    with pytest.raises(ValueError, match=r"video 'vid_a' at 2.50-6.00 s \(caption '-'"):
        transform.map(howto)
    with pytest.raises(ValueError, match="are 4-d, config.model.word_dim is 300"):
        FeatureClips(word_vectors_path=path, word_dim=300, **kwargs).map(example)
    with pytest.raises(ValueError, match=r"video_parts=\(3, 3\) must sum to model.video_dim=4"):
        FeatureClips(word_vectors_path=path, word_dim=4, **{**kwargs, "video_parts": (3, 3)})


# -- the retrieval_features builder --------------------------------------------------------------

SMALL_RETRIEVAL = retrieval_features.RetrievalFeaturesConfig(
    name="small", video_dim=VIDEO_DIM, n_mels=N_MELS
)


def _clip_words(i: int) -> str:
    return f"word{i} word{i + 1} and tool{i % 3}"


def _write_retrieval(root, n=6, split="validation", seed=1):
    rng = np.random.default_rng(seed)
    lines = ["# clip_id<TAB>caption"]
    for i in range(n):
        clip = f"clip{i}"
        lines.append(f"{clip}\t{_clip_words(i).title()}")
        seconds = 2 + i % 3
        os.makedirs(os.path.join(root, "video"), exist_ok=True)
        os.makedirs(os.path.join(root, "audio"), exist_ok=True)
        video = rng.standard_normal((seconds, VIDEO_DIM)).astype(np.float32)
        np.save(os.path.join(root, "video", f"{clip}.npy"), video)
        audio = rng.standard_normal((seconds * FPS, N_MELS)).astype(np.float32)
        np.save(os.path.join(root, "audio", f"{clip}.npy"), audio)
    _write(os.path.join(root, "splits", f"{split}.tsv"), "\n".join(lines) + "\n")


def test_retrieval_features_one_example_per_clip_in_order(tmp_path):
    manual = str(tmp_path / "manual")
    _write_retrieval(manual)
    source = retrieval_features.load_source(
        "validation", manual_dir=manual, data_dir=str(tmp_path / "d"), config=SMALL_RETRIEVAL
    )
    assert len(source) == 6
    ids = [source[i]["clip_id"].decode() for i in range(6)]
    assert ids == [f"clip{i}" for i in range(6)]
    third = source[2]
    assert third["text"].decode() == _clip_words(2).title()
    np.testing.assert_array_equal(third["video"], np.load(f"{manual}/video/clip2.npy"))
    assert third["audio"].shape == (4 * FPS, N_MELS)
    with pytest.raises(ValueError, match=r"no 'test' split .*splits/test.tsv"):
        retrieval_features.load_source(
            "test", manual_dir=manual, data_dir=str(tmp_path / "d"), config=SMALL_RETRIEVAL
        )


@pytest.mark.parametrize(
    "edit, error, message",
    [
        (lambda m: os.remove(f"{m}/audio/clip3.npy"), FileNotFoundError,
         r"validation.tsv, line 5 \(clip 'clip3'\): no audio features: .*audio/clip3.npy"),
        (lambda m: np.save(f"{m}/video/clip1.npy", np.zeros((2, 5), np.float32)), ValueError,
         r"line 3 \(clip 'clip1'\): .*clip1.npy has shape \(2, 5\); expected \[rows>0, 16\]"),
        (lambda m: np.save(f"{m}/audio/clip0.npy", np.zeros((N_MELS, 0), np.float32)), ValueError,
         r"line 2 .*clip0.npy has shape \(8, 0\); expected \[rows>0, 8\] \(frames first"),
        (lambda m: _write(f"{m}/splits/validation.tsv", "a\tx\n\nb\t \n"), ValueError,
         r"validation.tsv, line 3: clip 'b' has an empty caption"),
        (lambda m: _write(f"{m}/splits/validation.tsv", "clip0\tx\nclip0\ty\n"), ValueError,
         r"line 2: clip 'clip0' already listed on line 1"),
        (lambda m: _write(f"{m}/splits/validation.tsv", "clip0 no tab\n"), ValueError,
         r"line 1: expected 'clip_id<TAB>caption'"),
        (lambda m: os.rename(f"{m}/splits/validation.tsv", f"{m}/splits/dev.tsv"),
         FileNotFoundError, r"no splits/<split>.tsv"),
    ],
    ids=["missing-modality", "video-width", "audio-transposed", "empty-caption", "repeated",
         "no-tab", "no-split"],
)  # fmt: skip
def test_retrieval_features_bad_input_names_file_and_line(tmp_path, edit, error, message):
    manual = str(tmp_path / "manual")
    _write_retrieval(manual)
    edit(manual)
    with pytest.raises(error, match=message):
        retrieval_features.load_source(
            "validation", manual_dir=manual, data_dir=str(tmp_path / "d"), config=SMALL_RETRIEVAL
        )


# -- configs/mcn/howto100m.py end to end on a tiny layout ----------------------------------------


def _write_howto(root, videos=4, seed=0):
    rng = np.random.default_rng(seed)
    captions, ids = {}, []
    for v in range(videos):
        vid = f"vid{v}"
        ids.append(vid)
        starts = [0.0, 2.0, 4.5, 6.0]
        captions[vid] = {
            "start": starts,
            "end": [s + 1.5 for s in starts],
            "text": [_clip_words(4 * v + c) for c in range(4)],
        }
        for folder, rows, dim in (("video", 8, VIDEO_DIM), ("audio", 8 * FPS, N_MELS)):
            os.makedirs(os.path.join(root, folder), exist_ok=True)
            array = rng.standard_normal((rows, dim)).astype(np.float32)
            np.save(os.path.join(root, folder, f"{vid}.npy"), array)
    _write(os.path.join(root, "caption.json"), json.dumps(captions))
    _write(os.path.join(root, "splits", "train.txt"), "\n".join(ids) + "\n")


def _tiny_vocabulary(root):
    words = sorted({w for i in range(20) for w in tokenize(_clip_words(i))})
    table = np.random.default_rng(2).standard_normal((len(words), WORD_DIM)).astype(np.float32)
    path = os.path.join(root, "vectors.bin")
    with open(path, "wb") as f:
        f.write(_vectors_binary(words, table))
    return path


def tiny_howto100m_config(tmp_path, **overrides):
    from emojax.train import load_config

    config = load_config(str(ROOT / "configs" / "mcn" / "howto100m.py"))
    _write_howto(str(tmp_path / "howto"))
    _write_retrieval(str(tmp_path / "youcook"))
    m = config.model
    m.embed_dim, m.video_dim, m.word_dim, m.n_mels, m.recon_hidden = 16, VIDEO_DIM, WORD_DIM, 8, 16
    m.audio_widths, m.audio_depths = (8, 8, 8, 8, 8), (1, 1, 1, 1)
    c = m.cluster
    c.num_clusters, c.queue_size, c.refit_every, c.reset_every = 4, 16, 2, 0
    d = config.data
    d.manual_dir, d.eval_manual_dir = str(tmp_path / "howto"), str(tmp_path / "youcook")
    d.data_dir = str(tmp_path / "tfds")
    d.word_vectors_path = _tiny_vocabulary(str(tmp_path))
    d.video_parts, d.audio_frames_per_second, d.audio_frames, d.max_words = (8, 8), FPS, 32, 4
    d.global_batch_size, d.worker_count = 8, 0
    config.mesh = {"data": 2, "fsdp": 4, "tensor": 1}  # the config's FSDP, on 8 CPU devices
    t = config.train
    t.num_steps, t.log_every, t.eval_every, t.save_every = 4, 1, 4, 4
    t.compute_dtype = "float32"
    config.optimizer.warmup_steps = 1
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = config
        for p in parents:
            node = node[p]
        node[leaf] = value
    return config


@pytest.mark.slow  # about 55 s of CPU (compiling the train and eval steps) on 2 shared cores
def test_howto100m_config_trains_and_evaluates_retrieval(tmp_path):
    from emojax.train import train

    config = tiny_howto100m_config(tmp_path)
    result = train(config, str(tmp_path / "run"))
    assert result["step"] == 4
    rows = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    evals = [r for r in rows if "eval/num_examples" in r]
    assert evals and evals[-1]["eval/num_examples"] == 6  # every retrieval_features clip
    for key in ("eval/t2va_R@1", "eval/t2va_R@10", "eval/t2va_median_rank", "eval/t2v_R@5"):
        assert np.isfinite(evals[-1][key]), key
    assert evals[-1]["eval/t2va_R@10"] == 1.0  # 6 clips: every caption ranks its clip <= 6
    train_rows = [r for r in rows if any(k.endswith("loss_cluster") for k in r)]
    assert len(train_rows) == 4
    assert all(np.isfinite(v) for r in train_rows for k, v in r.items() if "loss" in k)


def test_howto100m_config_errors_before_training(tmp_path):
    from emojax.models.mcn.method import MCN
    from emojax.train import validate_config

    config = validate_config(tiny_howto100m_config(tmp_path, **{"data.eval_manual_dir": ""}))
    with pytest.raises(ValueError, match="config.data.eval_manual_dir is empty"):
        MCN(config).data_source("train")
    config.data.eval_manual_dir = str(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="nowhere.*eval_every=0"):
        MCN(config).data_source("train")
    config.data.eval_source = ""  # howto100m_features' own validation split: none was given
    config.data.word_vectors_path = ""
    method = MCN(config)
    assert len(method.data_source("train")) == 16
    with pytest.raises(ValueError, match="howto100m_features has no 'validation' split"):
        method.data_source("validation")
    with pytest.raises(ValueError, match="word_vectors_path is empty"):
        method.preprocess("train")
    config.data.eval_source = "msrvtt"
    with pytest.raises(ValueError, match="eval_source='msrvtt'"):
        MCN(config).data_source("validation")


def test_prepare_data_builds_both_sources_and_checks_the_word_vectors(tmp_path):
    from emojax.models.mcn.method import MCN
    from emojax.train import validate_config

    config = validate_config(tiny_howto100m_config(tmp_path))
    MCN(config).prepare_data()
    assert {p.name for p in (tmp_path / "tfds").iterdir()} >= {
        "howto100m_features",
        "retrieval_features",
    }
    bad = tmp_path / "glove.txt"
    _write(str(bad), "the " + " ".join(["0.5"] * WORD_DIM) + "\nand 0.5 0.5\n")
    config.data.word_vectors_path = str(bad)
    with pytest.raises(ValueError, match=r"glove.txt, line 2: 2 values after the word 'and'"):
        MCN(config).prepare_data()
