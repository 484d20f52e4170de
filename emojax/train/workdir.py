"""Workdirs are URLs: a local folder, ``gs://bucket/run`` or any fsspec filesystem (etils.epath).

Every trainer use of a workdir goes through :func:`as_path`. Local paths are made absolute (so a
later ``chdir`` changes nothing); URLs are kept as they are: ``absolute()``/``resolve()`` of a
URL would turn ``gs://bucket/run`` into a local folder ``$PWD/gs:/bucket/run``.

What object stores lack, and what the trainer does instead (see docs/scaling.md):

- no directories: ``mkdir`` is a no-op and a "folder" exists once an object is under it;
- no atomic rename: Orbax commits a step with ``commit_success.txt`` instead of renaming a
  temporary folder, and :func:`move_tree` copies then deletes;
- no append: :class:`emojax.train.observe.MetricsWriter` rewrites the whole ``metrics.jsonl``;
- no recursive ``glob("**")``: folders are walked with ``iterdir`` (:func:`copy_tree`), and
  TensorBoard events are written to a local folder and uploaded (:func:`upload_files`).
"""

from __future__ import annotations

import os
import pathlib
import shutil

from etils import epath


def is_url(workdir: str | os.PathLike) -> bool:
    """True for ``scheme://...`` (``gs://``, ``s3://``, ...), False for a local path."""
    return "://" in os.fspath(workdir)


def as_path(workdir: str | os.PathLike) -> epath.Path:
    """``workdir`` as an ``epath.Path``: a local path made absolute, a URL kept as given."""
    if isinstance(workdir, epath.Path) and is_url(workdir):
        return workdir
    text = os.fspath(workdir)
    if is_url(text):
        return epath.Path(text)
    return epath.Path(pathlib.Path(text).expanduser().absolute())


def is_local(path: str | os.PathLike) -> bool:
    """True when ``path`` (after :func:`as_path`) is on the local filesystem."""
    return not is_url(path)


def move_tree(src: epath.Path, dst: epath.Path) -> None:
    """Move the folder ``src`` to ``dst`` (``dst``'s parent is created): a rename locally, a
    copy of every object then a delete on object stores (which have no rename)."""
    if is_local(src) and is_local(dst):
        pathlib.Path(dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(os.fspath(src), os.fspath(dst))
        return
    dst.parent.mkdir(parents=True, exist_ok=True)  # a no-op on object stores
    copy_tree(src, dst)
    src.rmtree()


def copy_tree(src: epath.Path, dst: epath.Path) -> None:
    """Copy every file under ``src`` to the same relative place under ``dst`` (by walking
    ``iterdir``: object stores refuse ``glob("**")``)."""
    for child in src.iterdir():
        target = dst / child.name
        if child.is_dir():
            copy_tree(child, target)
        elif is_local(child) == is_local(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            child.copy(target, overwrite=True)  # on one object store: a server-side copy
        else:
            target.write_bytes(child.read_bytes())


def upload_files(local_dir: str | os.PathLike, dst: epath.Path, only_changed: dict | None = None):
    """Copy the files of the local folder ``local_dir`` (recursively) under ``dst``.

    ``only_changed``: a dict kept by the caller between calls (relative name -> (size, mtime));
    files unchanged since the last call are skipped."""
    root = pathlib.Path(local_dir)
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        name = file.relative_to(root).as_posix()
        stamp = (file.stat().st_size, file.stat().st_mtime_ns)
        if only_changed is not None and only_changed.get(name) == stamp:
            continue
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        (dst / name).write_bytes(file.read_bytes())
        if only_changed is not None:
            only_changed[name] = stamp
