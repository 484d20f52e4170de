"""Downstream image-classification sets from local files: one folder per class, or a CSV.

Layouts (``root``)::

    root/<class>/<image>          one folder per class (Emotion6, FI, UBE as released)
    root/labels.csv               or a CSV: ``path,label`` rows (an optional header
                                  ``path,label``), paths relative to the CSV's folder

Classes are the sorted folder names / label strings. The examples are split per class
(stratified) by ``ratios`` = (train, validation, test) with a seeded shuffle; the splits are
disjoint and every image lands in exactly one. REFERENCES.md's protocols: :data:`SPLITS`.
Examples: ``{"image": [S, S, 3] uint8 (shorter side resized to S, centre crop), "label": []
int32, "box": [4] float32 zeros (no person box: the model's fallback view)}``. Errors name the
file, and for a CSV the line.
"""

from __future__ import annotations

import csv
import functools
import os

import numpy as np
from PIL import Image

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif")
# (train, validation, test) fractions of the downstream protocols (REFERENCES.md "UniEmoX")
SPLITS = {
    "emotion6": (0.7, 0.1, 0.2),
    "heco": (0.7, 0.1, 0.2),
    "fi": (0.8, 0.05, 0.15),
    "ube": (0.7, 0.1, 0.2),
}
SPLIT_NAMES = ("train", "validation", "test")


def read_csv(path: str) -> list[tuple[str, str]]:
    """``path,label`` rows of a CSV -> [(absolute image path, label)]; errors name file:line."""
    base = os.path.dirname(os.path.abspath(path))
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if not row or all(not c.strip() for c in row):
                continue
            if line == 1 and [c.strip().lower() for c in row] == ["path", "label"]:
                continue
            if len(row) != 2 or not row[0].strip() or not row[1].strip():
                raise ValueError(
                    f"{path}:{line}: expected 'path,label' (two non-empty columns), got {row!r}"
                )
            image = os.path.join(base, row[0].strip())
            if not os.path.isfile(image):
                raise FileNotFoundError(f"{path}:{line}: image {row[0].strip()!r} not found")
            rows.append((image, row[1].strip()))
    if not rows:
        raise ValueError(f"{path}: no 'path,label' rows")
    return rows


def scan_folders(root: str) -> list[tuple[str, str]]:
    """[(image path, class folder name)] of ``root/<class>/<image>``."""
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
    if not classes:
        raise FileNotFoundError(
            f"{root}: no class folders and no labels.csv (expected root/<class>/<image> or a "
            "CSV of path,label)"
        )
    rows = []
    for name in classes:
        folder = os.path.join(root, name)
        files = sorted(f for f in os.listdir(folder) if f.lower().endswith(EXTENSIONS))
        if not files:
            raise FileNotFoundError(f"{folder}: class folder without images ({EXTENSIONS})")
        rows += [(os.path.join(folder, f), name) for f in files]
    return rows


@functools.cache
def scan(root: str) -> tuple[tuple[tuple[str, int], ...], tuple[str, ...]]:
    """((image path, class index), ...) and the class names of ``root`` (a folder, or a CSV)."""
    if not os.path.exists(root):
        raise FileNotFoundError(f"image folder {root!r} does not exist")
    csv_path = root if root.endswith(".csv") else os.path.join(root, "labels.csv")
    rows = read_csv(csv_path) if os.path.isfile(csv_path) else scan_folders(root)
    classes = tuple(sorted({label for _, label in rows}))
    index = {c: i for i, c in enumerate(classes)}
    return tuple((path, index[label]) for path, label in rows), classes


def split_indices(labels: np.ndarray, ratios, seed: int = 0) -> dict[str, np.ndarray]:
    """Stratified split of ``labels [N]`` by ``ratios`` (train, validation, test), seeded."""
    ratios = np.asarray(ratios, np.float64)
    if ratios.shape != (3,) or np.any(ratios < 0) or not np.isclose(ratios.sum(), 1.0):
        raise ValueError(
            f"split ratios must be three non-negative fractions summing to 1: {ratios}"
        )
    rng = np.random.default_rng(seed)
    out = {name: [] for name in SPLIT_NAMES}
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        cuts = np.round(np.cumsum(ratios)[:2] * len(members)).astype(int)
        for name, part in zip(SPLIT_NAMES, np.split(members, cuts), strict=True):
            out[name] += part.tolist()
    return {name: np.sort(np.asarray(v, np.int64)) for name, v in out.items()}


def load_image(path: str, size: int) -> np.ndarray:
    """An RGB image, shorter side resized to ``size`` (bicubic), centre crop: [size, size, 3]."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            scale = size / min(im.size)
            w, h = max(size, round(im.width * scale)), max(size, round(im.height * scale))
            im = im.resize((w, h), Image.BICUBIC)
            left, top = (w - size) // 2, (h - size) // 2
            return np.asarray(im.crop((left, top, left + size, top + size)), np.uint8)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read the image ({err})") from err


class ImageFolderSource:
    """Random-access source of one split (``len``, ``[i]`` -> dict; see the module doc)."""

    def __init__(self, root: str, split: str, *, image_size: int, ratios, seed: int = 0):
        if split not in SPLIT_NAMES:
            raise ValueError(
                f"image_folder: unknown split {split!r}; expected one of {SPLIT_NAMES}"
            )
        rows, self.classes = scan(os.fspath(root))
        labels = np.array([label for _, label in rows])
        self.rows = [rows[i] for i in split_indices(labels, ratios, seed)[split]]
        self.image_size = int(image_size)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        path, label = self.rows[int(index)]
        return {
            "image": load_image(path, self.image_size),
            "label": np.int32(label),
            "box": np.zeros(4, np.float32),
        }


def load_source(split: str, root: str, *, image_size: int, splits="emotion6", seed: int = 0):
    """The source of ``split``; ``splits``: a protocol name of :data:`SPLITS` or 3 fractions."""
    if isinstance(splits, str):
        if splits not in SPLITS:
            raise ValueError(f"splits={splits!r}: a name of {sorted(SPLITS)} or three fractions")
        splits = SPLITS[splits]
    if not root:
        raise ValueError("config.data.root is empty: the image folder (or CSV) of the dataset")
    return ImageFolderSource(root, split, image_size=image_size, ratios=splits, seed=seed)
