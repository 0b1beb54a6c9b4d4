"""On-disk formats of the HNSW index: a checksummed snapshot and an append-only log. Never pickle.

All integers are little endian. CRCs are zlib's crc32.

Snapshot (``path``), written atomically (temp file in the same folder, fsync, rename, fsync folder)::

    header  "<8s I I  I I I I Q I Q Q  Q q q Q Q Q I  I"
            magic b"HNSWSNAP", format version, header size,
            dim, m, ef_construction, ef_search, seed, flags (bit 0: own vectors follow),
            id stride, id offset,
            slots, entry point, max level, upper rows, last log sequence number, payload size,
            payload crc32,
            header crc32 (of every header byte before it)
    payload levels int8[slots] · deleted uint8[slots] · upper_start int32[slots] ·
            links0 int32[slots, 2m + 1] · upper int32[upper rows, m + 1] ·
            (flag bit 0 only) vectors float32[slots, dim]

A snapshot of an index over external vectors holds the graph only, never those vectors.

Log (``path + ".log"``): a header, then records appended by every ``add``/``delete``::

    header  "<8s I I I I I Q I Q Q  I"   magic b"HNSWLOG\\0", format version, dim, m,
                                         ef_construction, ef_search, seed, flags, id stride,
                                         id offset, header crc32
    record  "<I I I" body size, body crc32, crc32 of those 8 bytes, then the body:
            "<B Q I" kind (1 add, 2 delete), sequence number, count · int64 ids[count] ·
            (add records of an index with own vectors) float32 vectors[count, dim]

Sequence numbers grow by one per record across log resets; a snapshot stores the last one it
contains, so replay skips records that are already in it (a crash between writing the snapshot and
resetting the log loses and duplicates nothing). A record is written by one ``write`` call (very
large ones may need more) and fsynced before the ``add``/``delete`` that made it returns.

Reading stops quietly at a torn last record: an incomplete one, one whose body fails its checksum
at the very end of the file, or a damaged record header followed only by zero bytes. Any other
damage in the log (a bad record followed by more data, a bad header) and any flaw in a snapshot
raise ``IndexFileError``.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.durable import fsync_dir

_log = logging.getLogger("mediasearch.index")

SNAPSHOT_MAGIC = b"HNSWSNAP"
LOG_MAGIC = b"HNSWLOG\0"
FORMAT_VERSION = 1
FLAG_OWN_VECTORS = 1

_SNAPSHOT_HEADER = struct.Struct("<8sIIIIIIQIQQQqqQQQI")
_SNAPSHOT_HEADER_CRC = struct.Struct("<I")
SNAPSHOT_HEADER_SIZE = _SNAPSHOT_HEADER.size + _SNAPSHOT_HEADER_CRC.size
_LOG_HEADER = struct.Struct("<8sIIIIIQIQQ")
LOG_HEADER_SIZE = _LOG_HEADER.size + 4
_RECORD_PREFIX = struct.Struct("<III")
_RECORD_BODY_HEAD = struct.Struct("<BQI")

RECORD_ADD = 1
RECORD_DELETE = 2


class IndexFileError(Exception):
    """An index snapshot or log cannot be used: truncated, corrupted, or not ours."""


@dataclass(frozen=True)
class IndexParams:
    dim: int
    m: int
    ef_construction: int
    ef_search: int
    seed: int
    own_vectors: bool
    id_stride: int
    id_offset: int


@dataclass
class Snapshot:
    params: IndexParams
    entry: int
    max_level: int
    last_log_seq: int
    levels: np.ndarray
    deleted: np.ndarray
    upper_start: np.ndarray
    links0: np.ndarray
    upper: np.ndarray
    vectors: np.ndarray | None


@dataclass
class LogRecord:
    kind: int
    seq: int
    ids: np.ndarray
    vectors: np.ndarray | None


def _bytes_of(array: np.ndarray) -> memoryview:
    # flattened first: memoryview.cast refuses a shape with a zero in it (an empty upper-layer table)
    return memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8))


def write_snapshot(path: Path, params: IndexParams, snapshot: Snapshot) -> None:
    path = Path(path)
    sections = [snapshot.levels, snapshot.deleted, snapshot.upper_start, snapshot.links0, snapshot.upper]
    if params.own_vectors:
        sections.append(snapshot.vectors)
    payload_size = 0
    payload_crc = 0
    for section in sections:
        view = _bytes_of(section)
        payload_size += view.nbytes
        payload_crc = zlib.crc32(view, payload_crc)
    header = _SNAPSHOT_HEADER.pack(
        SNAPSHOT_MAGIC, FORMAT_VERSION, SNAPSHOT_HEADER_SIZE,
        params.dim, params.m, params.ef_construction, params.ef_search, params.seed,
        FLAG_OWN_VECTORS if params.own_vectors else 0, params.id_stride, params.id_offset,
        len(snapshot.levels), snapshot.entry, snapshot.max_level, len(snapshot.upper),
        snapshot.last_log_seq, payload_size, payload_crc)
    header += _SNAPSHOT_HEADER_CRC.pack(zlib.crc32(header))
    temp_path = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temp_path, "wb") as handle:
            handle.write(header)
            for section in sections:
                handle.write(_bytes_of(section))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_path, path)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _read_exact(handle, array: np.ndarray, crc: int, path: Path) -> int:
    view = _bytes_of(array)
    if handle.readinto(view) != view.nbytes:
        raise IndexFileError(f"{path}: snapshot is truncated")
    return zlib.crc32(view, crc)


def read_snapshot(path: Path) -> Snapshot:
    path = Path(path)
    file_size = path.stat().st_size
    with open(path, "rb") as handle:
        raw_header = handle.read(SNAPSHOT_HEADER_SIZE)
        if raw_header[:8] != SNAPSHOT_MAGIC:
            if SNAPSHOT_MAGIC.startswith(raw_header):
                raise IndexFileError(f"{path}: snapshot is truncated ({file_size} bytes)")
            raise IndexFileError(f"{path}: not an HNSW index snapshot (bad magic {raw_header[:8]!r})")
        if len(raw_header) < SNAPSHOT_HEADER_SIZE:
            raise IndexFileError(f"{path}: snapshot is truncated ({file_size} bytes, header incomplete)")
        fields = _SNAPSHOT_HEADER.unpack_from(raw_header)
        (_, version, header_size, dim, m, ef_construction, ef_search, seed, flags, id_stride, id_offset,
         slots, entry, max_level, upper_rows, last_log_seq, payload_size, payload_crc) = fields
        if version != FORMAT_VERSION:
            raise IndexFileError(f"{path}: snapshot format version {version}; this build reads "
                                 f"version {FORMAT_VERSION}")
        (header_crc,) = _SNAPSHOT_HEADER_CRC.unpack_from(raw_header, _SNAPSHOT_HEADER.size)
        if header_size != SNAPSHOT_HEADER_SIZE or zlib.crc32(raw_header[: _SNAPSHOT_HEADER.size]) != header_crc:
            raise IndexFileError(f"{path}: snapshot header is corrupted (checksum mismatch)")
        if file_size != header_size + payload_size:
            raise IndexFileError(f"{path}: snapshot is truncated or has trailing bytes: expected "
                                 f"{header_size + payload_size} bytes, found {file_size}")
        params = IndexParams(dim, m, ef_construction, ef_search, seed, bool(flags & FLAG_OWN_VECTORS),
                             id_stride, id_offset)
        levels = np.empty(slots, dtype=np.int8)
        deleted = np.empty(slots, dtype=np.uint8)
        upper_start = np.empty(slots, dtype=np.int32)
        links0 = np.empty((slots, 2 * m + 1), dtype=np.int32)
        upper = np.empty((upper_rows, m + 1), dtype=np.int32)
        vectors = np.empty((slots, dim), dtype=np.float32) if params.own_vectors else None
        expected = sum(a.nbytes for a in (levels, deleted, upper_start, links0, upper)) + (
            vectors.nbytes if vectors is not None else 0)
        if expected != payload_size:
            raise IndexFileError(f"{path}: snapshot header and payload size disagree")
        crc = 0
        for array in (levels, deleted, upper_start, links0, upper) + ((vectors,) if vectors is not None else ()):
            crc = _read_exact(handle, array, crc, path)
    if crc != payload_crc:
        raise IndexFileError(f"{path}: snapshot is corrupted (payload checksum mismatch)")
    snapshot = Snapshot(params, entry, max_level, last_log_seq, levels, deleted, upper_start, links0,
                        upper, vectors)
    _check_graph(snapshot, path)
    return snapshot


def _check_graph(snapshot: Snapshot, path: Path) -> None:
    """Refuse graphs whose links would index out of bounds in the compiled code."""
    slots = len(snapshot.levels)
    m = snapshot.params.m
    in_graph = snapshot.levels >= 0
    problems = []
    if slots and (snapshot.links0[:, 1:].min(initial=0) < 0 or snapshot.links0[:, 1:].max(initial=0) >= slots):
        problems.append("layer-0 link out of range")
    if slots and (snapshot.links0[:, 0].min() < 0 or snapshot.links0[:, 0].max() > 2 * m):
        problems.append("layer-0 link count out of range")
    if len(snapshot.upper) and (snapshot.upper[:, 1:].min() < 0 or snapshot.upper[:, 1:].max() >= slots
                                or snapshot.upper[:, 0].min() < 0 or snapshot.upper[:, 0].max() > m):
        problems.append("upper-layer link out of range")
    with_upper = snapshot.levels > 0
    if with_upper.any() and (snapshot.upper_start[with_upper].min() < 0 or (
            snapshot.upper_start[with_upper].astype(np.int64) + snapshot.levels[with_upper]).max()
            > len(snapshot.upper)):
        problems.append("upper-layer rows out of range")
    if snapshot.entry >= slots or (snapshot.entry >= 0 and (not in_graph[snapshot.entry]
                                                            or snapshot.levels[snapshot.entry] != snapshot.max_level)):
        problems.append("bad entry point")
    if snapshot.entry < 0 and in_graph.any():
        problems.append("nodes without an entry point")
    if problems:
        raise IndexFileError(f"{path}: snapshot graph is inconsistent ({', '.join(problems)})")


def _pack_log_header(params: IndexParams) -> bytes:
    header = _LOG_HEADER.pack(LOG_MAGIC, FORMAT_VERSION, params.dim, params.m, params.ef_construction,
                              params.ef_search, params.seed, FLAG_OWN_VECTORS if params.own_vectors else 0,
                              params.id_stride, params.id_offset)
    return header + struct.pack("<I", zlib.crc32(header))


def read_log(path: Path) -> tuple[IndexParams, list[LogRecord], int]:
    """The log's parameters, its intact records, and the byte length they end at."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) < LOG_HEADER_SIZE or data[:8] != LOG_MAGIC:
        raise IndexFileError(f"{path}: not an HNSW index log (bad or incomplete header)")
    fields = _LOG_HEADER.unpack_from(data)
    (_, version, dim, m, ef_construction, ef_search, seed, flags, id_stride, id_offset) = fields
    if version != FORMAT_VERSION:
        raise IndexFileError(f"{path}: log format version {version}; this build reads version {FORMAT_VERSION}")
    if zlib.crc32(data[: _LOG_HEADER.size]) != struct.unpack_from("<I", data, _LOG_HEADER.size)[0]:
        raise IndexFileError(f"{path}: log header is corrupted (checksum mismatch)")
    params = IndexParams(dim, m, ef_construction, ef_search, seed, bool(flags & FLAG_OWN_VECTORS),
                         id_stride, id_offset)
    records = []
    offset = LOG_HEADER_SIZE
    while offset < len(data):
        if offset + _RECORD_PREFIX.size > len(data):
            break  # torn record prefix
        body_size, body_crc, prefix_crc = _RECORD_PREFIX.unpack_from(data, offset)
        if zlib.crc32(data[offset:offset + 8]) != prefix_crc:
            if not data[offset:].strip(b"\0"):
                break  # torn: the file system left zeros where the record should be
            raise IndexFileError(f"{path}: log record at byte {offset} is corrupted (bad record header)")
        body_start = offset + _RECORD_PREFIX.size
        body_end = body_start + body_size
        if body_end > len(data):
            break  # torn record body
        body = memoryview(data)[body_start:body_end]
        if zlib.crc32(body) != body_crc:
            if body_end == len(data):
                break  # torn last record
            raise IndexFileError(f"{path}: log record at byte {offset} is corrupted (checksum mismatch) "
                                 "and is not the last one")
        records.append(_parse_record(body, params, path, offset))
        offset = body_end
    return params, records, offset


def _parse_record(body: memoryview, params: IndexParams, path: Path, offset: int) -> LogRecord:
    if len(body) < _RECORD_BODY_HEAD.size:
        raise IndexFileError(f"{path}: log record at byte {offset} is malformed")
    kind, seq, count = _RECORD_BODY_HEAD.unpack_from(body)
    with_vectors = kind == RECORD_ADD and params.own_vectors
    expected = _RECORD_BODY_HEAD.size + 8 * count + (4 * count * params.dim if with_vectors else 0)
    if kind not in (RECORD_ADD, RECORD_DELETE) or len(body) != expected:
        raise IndexFileError(f"{path}: log record at byte {offset} is malformed")
    ids_end = _RECORD_BODY_HEAD.size + 8 * count
    ids = np.frombuffer(body[_RECORD_BODY_HEAD.size:ids_end], dtype="<i8").copy()
    vectors = None
    if with_vectors:
        vectors = np.frombuffer(body[ids_end:], dtype="<f4").reshape(count, params.dim).copy()
    return LogRecord(kind, seq, ids, vectors)


class WriteAheadLog:
    """Appends checksummed records to ``path``; each append is durable when it returns."""

    def __init__(self, path: Path, params: IndexParams, fsync: bool):
        self.path = Path(path)
        self.params = params
        self.fsync = fsync
        self._fd = -1

    @classmethod
    def create(cls, path: Path, params: IndexParams, fsync: bool = True) -> WriteAheadLog:
        log = cls(path, params, fsync)
        log.reset()
        return log

    @classmethod
    def reopen(cls, path: Path, params: IndexParams, valid_length: int, fsync: bool = True) -> WriteAheadLog:
        """Continue an existing log, cutting off a torn tail past ``valid_length``."""
        log = cls(path, params, fsync)
        log._fd = os.open(log.path, os.O_WRONLY | os.O_APPEND)
        size = os.fstat(log._fd).st_size
        if size != valid_length:
            _log.warning("%s: cut off a torn last record (%d bytes) left by a crash while it was written",
                         log.path, size - valid_length)
            os.ftruncate(log._fd, valid_length)
            os.fsync(log._fd)
        return log

    def reset(self) -> None:
        """Replace the log by an empty one (after a snapshot made its records redundant)."""
        temp_path = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        with open(temp_path, "wb") as handle:
            handle.write(_pack_log_header(self.params))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_path, self.path)
        fsync_dir(self.path.parent)
        self.close()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def append(self, kind: int, seq: int, ids: np.ndarray, vectors: np.ndarray | None = None) -> None:
        parts = [_RECORD_BODY_HEAD.pack(kind, seq, len(ids)), ids.astype("<i8").tobytes()]
        if vectors is not None:
            parts.append(np.ascontiguousarray(vectors, dtype="<f4").tobytes())
        body = b"".join(parts)
        sizes = struct.pack("<II", len(body), zlib.crc32(body))
        record = sizes + struct.pack("<I", zlib.crc32(sizes)) + body
        view = memoryview(record)
        while view:
            view = view[os.write(self._fd, view):]
        if self.fsync:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
