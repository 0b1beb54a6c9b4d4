"""The shared vectors store: a float32 matrix on disk that one writer appends to and many read.

Files (in ``Settings.vectors_dir``):

``vectors.f32``
    A 4096-byte header, then ``capacity`` rows of ``dim`` float32. Header layout (little endian):
    magic ``b"MSVECTR1"`` · u32 format version · u32 dim · u64 committed rows · u64 capacity ·
    u16 model-id length · model id (UTF-8, at most 1024 bytes).
``vectors.ids``
    ``capacity`` int64 owner ids, one per row: a frame id (>= 0) or, for a whole-video vector, the
    negated media id minus one (``-(media_id + 1)``), so a row can be traced to the catalog even if
    the catalog write that should follow was lost in a crash.

Commit protocol: the writer fills rows past ``committed`` in both files, flushes and fsyncs them, and
only then rewrites the committed count in the header (and fsyncs again). Readers look at the header
count first and never read past it, so a reader never sees a half-written row, and rows past the count
after a crash are simply overwritten by the next append. Row numbers are contiguous from 0 and are the
node ids of the index.
"""

from __future__ import annotations

import fcntl
import os
import struct
import threading
from enum import Enum
from pathlib import Path

import numpy as np

from shared.durable import fsync_dir

MAGIC = b"MSVECTR1"
FORMAT_VERSION = 1
HEADER_BYTES = 4096
_HEADER = struct.Struct("<8sIIQQH")
_MODEL_ID_MAX = 1024
_INITIAL_CAPACITY = 4096


class VectorStoreError(RuntimeError):
    """The vectors files cannot be used as they are (wrong format, or another model's vectors)."""


def encode_video_owner(media_id: int) -> int:
    return -(media_id + 1)


def video_of_owner(owner):
    """The media id of a whole-video owner id (``encode_video_owner`` undone); works on arrays too."""
    return -owner - 1


def decode_owner(owner: int) -> tuple[str, int]:
    """``("frame", frame_id)`` or ``("video", media_id)`` for a row's owner id."""
    return ("frame", owner) if owner >= 0 else ("video", video_of_owner(owner))


class ZeroVector(ValueError):
    """A vector with no direction (all zeros, or not finite) was given where a direction is needed."""


class OnZero(Enum):
    """What ``unit`` does with a vector that has no direction; each caller picks one on purpose."""

    RAISE = "raise"  # a query: there is nothing to compare with (the caller answers 4xx)
    KEEP = "keep"  # stored data: a zero row stays zero and simply matches nothing


def unit(vector, on_zero: OnZero) -> np.ndarray:
    """``vector`` scaled to length 1, as float32; a matrix ``(n, dim)`` row by row."""
    vector = np.asarray(vector, dtype=np.float32)
    norms = np.linalg.norm(vector, axis=-1, keepdims=True)
    no_direction = (norms == 0) | ~np.isfinite(norms)
    if not no_direction.any():
        return (vector / norms).astype(np.float32)
    if on_zero is OnZero.RAISE:
        raise ZeroVector("the vector must be finite and non-zero: it has no direction to compare")
    return np.where(no_direction, vector, vector / np.where(no_direction, 1, norms)).astype(np.float32)


class LazyReader:
    """A read-only view of the vectors store, opened on first use (the files appear with the first
    embedding) and kept for the life of the process. ``get()`` raises FileNotFoundError until then."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self._store: VectorStore | None = None
        self._lock = threading.Lock()

    def get(self) -> VectorStore:
        with self._lock:
            if self._store is None:
                self._store = VectorStore(self.directory)
            return self._store

    def get_or_none(self) -> VectorStore | None:
        """The store, or None while nothing has been embedded."""
        try:
            return self.get()
        except FileNotFoundError:
            return None

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


def _read_header(path: Path) -> tuple[int, int, int, str]:
    with open(path, "rb") as handle:
        raw = handle.read(HEADER_BYTES)
    if len(raw) < _HEADER.size:
        raise VectorStoreError(f"{path}: file is truncated (no complete header)")
    magic, version, dim, committed, capacity, id_len = _HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise VectorStoreError(f"{path}: not a vectors file (bad magic {magic!r})")
    if version != FORMAT_VERSION:
        raise VectorStoreError(f"{path}: format version {version}, this build reads {FORMAT_VERSION}")
    model_id = raw[_HEADER.size : _HEADER.size + id_len].decode("utf-8")
    return dim, committed, capacity, model_id


class VectorStore:
    """Reader and (with ``writable=True``) the single writer of the vectors files."""

    def __init__(self, directory: Path, dim: int | None = None, model_id: str | None = None,
                 writable: bool = False):
        self.directory = Path(directory)
        self.vectors_path = self.directory / "vectors.f32"
        self.ids_path = self.directory / "vectors.ids"
        self.writable = writable
        self._lock = threading.Lock()
        self._lock_file = None
        self._vectors: np.memmap | None = None
        self._ids: np.memmap | None = None
        self._mapped_capacity = 0
        if writable:
            if dim is None or model_id is None:
                raise ValueError("the writer must state dim and model_id")
            self._open_writer(dim, model_id)
        else:
            if not self.vectors_path.exists():
                raise FileNotFoundError(f"{self.vectors_path} does not exist yet (nothing embedded)")
            self.dim, _, _, self.model_id = _read_header(self.vectors_path)

    # -- writer ----------------------------------------------------------------------------------
    def _open_writer(self, dim: int, model_id: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.directory / "writer.lock", "w")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise VectorStoreError(f"{self.directory}: another process is already writing vectors") from exc
        if self.vectors_path.exists():
            found_dim, committed, capacity, found_model = _read_header(self.vectors_path)
            if (found_dim, found_model) != (dim, model_id):
                raise VectorStoreError(
                    f"{self.vectors_path} holds {found_dim}-d vectors of model {found_model!r}, but this "
                    f"embedder makes {dim}-d vectors of model {model_id!r}: mixing them would make search "
                    "meaningless. Use another MEDIASEARCH_DATA_DIR or re-ingest into an empty one."
                )
        else:
            committed, capacity = 0, _INITIAL_CAPACITY
            self._write_files(dim, model_id, capacity)
        self.dim, self.model_id = dim, model_id
        self._committed = committed
        self._capacity = capacity

    def _write_files(self, dim: int, model_id: str, capacity: int) -> None:
        encoded = model_id.encode("utf-8")
        if len(encoded) > _MODEL_ID_MAX:
            raise ValueError("model id is too long")
        header = _HEADER.pack(MAGIC, FORMAT_VERSION, dim, 0, capacity, len(encoded)) + encoded
        tmp = self.vectors_path.with_suffix(".tmp")
        with open(tmp, "wb") as handle:
            handle.write(header.ljust(HEADER_BYTES, b"\0"))
            handle.truncate(HEADER_BYTES + capacity * dim * 4)
            handle.flush()
            os.fsync(handle.fileno())
        with open(self.ids_path, "wb") as handle:
            handle.truncate(capacity * 8)
            os.fsync(handle.fileno())
        os.replace(tmp, self.vectors_path)
        fsync_dir(self.directory)

    def _write_header_counts(self, committed: int, capacity: int) -> None:
        with open(self.vectors_path, "r+b") as handle:
            handle.seek(16)
            handle.write(struct.pack("<QQ", committed, capacity))
            handle.flush()
            os.fsync(handle.fileno())

    def _grow(self, needed: int) -> None:
        capacity = self._capacity
        while capacity < needed:
            capacity *= 2
        # The ids file grows first: readers size their mappings from the vectors file.
        with open(self.ids_path, "r+b") as handle:
            handle.truncate(capacity * 8)
            os.fsync(handle.fileno())
        with open(self.vectors_path, "r+b") as handle:
            handle.truncate(HEADER_BYTES + capacity * self.dim * 4)
            os.fsync(handle.fileno())
        self._write_header_counts(self._committed, capacity)
        self._capacity = capacity
        self._unmap()

    def append(self, vectors: np.ndarray, owners: np.ndarray | list[int]) -> range:
        """Write rows and commit them; returns the row numbers they got."""
        if not self.writable:
            raise VectorStoreError("this VectorStore was opened read-only")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        owners = np.asarray(owners, dtype=np.int64)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim or len(owners) != len(vectors):
            raise ValueError(f"expected ({len(owners)}, {self.dim}) vectors, got {vectors.shape}")
        with self._lock:
            start = self._committed
            end = start + len(vectors)
            if end > self._capacity:
                self._grow(end)
            self._map(self._capacity)
            self._vectors[start:end] = vectors
            self._ids[start:end] = owners
            self._vectors.flush()
            self._ids.flush()
            self._write_header_counts(end, self._capacity)
            self._committed = end
            return range(start, end)

    # -- reader ----------------------------------------------------------------------------------
    def committed(self) -> int:
        if self.writable:
            return self._committed
        return _read_header(self.vectors_path)[1]

    def _map(self, capacity: int) -> None:
        if self._vectors is not None and self._mapped_capacity >= capacity:
            return
        mode = "r+" if self.writable else "r"
        size_rows = (os.path.getsize(self.vectors_path) - HEADER_BYTES) // (self.dim * 4)
        self._vectors = np.memmap(self.vectors_path, dtype=np.float32, mode=mode, offset=HEADER_BYTES,
                                  shape=(size_rows, self.dim))
        self._ids = np.memmap(self.ids_path, dtype=np.int64, mode=mode, shape=(size_rows,))
        self._mapped_capacity = size_rows

    def _unmap(self) -> None:
        self._vectors = self._ids = None
        self._mapped_capacity = 0

    def view(self) -> tuple[np.ndarray, np.ndarray]:
        """The committed rows and their owner ids, as read-only arrays (no copy)."""
        with self._lock:
            committed = self.committed()
            self._map(committed)
            return self._vectors[:committed], self._ids[:committed]

    def close(self) -> None:
        self._unmap()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
