"""Media files on the data volume: originals, normalised frames and thumbnails, content addressed.

Paths stored in the catalog are relative to the data dir, so the volume can be mounted anywhere.
Nothing here trusts a name that came from a client: names are only ever recorded, never used to
build a path.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

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

    def adopt(self, source: Path, relative: str, move: bool) -> Path:
        """Put a file at ``relative``: moved (an upload we own) or copied (a file of the user's)."""
        target = self.resolve(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            if move:
                source.unlink(missing_ok=True)
            return target
        tmp = target.with_name(_temporary_name(target.name))
        if move:
            os.replace(source, target)
        else:
            with _removed_on_failure(tmp):
                with open(source, "rb") as src, open(tmp, "wb") as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
                os.replace(tmp, target)
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


def _temporary_name(name: str) -> str:
    """A hidden name beside the target that no other writer uses, not even a thread of this process
    writing the same content (the same file uploaded twice in one folder)."""
    return f".{name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


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
