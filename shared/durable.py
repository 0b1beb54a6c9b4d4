"""Small durability helpers shared by every on-disk format of the product, and what a full disk means."""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import sqlite3
from pathlib import Path
from typing import NamedTuple

from shared.errors import InsufficientStorage

_libc = ctypes.CDLL(None, use_errno=True)  # for syncfs(2), which os does not offer


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` survive a power cut."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(directory: Path) -> None:
    """Create ``directory`` and its missing parents, each new one recorded durably in its parent."""
    missing = []
    while not directory.is_dir():
        missing.append(directory)
        directory = directory.parent
    for new in reversed(missing):
        try:
            new.mkdir()
        except FileExistsError:  # another writer made it first: it fsyncs its parent too
            continue
        fsync_dir(new.parent)


def sync_filesystem(path: Path) -> None:
    """Everything written to the file system holding ``path`` survives a power cut: one syncfs(2), for
    many small files at once (a video's frames) instead of an fsync each."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.syncfs(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), str(path))
    finally:
        os.close(fd)


# -- a full disk: a reason, not a crash ---------------------------------------------------------------
DISK_FULL = "disk full"  # the reason a client or a job item is given
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class DiskUsage(NamedTuple):
    total: int
    free: int


def is_disk_full(exc: BaseException) -> bool:
    """A write that failed for want of room: ENOSPC or EDQUOT, or SQLite's "database or disk is full"."""
    if isinstance(exc, OSError):
        return exc.errno in DISK_FULL_ERRNOS
    code = getattr(exc, "sqlite_errorcode", None) if isinstance(exc, sqlite3.Error) else None
    return code is not None and code & 0xFF == sqlite3.SQLITE_FULL  # the primary code of an extended one


def disk_usage(path: Path) -> DiskUsage:
    """Total and free bytes of the file system holding ``path`` (its nearest existing folder)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    usage = shutil.disk_usage(path)
    return DiskUsage(total=usage.total, free=usage.free)


def ensure_room(path: Path, incoming: int, reserve: int, what: str = "this") -> None:
    """InsufficientStorage unless ``incoming`` more bytes under ``path`` leave at least ``reserve`` free."""
    free = disk_usage(path).free
    if free - incoming < reserve:
        needs = f"{what} ({incoming} bytes)" if incoming else what
        raise InsufficientStorage(
            f"{DISK_FULL}: no room for {needs} on the data volume: {free} bytes are free and "
            f"{reserve} are kept in reserve (MEDIASEARCH_DISK_RESERVE_BYTES); free some space and try again")
