"""Media files on the data volume: originals, normalised frames and thumbnails, content addressed.

Paths stored in the catalog are relative to the data dir, so the volume can be mounted anywhere.
Nothing here trusts a name that came from a client: names are only ever recorded, never used to
build a path.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from shared.durable import fsync_dir, make_dirs
from shared.safe_open import OpenedFile

MAX_NAME_BYTES = 1024
MAX_NAME_PART_BYTES = 255


class UnsafeNameError(ValueError):
    """A client-supplied file name that cannot be recorded as a relative path."""


class MediaStore:
    def __init__(self, data_dir: Path):
        self.root = Path(data_dir).resolve()

    def resolve(self, relative: str) -> Path:
        """The absolute path of a stored file; refuses anything that would leave the data dir."""
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root):
            raise UnsafeNameError(f"{relative!r} is outside the data directory")
        return path

    def original_path(self, sha256: str, extension: str) -> str:
        return f"media/originals/{sha256[:2]}/{sha256}{extension}"

    def frame_path(self, sha256: str, index: int) -> str:
        return f"media/frames/{sha256[:2]}/{sha256}-{index:05d}.jpg"

    def thumb_path(self, sha256: str, index: int) -> str:
        return f"media/thumbs/{sha256[:2]}/{sha256}-{index:05d}.jpg"

    def write_atomic(self, relative: str, data: bytes) -> Path:
        path = self.resolve(relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(_temporary_name(path.name))
        with _removed_on_failure(tmp):
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return path

    def adopt(self, source: OpenedFile, relative: str, link: bool) -> Path:
        """Put the open file ``source`` at ``relative``: linked (an upload we own; its name in the uploads
        folder is removed later) or copied (a file of the user's). Contents and name are fsynced before it
        returns, so a catalog that says "indexed" afterwards never outlives the file in a power cut. A file
        already there has the same content (names are content addressed) and is kept."""
        target = self.resolve(relative)
        make_dirs(target.parent)
        if not target.exists():
            tmp = target.with_name(_temporary_name(target.name))
            with _removed_on_failure(tmp):
                if link:
                    os.fsync(source.fd)
                    _link(source, tmp)
                else:
                    with open(tmp, "wb") as copy:
                        for chunk in source.chunks():
                            copy.write(chunk)
                        copy.flush()
                        os.fsync(copy.fileno())
                os.replace(tmp, target)
        fsync_dir(target.parent)
        return target

    def remove(self, relatives: list[str]) -> None:
        for relative in relatives:
            try:
                self.resolve(relative).unlink(missing_ok=True)
            except UnsafeNameError:
                continue


@contextmanager
def _removed_on_failure(tmp: Path) -> Iterator[None]:
    """A half-written temporary file (a full disk, an unreadable source) is not left behind."""
    try:
        yield
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _link(source: OpenedFile, name: Path) -> None:
    """Another name for the open file itself, not for whatever its first name leads to now: linkat(2) with
    AT_SYMLINK_FOLLOW on its descriptor path (os.link takes that route only given a folder descriptor)."""
    folder = os.open(name.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.link(source.path, name.name, dst_dir_fd=folder, follow_symlinks=True)
    finally:
        os.close(folder)


def _temporary_name(name: str) -> str:
    """A hidden name beside the target that no other writer uses, not even a thread of this process
    writing the same content (the same file uploaded twice in one folder)."""
    return f".{name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"


def clean_relative_name(name: str) -> str:
    """A client's relative path made safe to record: forward slashes, no '..', no absolute part.

    Raises UnsafeNameError for names that cannot be made sense of (NUL bytes, empty, too long).
    """
    if "\0" in name:
        raise UnsafeNameError("file name contains a NUL byte")
    parts = [part for part in PurePosixPath(name.replace("\\", "/")).parts if part not in ("", ".", "/")]
    if any(part == ".." for part in parts):
        raise UnsafeNameError(f"file name {name[:200]!r} climbs out of its folder with '..'")
    if not parts:
        raise UnsafeNameError("empty file name")
    cleaned = "/".join(parts)
    if len(cleaned.encode()) > MAX_NAME_BYTES or any(len(p.encode()) > MAX_NAME_PART_BYTES for p in parts):
        raise UnsafeNameError("file name is too long")
    return cleaned
