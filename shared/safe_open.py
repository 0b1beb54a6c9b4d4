"""Opening a file beneath a root once, so that the file that was checked is the file that is read.

The kernel resolves the path once (symlinks followed: a library may use them), the file it leads to is
checked through its descriptor (its real path lies beneath one of the roots, it is a regular file), and
from then on only that descriptor is used: hashing, decoding (a decoder that wants a path gets
``/proc/self/fd/N``, which names the open file, not whatever the path names later) and copying. A symlink
swapped in after the check leads nowhere; one that stays inside the roots keeps working. openat2's
RESOLVE_BENEATH would refuse absolute symlinks that stay inside, and Python has no binding for it.

The path is first opened with O_PATH, which reads nothing and cannot block: a FIFO or a device swapped in
is refused by its type before anything opens it for reading. Linux only (/proc/self/fd).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

CHUNK_BYTES = 1 << 20
_DESCRIPTOR_PATH = re.compile(r"/proc/self/fd/(\d+)")


class RefusedFile(Exception):
    """A path that cannot be read as a regular file beneath its roots; ``str()`` is the reason for people."""


class OutsideRoots(RefusedFile):
    """The path leads (through symlinks or '..') to a file outside every root."""


def descriptor_path(fd: int) -> str:
    """A path naming the open file ``fd`` itself, for code that only takes paths."""
    return f"/proc/self/fd/{fd}"


def passed_fds(path: str | Path) -> tuple[int, ...]:
    """The descriptor a subprocess must inherit for ``path`` to name the same file in it (a descriptor
    path names the process's own descriptors); none for an ordinary path."""
    found = _DESCRIPTOR_PATH.fullmatch(str(path))
    return (int(found.group(1)),) if found else ()


class OpenedFile:
    """A regular file opened for reading; every read is positioned (pread), so copies of the descriptor
    (a decoding child's) never move each other's offset."""

    def __init__(self, fd: int, real_path: str, size: int):
        self.fd = fd
        self.real_path = real_path  # where it was when it was opened
        self.size = size

    @property
    def path(self) -> str:
        return descriptor_path(self.fd)

    def read_at(self, offset: int, size: int) -> bytes:
        return os.pread(self.fd, size, offset)

    def chunks(self) -> Iterator[bytes]:
        offset = 0
        while chunk := os.pread(self.fd, CHUNK_BYTES, offset):
            yield chunk
            offset += len(chunk)

    def sha256(self) -> str:
        digest = hashlib.sha256()
        for chunk in self.chunks():
            digest.update(chunk)
        return digest.hexdigest()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> OpenedFile:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def open_beneath(path: str | Path, roots: Iterable[str | Path]) -> OpenedFile:
    """Open ``path`` for reading if it is a regular file whose real path lies beneath one of ``roots``.

    Raises OutsideRoots, or RefusedFile with the reason (missing, a dangling symlink, a folder, not a
    regular file, unreadable)."""
    try:
        handle = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        if os.path.islink(path):
            raise RefusedFile("unreadable: a symbolic link whose target does not exist") from None
        raise RefusedFile("file not found (it was removed before it could be ingested)") from None
    except OSError as exc:
        raise RefusedFile(f"unreadable: {exc.strerror or exc}") from None
    try:
        real = os.readlink(descriptor_path(handle))
        if not any(_beneath(real, root) for root in roots):
            raise OutsideRoots(f"{path} leads outside its roots")
        info = os.fstat(handle)
        if stat.S_ISDIR(info.st_mode):
            raise RefusedFile("unreadable: a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise RefusedFile("unreadable: not a regular file (a device, pipe or socket)")
        try:  # the very file checked above: opening its descriptor path resolves nothing again
            fd = os.open(descriptor_path(handle), os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise RefusedFile(f"unreadable: {exc.strerror or exc}") from None
    finally:
        os.close(handle)
    return OpenedFile(fd, real, os.fstat(fd).st_size)


def _beneath(real: str, root: str | Path) -> bool:
    return Path(real).is_relative_to(os.path.realpath(root))
