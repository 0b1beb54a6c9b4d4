"""Small durability helpers shared by every on-disk format of the product, and what a full disk means."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from pathlib import Path
from typing import NamedTuple

from shared.errors import InsufficientStorage


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` survive a power cut."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
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
