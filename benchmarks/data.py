"""Data pipelines: examples/s with 0 and 2 grain workers, against a training step.

    python -m benchmarks.data [--quick] [--json PATH]

Table 1 (build): time to build ``emojax_senses`` into an empty data dir (default size; --quick: a
2,000-example train split, so the rate is the number to read); cpu_s = CPU seconds of this
process and the build workers (wall time on a shared machine overstates it).
Table 2 (pipelines): ms per batch and examples/s of each pipeline (``emojax.data.pipeline``, the
same one the trainer uses), 0 and 2 worker processes, over real-format fixtures written here:
senses (raw / tokenised + flipped), EmotionROI-style JPEGs (decode, resize 256, crop 224, flip,
normalise), IEMOCAP dialogues (pad to 110 utterances), HowTo100M clips (pad + tokenise).
Table 3: the senses pipeline vs one jitted train step of configs/emosense/default.py (same
global batch, same process): the "step" column is the step, ratio = step / pipeline (> 1: the
pipeline is not what limits training); and the log-mel front end in the pipeline (librosa, per
example) vs carrying waveforms, the reason the log-mel runs on device.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import resource
import shutil
import tempfile
import time

import numpy as np

from benchmarks.common import Row, parse_args, print_table, write_json
from emojax.data import emotion_roi, howto100m, iemocap, senses
from emojax.data import transforms as T
from emojax.data.pipeline import make_data_iterator

TITLE = "data pipelines"
SENSES_NUMERIC = ("image", "face", "audio", "touch", "word_ids", "emotion", "label")


def _batches_per_second(source, transforms, batch_size, workers, num_batches) -> float:
    """Examples/s over ``num_batches`` after the first batch (which pays the start-up)."""
    iterator = make_data_iterator(
        source,
        global_batch_size=batch_size,
        seed=0,
        num_epochs=None,
        transforms=transforms,
        worker_count=workers,
        process_index=0,
        process_count=1,
    )
    next(iterator)
    start = time.perf_counter()
    for _ in range(num_batches):
        next(iterator)
    elapsed = time.perf_counter() - start
    close = getattr(iterator, "close", None)
    if close:
        close()
    return num_batches * batch_size / elapsed


def _jpeg(rng, size=(240, 320)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, size + (3,), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def _emotion_roi_fixture(root, per_class):
    rng = np.random.default_rng(0)
    lines = []
    for name in emotion_roi.CLASSES:
        os.makedirs(os.path.join(root, "images", name), exist_ok=True)
        for k in range(per_class):
            with open(os.path.join(root, "images", name, f"{k}.jpg"), "wb") as f:
                f.write(_jpeg(rng))
            lines.append(f"{name}/{k}.jpg")
    os.makedirs(os.path.join(root, "training_testing_split"), exist_ok=True)
    for split in ("training", "testing"):
        with open(os.path.join(root, "training_testing_split", f"{split}.txt"), "w") as f:
            f.write("\n".join(lines))


def _iemocap_fixture(root, num_dialogues):
    rng = np.random.default_rng(0)

    def dialogue(i):
        n = int(rng.integers(24, 110))
        return {
            "vid": f"Ses{i:03d}",
            "speakers": ["M" if k % 2 else "F" for k in range(n)],
            "labels": rng.integers(0, 6, n).tolist(),
            "sbert_sentence_embeddings": rng.normal(size=(n, 768)).astype(np.float32),
            "text": rng.normal(size=(n, 100)).astype(np.float32),
            "audio": rng.normal(size=(n, 100)).astype(np.float32),
            "visual": rng.normal(size=(n, 512)).astype(np.float32),
            "sentence": [f"utterance {k}" for k in range(n)],
        }

    data = {
        "train": [dialogue(i) for i in range(num_dialogues)],
        "dev": [dialogue(num_dialogues)],
        "test": [dialogue(num_dialogues + 1)],
    }
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "data_iemocap.pkl"), "wb") as f:
        pickle.dump(data, f)


def _howto_fixture(root, num_videos, config):
    rng = np.random.default_rng(0)
    captions = {}
    for sub in ("video", "audio", "splits"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    for v in range(num_videos):
        vid = f"v{v:04d}"
        seconds = 60
        starts = np.arange(0, 56, 4.0)
        captions[vid] = {
            "start": starts.tolist(),
            "end": (starts + 3.5).tolist(),
            "text": [f"step {k} of the recipe for video {v}" for k in range(len(starts))],
        }
        video = rng.normal(size=(seconds, config.video_dim)).astype(np.float32)
        audio = rng.normal(size=(seconds * 100, config.n_mels)).astype(np.float32)
        np.save(os.path.join(root, "video", f"{vid}.npy"), video)
        np.save(os.path.join(root, "audio", f"{vid}.npy"), audio)
    with open(os.path.join(root, "caption.json"), "w") as f:
        json.dump(captions, f)
    with open(os.path.join(root, "splits", "train.txt"), "w") as f:
        f.write("\n".join(captions))


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (build workers)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def build_rows(tmp: str, quick: bool) -> list[Row]:
    sizes = {"num_train": 2_000, "num_validation": 100, "num_test": 100} if quick else {}
    start, cpu = time.perf_counter(), _cpu_seconds()
    senses.get_builder(os.path.join(tmp, "senses"), **sizes)
    seconds = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu
    n = sum(sizes.values()) if quick else 24_000
    return [
        Row(
            f"build emojax_senses ({n} examples)",
            seconds * 1e3,
            extra={"s": f"{seconds:.1f}", "cpu_s": f"{cpu:.1f}", "ex/s": f"{n / seconds:.0f}"},
        )
    ]


def pipeline_cases(tmp: str, quick: bool):
    """(name, source, transforms, batch size) per pipeline."""
    senses_source = senses.load_source(
        "train",
        os.path.join(tmp, "senses"),
        **({"num_train": 2_000, "num_validation": 100, "num_test": 100} if quick else {}),
    )
    yield "senses raw (numeric fields)", senses_source, [T.SelectFields(SENSES_NUMERIC)], 64
    tokenised = [
        T.Tokenize("words", 8),
        T.RandomFlip(("image", "face")),
        T.SelectFields(SENSES_NUMERIC + ("words_ids", "words_mask")),
    ]
    yield "senses + tokenise words + flip", senses_source, tokenised, 64

    roi = os.path.join(tmp, "roi")
    _emotion_roi_fixture(roi, per_class=10 if quick else 40)
    roi_source = emotion_roi.load_source("train", manual_dir=roi, data_dir=os.path.join(tmp, "d"))
    image_ops = [
        T.DecodeImage(),
        T.ResizeImage(256),
        T.RandomCrop(224),
        T.RandomFlip(),
        T.NormalizeImage(),
        T.SelectFields(("image", "label", "sentiment")),
    ]
    yield "emotion_roi jpeg 320x240 -> 224 crop", roi_source, image_ops, 16

    iemo = os.path.join(tmp, "iemocap")
    _iemocap_fixture(iemo, num_dialogues=24 if quick else 108)
    iemo_source = iemocap.load_source("train", manual_dir=iemo, data_dir=os.path.join(tmp, "d"))
    pad = T.PadSequence(("text", "audio", "visual", "speaker", "label"), 110)
    keep = T.SelectFields(("text", "audio", "visual", "speaker", "label", "mask"))
    yield "iemocap dialogues padded to 110", iemo_source, [pad, keep], 32

    howto = os.path.join(tmp, "howto")
    config = howto100m.HowTo100MConfig(name="bench", video_dim=4096, n_mels=40)
    _howto_fixture(howto, 8 if quick else 40, config)
    howto_source = howto100m.load_source(
        "train", manual_dir=howto, data_dir=os.path.join(tmp, "d"), config=config
    )
    clip_ops = [
        T.PadSequence(("video",), 16, mask_field="video_mask"),
        T.PadSequence(("audio",), 400, mask_field="audio_mask"),
        T.Tokenize("text", 16),
        T.SelectFields(("video", "video_mask", "audio", "audio_mask", "text_ids", "text_mask")),
    ]
    yield "howto100m clips (4096-d video, log-mel)", howto_source, clip_ops, 64


def pipeline_rows(tmp: str, quick: bool) -> tuple[list[Row], dict]:
    rows, rates = [], {}
    num_batches = 10 if quick else 40
    for name, source, ops, batch in pipeline_cases(tmp, quick):
        for workers in (0, 2):
            rate = _batches_per_second(source, ops, batch, workers, num_batches)
            rates[(name, workers)] = rate
            rows.append(
                Row(
                    f"{name} w={workers}",
                    batch / rate * 1e3,
                    extra={"batch": batch, "ex/s": f"{rate:.0f}"},
                )
            )
    return rows, rates


def emosense_step_ms() -> tuple[float | None, str]:
    """One jitted train step of configs/emosense/default.py on zeros (ms), or None + why."""
    try:
        import flax.linen as nn
        import jax

        from benchmarks.common import time_ms
        from emojax.parallel import LOGICAL_AXIS_RULES, make_mesh
        from emojax.train.config import load_config, validate_config
        from emojax.train.loop import _Run

        config = validate_config(load_config("configs/emosense/default.py"))
        mesh = make_mesh(config.mesh)
        with jax.set_mesh(mesh), nn.logical_axis_rules(LOGICAL_AXIS_RULES):
            run = _Run(config, mesh)
            shapes = run.method.example_batch(config.data.global_batch_size)
            local = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
            batch = run.global_batch(local)
            step = run.jit_train_step()
            holder = {"state": run.init_fn()}

            def one():
                holder["state"], metrics = step(holder["state"], batch)
                return metrics

            return time_ms(one, repeats=10, warmup=2), f"batch {config.data.global_batch_size}"
    except Exception as error:  # the model is another helper's; report, do not fail the table
        return None, f"{type(error).__name__}: {error}"[:200]


def logmel_rows(tmp: str, quick: bool) -> list[Row]:
    """Per-example log-mel in the pipeline (librosa) vs carrying the waveform."""
    import librosa

    source = senses.load_source(
        "train",
        os.path.join(tmp, "senses"),
        **({"num_train": 2_000, "num_validation": 100, "num_test": 100} if quick else {}),
    )
    n = 200 if quick else 1000
    waves = [source[i]["audio"] for i in range(n)]

    def logmel(wave):
        mel = librosa.feature.melspectrogram(
            y=wave, sr=8000, n_fft=256, hop_length=64, n_mels=32, power=2.0
        )
        return np.log(mel + 1e-6)

    logmel(waves[0])  # librosa's first call pays for its caches
    start = time.perf_counter()
    for wave in waves:
        logmel(wave)
    per_example = (time.perf_counter() - start) / n
    return [
        Row(
            "log-mel in pipeline (librosa, per example)",
            per_example * 1e3,
            extra={"ex/s/core": f"{1 / per_example:.0f}"},
        )
    ]


def main():
    args = parse_args(__doc__)
    tmp = tempfile.mkdtemp(prefix="emojax_bench_data_")
    try:
        build = build_rows(tmp, args.quick)
        print_table("emojax_senses build (empty data dir)", build, peer="-")
        rows, rates = pipeline_rows(tmp, args.quick)
        print_table(f"{TITLE}: ms per batch, examples/s", rows, peer="-")
        step_ms, note = emosense_step_ms()
        compare = []
        for workers in (0, 2):
            rate = rates[("senses + tokenise words + flip", workers)]
            compare.append(
                Row(
                    f"senses pipeline (batch 64) w={workers} vs step",
                    64 / rate * 1e3,
                    step_ms,
                    extra={"step": note},
                )
            )
        compare += logmel_rows(tmp, args.quick)
        print_table("pipeline vs emosense default train step", compare, peer="step")
        write_json(args.json, TITLE, build + rows + compare)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
