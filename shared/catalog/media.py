"""Tables ``media``, ``frames`` and ``video_vectors``: a stored file, the frames it is searched by
(one for a photo, sampled ones for a video) and a video's one pooled vector.

Media and frame ids are never reused (AUTOINCREMENT): their URLs are cached as immutable, and a vector
row's owner id names one item forever.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from enum import StrEnum
from itertools import combinations
from math import comb
from typing import NamedTuple, TypedDict, cast

from shared.catalog.core import chunks, marks, transaction


class MediaKind(StrEnum):
    IMAGE = "image"
    VIDEO = "video"


class MediaStatus(StrEnum):
    PENDING = "pending"  # frames not all embedded yet
    INDEXED = "indexed"


class MediaRow(TypedDict):
    id: int
    sha256: str
    kind: MediaKind
    mime: str
    path: str               # its copy, relative to the data dir; '' for a library file (catalog.libraries)
    name: str               # relative path as the user named it
    folder: str
    size: int
    width: int | None
    height: int | None
    duration: float | None  # videos
    fps: float | None
    phash: str | None       # perceptual hash, hex digits
    near_duplicate_of: int | None
    job_id: str | None
    status: MediaStatus
    created_at: float       # when it was added
    # When, where and with what it was taken (services/ingest_worker/metadata.py says what each holds)
    taken_at: float | None  # UTC epoch seconds (a wall clock read as UTC while taken_offset is None)
    taken_offset: int | None  # minutes east of UTC; None: unknown
    taken_at_source: str | None  # 'exif' | 'video' | 'file' (the file's modification time)
    camera: str | None      # "Make Model"
    lens: str | None
    gps_lat: float | None
    gps_lon: float | None
    motion_path: str | None   # a Live Photo's motion clip, relative to the data dir
    preview_path: str | None  # a browser-playable copy of a video browsers cannot play (ingest_worker/preview.py)
    visual_row: int | None    # the vector row whose nearest neighbours visual_pairs records (None: not yet)


class MediaWithCover(MediaRow):
    """A media row with its first frame, for a thumbnail (None while it has no frame)."""
    cover_frame: int | None


class FrameRow(TypedDict):
    id: int
    media_id: int
    timestamp: float | None  # seconds into the video; None for a still image
    path: str                # normalised JPEG, relative to the data dir
    thumb_path: str
    width: int
    height: int
    vector_row: int | None   # row in the vectors store; None until embedded


class NearDuplicateGroup(TypedDict):
    original: MediaRow
    duplicates: list[MediaRow]


class LibraryCounts(TypedDict):
    media: int
    frames: int  # embedded frames


def media_row(row: sqlite3.Row) -> MediaRow:
    """A typed media row from ``SELECT media.*`` (extra columns, such as cover_frame, are kept)."""
    media = cast(MediaRow, dict(row))
    media["kind"] = MediaKind(media["kind"])
    media["status"] = MediaStatus(media["status"])
    return media


def _frame(row: sqlite3.Row) -> FrameRow:
    return cast(FrameRow, dict(row))


# -- media -----------------------------------------------------------------------------------------
def media_by_sha(conn: sqlite3.Connection, sha256: str) -> MediaRow | None:
    found = conn.execute("SELECT * FROM media WHERE sha256=?", (sha256,)).fetchone()
    return None if found is None else media_row(found)


def get_media(conn: sqlite3.Connection, media_id: int) -> MediaRow | None:
    found = conn.execute("SELECT * FROM media WHERE id=?", (media_id,)).fetchone()
    return None if found is None else media_row(found)


def insert_media(conn: sqlite3.Connection, **fields) -> int:
    """A media row from MediaRow's fields (``id`` is given by the catalog, ``created_at`` defaults to now)."""
    fields.setdefault("created_at", time.time())
    columns, values = ", ".join(fields), list(fields.values())
    return conn.execute(f"INSERT INTO media({columns}) VALUES ({marks(values)})", values).lastrowid


def mark_media_indexed(conn: sqlite3.Connection, media_id: int) -> None:
    conn.execute("UPDATE media SET status=? WHERE id=?", (MediaStatus.INDEXED, media_id))


# -- Live Photos: a photo's motion clip (shared/live_photos.py pairs them) --------------------------------
def set_item_motions(conn: sqlite3.Connection, motions: dict[int, str]) -> None:
    """Give job items their Live Photo's clip: ``{item id: where the clip waits}`` (as stored_path)."""
    with transaction(conn):
        conn.executemany("UPDATE job_items SET motion_path=? WHERE id=?",
                         [(path, item) for item, path in motions.items()])


def set_motion_path(conn: sqlite3.Connection, media_id: int, path: str) -> None:
    """Record the stored copy of a photo's motion clip (relative to the data dir)."""
    conn.execute("UPDATE media SET motion_path=? WHERE id=?", (path, media_id))


class DeletedMedia(NamedTuple):
    rows: list[int]    # its vector rows (frames and a video's pooled vector), to tombstone in the index
    paths: list[str]   # its files: the original, frames and thumbnails
    sha256: str        # the content they are named by (see stored_shas)


def delete_media(conn: sqlite3.Connection, media_id: int) -> DeletedMedia | None:
    """Remove a media item and its frames; returns what to remove elsewhere (None: no such item)."""
    with transaction(conn):
        media = get_media(conn, media_id)
        if media is None:
            return None
        frames = frames_of_media(conn, media_id)
        pooled = video_row(conn, media_id)
        conn.execute("DELETE FROM media WHERE id=?", (media_id,))
    rows = [f["vector_row"] for f in frames if f["vector_row"] is not None]
    if pooled is not None:
        rows.append(pooled)
    copy = [media["path"]] if media["path"] else []  # '': a library file, not copied (locations)
    copy += [path for path in (media["motion_path"], media["preview_path"]) if path]  # a Live Photo's clip, a preview
    paths = copy + [p for f in frames for p in (f["path"], f["thumb_path"])]
    return DeletedMedia(rows, paths, media["sha256"])


def stored_shas(conn: sqlite3.Connection, shas: Iterable[str]) -> set[str]:
    """Which of ``shas`` a media row holds. Its files are named by its content, so the files of deleted
    media with one of these are another item's now (the same bytes ingested again): not to be removed."""
    return {row[0] for chunk in chunks(list(set(shas)))
            for row in conn.execute(f"SELECT sha256 FROM media WHERE sha256 IN ({marks(chunk)})", chunk)}


def counts(conn: sqlite3.Connection) -> LibraryCounts:
    return LibraryCounts(
        media=conn.execute("SELECT COUNT(*) FROM media").fetchone()[0],
        frames=conn.execute("SELECT COUNT(*) FROM frames WHERE vector_row IS NOT NULL").fetchone()[0])


def media_rows(conn: sqlite3.Connection, media_ids: Iterable[int]) -> dict[int, MediaWithCover]:
    """Media rows with ``cover_frame`` (their first frame, for a thumbnail), keyed by id; unknown ids are absent."""
    query = ("SELECT media.*, (SELECT MIN(frames.id) FROM frames WHERE frames.media_id = media.id) AS cover_frame "
             "FROM media WHERE media.id IN ")
    return {row["id"]: cast(MediaWithCover, media_row(row)) for chunk in chunks(list(media_ids))
            for row in conn.execute(f"{query}({marks(chunk)})", chunk)}


def media_kinds(conn: sqlite3.Connection) -> dict[int, MediaKind]:
    """``{media_id: kind}`` for the whole library."""
    return {media_id: MediaKind(kind) for media_id, kind in conn.execute("SELECT id, kind FROM media")}


def missing_media(conn: sqlite3.Connection, media_ids: Iterable[int]) -> list[int]:
    """The ids among ``media_ids`` that name no media item, in the order given."""
    ids = list(dict.fromkeys(media_ids))
    known = {row[0] for chunk in chunks(ids)
             for row in conn.execute(f"SELECT id FROM media WHERE id IN ({marks(chunk)})", chunk)}
    return [media_id for media_id in ids if media_id not in known]


# -- frames and pooled video vectors -----------------------------------------------------------------
def insert_frame(conn: sqlite3.Connection, media_id: int, path: str, thumb_path: str, width: int, height: int,
                 timestamp: float | None = None) -> int:
    return conn.execute(
        "INSERT INTO frames(media_id, timestamp, path, thumb_path, width, height) VALUES (?,?,?,?,?,?)",
        (media_id, timestamp, path, thumb_path, width, height)).lastrowid


def get_frame(conn: sqlite3.Connection, frame_id: int) -> FrameRow | None:
    found = conn.execute("SELECT * FROM frames WHERE id=?", (frame_id,)).fetchone()
    return None if found is None else _frame(found)


def frames_of_media(conn: sqlite3.Connection, media_id: int) -> list[FrameRow]:
    """A media item's frames in time order."""
    return [_frame(row) for row in conn.execute("SELECT * FROM frames WHERE media_id=? ORDER BY timestamp, id",
                                                (media_id,))]


def set_frame_rows(conn: sqlite3.Connection, rows_by_frame: dict[int, int]) -> None:
    """Record the vector row of each frame ``{frame_id: row}``."""
    with transaction(conn):
        conn.executemany("UPDATE frames SET vector_row=? WHERE id=?",
                         [(row, frame_id) for frame_id, row in rows_by_frame.items()])


def video_row(conn: sqlite3.Connection, media_id: int) -> int | None:
    """The pooled vector row of a video (None until embedded, or for a photo)."""
    found = conn.execute("SELECT vector_row FROM video_vectors WHERE media_id=?", (media_id,)).fetchone()
    return found[0] if found else None


def set_video_row(conn: sqlite3.Connection, media_id: int, row: int) -> None:
    conn.execute("INSERT OR REPLACE INTO video_vectors(media_id, vector_row) VALUES (?,?)", (media_id, row))


# -- near duplicates (perceptual hashes) -------------------------------------------------------------
def phash_distance(a: str, b: str) -> int:
    """Hamming distance of two perceptual hashes written as hex digits."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


# A perceptual hash is 16 hex digits (64 bits), looked up by multi-index hashing: each band of 4 digits
# has an index on ``substr(phash, ...)`` (migration step 9). Two hashes at most d bits apart differ in at
# most d // PHASH_BANDS bits in one band at least (pigeonhole), so every hash within d bits is among the
# rows whose band equals, in some band, a value within that many bits of ours.
PHASH_BANDS = 4
BAND_DIGITS = 4
MAX_BAND_PROBES = 1024  # band values looked up per band; beyond that (d >= 16) reading every hash costs less


def band_expression(band: int) -> str:
    """The SQL of a band, as the index on it is written (a query must spell it the same to use it)."""
    return f"substr(phash, {band * BAND_DIGITS + 1}, {BAND_DIGITS})"


def _within_bits(value: int, bits: int, radius: int) -> list[int]:
    """Every ``bits``-bit value at most ``radius`` bits from ``value``."""
    found = [value]
    for flips in range(1, radius + 1):
        found += [value ^ sum(1 << bit for bit in chosen) for chosen in combinations(range(bits), flips)]
    return found


def _probes(phash: str, max_distance: int) -> list[list[str]] | None:
    """For each band, the band values a hash within ``max_distance`` bits may have (None: too many)."""
    radius = max_distance // PHASH_BANDS
    if sum(comb(BAND_DIGITS * 4, flips) for flips in range(radius + 1)) > MAX_BAND_PROBES:
        return None
    bands = [int(phash[band * BAND_DIGITS:(band + 1) * BAND_DIGITS], 16) for band in range(PHASH_BANDS)]
    return [[f"{value:0{BAND_DIGITS}x}" for value in _within_bits(band, BAND_DIGITS * 4, radius)] for band in bands]


def near_duplicate_candidates(conn: sqlite3.Connection, phash: str, max_distance: int,
                              kind: MediaKind | str = MediaKind.IMAGE) -> list[sqlite3.Row]:
    """Rows ``(id, phash, near_duplicate_of)`` of ``kind`` that include every hash within ``max_distance``
    bits of ``phash``, from the band indexes (or all hashes of that kind when d is too large for them)."""
    phash = phash.lower()
    probes = _probes(phash, max_distance) if len(phash) == PHASH_BANDS * BAND_DIGITS else None
    if probes is None:
        return conn.execute("SELECT id, phash, near_duplicate_of FROM media WHERE kind=? AND phash IS NOT NULL",
                            (MediaKind(kind),)).fetchall()
    found: dict[int, sqlite3.Row] = {}
    for band, values in enumerate(probes):
        for chunk in chunks(values):
            for row in conn.execute(f"SELECT id, phash, near_duplicate_of FROM media "
                                    f"WHERE {band_expression(band)} IN ({marks(chunk)}) AND kind=?",
                                    [*chunk, MediaKind(kind)]):
                found[row["id"]] = row
    return list(found.values())


def find_near_duplicate(conn: sqlite3.Connection, phash: str, max_distance: int,
                        kind: MediaKind | str = MediaKind.IMAGE) -> int | None:
    """The original (never itself a near duplicate) of the closest media within ``max_distance`` bits
    (the oldest of the closest)."""
    matches = [(distance, row["id"], row["near_duplicate_of"] or row["id"])
               for row in near_duplicate_candidates(conn, phash, max_distance, kind)
               if (distance := phash_distance(phash, row["phash"])) <= max_distance]
    return min(matches)[2] if matches else None


def near_duplicates(conn: sqlite3.Connection, limit: int = 1000) -> list[NearDuplicateGroup]:
    """Groups of near-duplicate media, oldest groups first."""
    groups: dict[int, list[MediaRow]] = {}
    for row in conn.execute("SELECT * FROM media WHERE near_duplicate_of IS NOT NULL ORDER BY near_duplicate_of, id"):
        if len(groups) >= limit and row["near_duplicate_of"] not in groups:
            break
        groups.setdefault(row["near_duplicate_of"], []).append(media_row(row))
    originals = {row["id"]: media_row(row) for chunk in chunks(list(groups))
                 for row in conn.execute(f"SELECT * FROM media WHERE id IN ({marks(chunk)})", chunk)}
    return [NearDuplicateGroup(original=originals[original_id], duplicates=duplicates)
            for original_id, duplicates in groups.items() if original_id in originals]
