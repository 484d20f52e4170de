"""The per-image regions file of ``anp_distill`` (JSONL) and its join with real datasets.

Users produce it with their own detector (e.g. Detectron2 Panoptic FPN, the paper's) and their own
SentiBank run on each region's crop. One JSON object per line::

    {"image": "joy/0001.jpg",            # the dataset's filename (emotion_roi: "<class>/<file>",
                                         #  twitter_borth: the file name under images/)
     "width": 640, "height": 480,        # the image size the boxes refer to (pixels)
     "regions": [                        # may be empty (the teacher then says "don't know")
        {"box": [x0, y0, x1, y1],        # pixels, 0 <= x0 < x1 <= width, 0 <= y0 < y1 <= height
         "label": "dog",                 # the panoptic category (replaces the ANP's noun)
         "anps": [["happy_dog", 1.93], ["cute_dog", 1.71], ...]}   # >= 1 [ANP, score];
     ]}                                                             # "adj_noun" or "adj noun"

Per region the four best-scored ANPs are kept and their adjectives written as
``adj label adj label ... <end>`` (:func:`emojax.models.anp_distill.data.region_tokens`); per image
the ``max_regions`` largest boxes are kept. Every problem is a ``ValueError`` naming file:line.

Splits: the dataset's own train/test; ``validation`` is a seeded 10% of train (``split_seed``)
that training then leaves out, so checkpoints are not selected on the test split.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math

import numpy as np

from emojax.models.anp_distill import data as anp_data

VALIDATION_FRACTION = 0.1


@dataclasses.dataclass(frozen=True)
class Region:
    box: tuple[float, float, float, float]  # (y0, x0, y1, x1) in [0, 1]
    label: str
    adjectives: tuple[str, ...]  # best first, at most TOP_ANPS


def _fail(where: str, message: str):
    raise ValueError(f"anp_distill regions: {where}: {message}")


def _number(value, where: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        _fail(where, f"{name} must be a finite number, got {value!r}")
    return float(value)


def parse_line(obj, where: str) -> tuple[str, list[Region]]:
    """One parsed JSON line -> (image key, regions); ``where`` is "file:line" for errors."""
    if not isinstance(obj, dict):
        _fail(where, f"expected a JSON object, got {type(obj).__name__}")
    for key in ("image", "width", "height", "regions"):
        if key not in obj:
            _fail(where, f"missing field {key!r} (fields: image, width, height, regions)")
    image = obj["image"]
    if not isinstance(image, str) or not image.strip():
        _fail(where, f"image must be a non-empty string, got {image!r}")
    width, height = _number(obj["width"], where, "width"), _number(obj["height"], where, "height")
    if width <= 0 or height <= 0:
        _fail(where, f"width and height must be > 0, got {width} x {height}")
    if not isinstance(obj["regions"], list):
        _fail(where, f"regions must be a list, got {type(obj['regions']).__name__}")
    regions = []
    for r, region in enumerate(obj["regions"]):
        at = f"{where}: regions[{r}]"
        if not isinstance(region, dict) or not {"box", "label", "anps"} <= set(region):
            _fail(at, "expected an object with box, label and anps")
        box = region["box"]
        if not isinstance(box, list) or len(box) != 4:
            _fail(at, f"box must be [x0, y0, x1, y1], got {box!r}")
        x0, y0, x1, y1 = (_number(v, at, "box") for v in box)
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            _fail(at, f"box {box} is not 0 <= x0 < x1 <= {width:g}, 0 <= y0 < y1 <= {height:g}")
        label = region["label"]
        if not isinstance(label, str) or not label.strip():
            _fail(at, f"label must be a non-empty string, got {label!r}")
        anps = region["anps"]
        if not isinstance(anps, list) or not anps:
            _fail(at, "anps must be a non-empty list of [ANP, score]")
        scored = []
        for a, item in enumerate(anps):
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
                _fail(at, f'anps[{a}] must be ["adjective_noun", score], got {item!r}')
            adjective = item[0].replace("_", " ").split()
            if not adjective:
                _fail(at, f"anps[{a}] has an empty ANP name")
            scored.append((_number(item[1], at, f"anps[{a}] score"), adjective[0]))
        scored.sort(key=lambda s: -s[0])
        adjectives = tuple(adj for _, adj in scored[: anp_data.TOP_ANPS])
        regions.append(
            Region((y0 / height, x0 / width, y1 / height, x1 / width), label, adjectives)
        )
    return image.strip(), regions


def read_regions(path: str) -> dict[str, list[Region]]:
    """image key -> its regions, from a JSONL file (blank lines allowed); errors name file:line."""
    from etils import epath

    out, first_line = {}, {}
    try:
        text = epath.Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"anp_distill regions: data.regions_file {path!r} does not exist (the JSONL of "
            "your detector + SentiBank run; schema in emojax/models/anp_distill/regions.py)"
        ) from None
    for number, line in enumerate(io.StringIO(text), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            _fail(where, f"not valid JSON ({err.msg} at column {err.colno})")
        image, regions = parse_line(obj, where)
        if image in out:
            _fail(where, f"image {image!r} already given on line {first_line[image]}")
        out[image], first_line[image] = regions, number
    if not out:
        raise ValueError(f"anp_distill regions: {path} holds no image")
    return out


def region_arrays(regions: list[Region], max_regions: int, vocab_size: int) -> dict:
    """``boxes [R, 4]``, ``region_mask [R]``, ``tokens [R, TOKENS]`` of the largest boxes."""
    area = lambda r: (r.box[2] - r.box[0]) * (r.box[3] - r.box[1])  # noqa: E731
    kept = sorted(regions, key=lambda r: -area(r))[:max_regions]
    boxes = np.zeros((max_regions, 4), np.float32)
    mask = np.zeros((max_regions,), np.float32)
    tokens = np.tile(anp_data.empty_tokens(), (max_regions, 1))
    for i, region in enumerate(kept):
        boxes[i], mask[i] = region.box, 1.0
        tokens[i] = anp_data.region_tokens(region.adjectives, region.label, vocab_size)
    return {"boxes": boxes, "region_mask": mask, "tokens": tokens}


def decode_resized(data: bytes, size: int) -> np.ndarray:
    """Encoded image -> ``[size, size, 3]`` uint8 RGB (bilinear, aspect ratio not kept: the
    boxes are relative, so they stay aligned)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR), np.uint8)


class JoinedSource:
    """A dataset source (``image`` bytes, ``filename``, labels) joined with the regions file."""

    def __init__(self, base, indices, regions, d, label_key: str):
        self.base, self.indices, self.regions = base, np.asarray(indices), regions
        self.d, self.label_key = d, label_key

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        example = self.base[int(self.indices[i])]
        name = example["filename"]
        name = name.decode() if isinstance(name, bytes) else str(name)
        if name not in self.regions:
            raise KeyError(
                f"anp_distill regions: {self.d.regions_file} has no line for image {name!r}; "
                "run the detector + SentiBank on every image of the dataset"
            )
        out = region_arrays(self.regions[name], self.d.max_regions, self.d.vocab_size)
        out["image"] = decode_resized(example["image"], self.d.image_size)
        out["label"] = np.int32(example[self.label_key])
        return out


def joined_source(d, split: str, num_classes: int) -> JoinedSource:
    """``emotion_roi`` / ``twitter_borth`` split joined with ``d.regions_file``."""
    if split not in ("train", "validation", "test"):
        raise ValueError(f"anp_distill: unknown split {split!r}")
    if not d.regions_file:
        raise ValueError(
            f"config.data.source={d.source!r} needs config.data.regions_file (the JSONL of "
            "regions; schema in emojax/models/anp_distill/regions.py)"
        )
    kwargs = dict(manual_dir=d.manual_dir or None, data_dir=d.data_dir or None)
    base_split = "test" if split == "test" else "train"
    if d.source == "emotion_roi":
        from emojax.data import emotion_roi

        base = emotion_roi.load_source(base_split, **kwargs)
        label_key = "sentiment" if num_classes == 2 else "label"
    elif d.source == "twitter_borth":
        from emojax.data import twitter_borth

        if num_classes != 2:
            raise ValueError("twitter_borth has binary labels: set config.model.num_classes=2")
        base = twitter_borth.load_source(base_split, split_seed=d.split_seed, **kwargs)
        label_key = "label"
    else:
        raise ValueError(f"config.data.source={d.source!r} is not a real dataset")
    indices = np.arange(len(base))
    if base_split == "train":
        order = np.random.default_rng([d.split_seed, 0x7A1]).permutation(len(base))
        held = max(1, int(round(VALIDATION_FRACTION * len(base))))
        indices = np.sort(order[:held] if split == "validation" else order[held:])
    return JoinedSource(base, indices, read_regions(d.regions_file), d, label_key)
