"""Shared helpers for builders of real datasets read from files the user already has.

Nothing is ever downloaded: each builder reads ``manual_dir`` (default
``<data_dir>/downloads/manual``), checks that the documented files exist, and fails with a
message that names the missing file, where it looked, and the page that lists the layout.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import tensorflow_datasets as tfds

DOCS = "docs/data.md"


def manual_dir_of(dl_manager, dataset: str) -> str:
    """The manual directory TFDS was given, as a plain path (error if it does not exist)."""
    path = os.fspath(dl_manager._manual_dir)  # noqa: SLF001 (the public property asserts)
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"{dataset}: manual_dir {path!r} does not exist. Put the dataset files there (layout "
            f"in {DOCS}, section '{dataset}') or pass manual_dir= to load_source()."
        )
    return path


def require_files(root: str, relative_paths: Sequence[str], dataset: str) -> list[str]:
    """Absolute paths of ``relative_paths`` under ``root``; FileNotFoundError naming any missing."""
    paths = [os.path.join(root, p) for p in relative_paths]
    missing = [p for p, full in zip(relative_paths, paths, strict=True) if not os.path.exists(full)]
    if missing:
        raise FileNotFoundError(
            f"{dataset}: missing {', '.join(repr(m) for m in missing)} in manual_dir {root!r}. "
            f"Expected layout: {DOCS}, section '{dataset}'."
        )
    return paths


def check_image(data: bytes, path: str, dataset: str) -> None:
    """Raises ValueError naming ``path`` unless ``data`` is an image PIL can read (header check)."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"{dataset}: {path} is not a readable image ({error})") from error


def prepare_builder(builder_cls, *, data_dir=None, manual_dir=None, config=None):
    """Builds (once) and returns a manual-data builder in array_record format."""
    builder = builder_cls(config=config, data_dir=data_dir, file_format="array_record")
    if not builder.is_prepared():
        download_config = tfds.download.DownloadConfig(
            manual_dir=os.fspath(manual_dir) if manual_dir is not None else None
        )
        builder.download_and_prepare(download_config=download_config)
    return builder
