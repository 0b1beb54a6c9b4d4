"""The walk of a library's folder: every file it holds with its size and mtime, streamed.

One folder is read at a time (os.scandir) from an explicit stack of folders still to read, so memory
holds one folder's entries and the pending folder names, never the tree. A file costs one stat (scandir
knows the entry types). Symbolic links to files are followed when they stay inside the library's folder;
one that leads out, one that leads nowhere and anything that is not a regular file are reported as a
problem with the reason. Symbolic links to folders are not followed (they would loop, or count a file
twice). A folder that cannot be read is reported as ``blind``: the scan keeps what it knew beneath it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from shared.catalog.libraries import Walked
from shared.libraries.exclusions import Exclusions

LEADS_OUT = "refused: a symbolic link leading outside the library's folder"
DANGLING = "unreadable: a symbolic link whose target does not exist"
NOT_A_FILE = "unreadable: not a regular file (a fifo, socket or device)"


@dataclass
class WalkCounts:
    folders: int = 0
    files: int = 0
    blind: list[str] = field(default_factory=list)  # folders that could not be read, relative


def walk(root: Path, exclusions: Exclusions, counts: WalkCounts | None = None) -> Iterator[Walked]:
    """Every file under ``root`` (a real, absolute folder), in folder order: a folder's own files together,
    sorted by name. ``counts`` (optional) is filled in as the walk goes. Raises OSError if ``root`` itself
    cannot be read."""
    counts = counts if counts is not None else WalkCounts()
    real_root = os.path.realpath(root)
    pending = [""]  # folders still to read, relative to root ("" is root)
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(os.path.join(root, folder)) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError:
            if not folder:
                raise
            counts.blind.append(folder)
            continue
        counts.folders += 1
        subfolders = []
        for entry in entries:
            relative = f"{folder}/{entry.name}" if folder else entry.name
            if exclusions.skips(entry.name, relative):
                continue
            found = _file(entry, relative, real_root)
            if found is None:
                if entry.is_dir(follow_symlinks=False):
                    subfolders.append(relative)
                continue
            counts.files += 1
            yield found
        pending.extend(reversed(subfolders))  # popped in name order


def _file(entry: os.DirEntry, relative: str, real_root: str) -> Walked | None:
    """The file ``entry`` as the scan records it; None for a folder or a symbolic link to one."""
    try:
        if entry.is_dir(follow_symlinks=False):
            return None
        if entry.is_symlink():
            target = os.path.realpath(entry.path)
            if os.path.isdir(target):
                return None
            if not (target == real_root or target.startswith(real_root.rstrip("/") + "/")):
                return _problem(entry, relative, LEADS_OUT)
        info = entry.stat()
    except FileNotFoundError:
        return _problem(entry, relative, DANGLING) if entry.is_symlink() else None  # gone since it was listed
    except OSError as exc:
        return _problem(entry, relative, f"unreadable: {exc.strerror or exc}")
    if not stat.S_ISREG(info.st_mode):
        return _problem(entry, relative, NOT_A_FILE)
    return Walked(relative, info.st_size, info.st_mtime_ns)


def _problem(entry: os.DirEntry, relative: str, reason: str) -> Walked:
    """A file that cannot be ingested, recorded with the link's (or entry's) own size and mtime, so that the
    scan notices when it is fixed."""
    try:
        info = entry.stat(follow_symlinks=False)
        return Walked(relative, info.st_size, info.st_mtime_ns, reason)
    except OSError:
        return Walked(relative, 0, 0, reason)
