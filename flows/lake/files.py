"""Durable file writes: what the lake promises once a command returns (docs/lake.md, "Durability").

A new file is written under a temporary name, flushed to the disk (``fsync``), renamed into place, and then its
folder is flushed, so that the rename itself survives a power cut. The order matters: a manifest must never reach
the disk before the segments it lists, and a rename must never reach it before the data it names. Every new
segment, every manifest and views.sql go through :func:`durable_replace`; nothing else here knows about the lake.
A cache that names what it was computed from needs no flush, only atomicity: :func:`replace_bytes`.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a file's data and metadata to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a folder's entries (names created, renamed or removed in it) to the disk."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def durable_replace(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Move a fully written ``tmp`` to ``path`` durably: fsync the file, rename it, fsync the folder. A reader (or
    a machine restarting) sees the old file or the whole new one."""
    fsync_file(tmp)
    os.replace(tmp, path)
    fsync_dir(Path(path).parent)


def durable_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and :func:`durable_replace`."""
    _write_through_temporary(path, data, durable_replace)


def replace_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, without flushing either to the disk: a
    reader sees the old file or the whole new one, and after a power cut either may be there. For caches whose
    contents name what they were computed from, so that a stale one is recognised and ignored: an ``fsync`` there
    would only make the caller wait for every write before it (10-16 ms after the 20 MB correlations cache)."""
    _write_through_temporary(path, data, os.replace)


def _write_through_temporary(path: str | os.PathLike, data: bytes, replace) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
        replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def durable_mkdir(path: str | os.PathLike) -> None:
    """Create a folder (and its missing parents), each new one flushed into its parent."""
    path = Path(path)
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    for created in reversed(missing):
        fsync_dir(created.parent)
