"""The catalog seen from the vectors store: which media and frames vector rows stand for (search
results and filters, one vector per media item) and crash recovery of rows committed to the store
that the catalog did not record (shared/reconcile.py)."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable
from typing import NamedTuple, TypedDict

from shared.catalog.core import chunks, marks, transaction
from shared.catalog.media import MediaKind, MediaStatus


class FrameHit(TypedDict):
    """What a search result shows of the frame behind a vector row."""
    frame_id: int
    vector_row: int
    timestamp: float | None
    media_id: int
    kind: MediaKind
    name: str
    folder: str
    mime: str
    duration: float | None


def frames_for_rows(conn: sqlite3.Connection, rows: Iterable[int]) -> dict[int, FrameHit]:
    """Frame and media fields for each vector row that the catalog knows, keyed by row."""
    rows = list(rows)
    if not rows:
        return {}
    found = conn.execute(
        "SELECT frames.id AS frame_id, frames.vector_row, frames.timestamp, frames.media_id, "
        "media.kind, media.name, media.folder, media.mime, media.duration "
        f"FROM frames JOIN media ON media.id = frames.media_id WHERE frames.vector_row IN ({marks(rows)})", rows)
    return {row["vector_row"]: FrameHit(**{**row, "kind": MediaKind(row["kind"])}) for row in found}


def rows_matching(conn: sqlite3.Connection, **filters) -> list[int]:
    """Vector rows of the frames whose media pass the filters (media_conditions' keyword arguments)."""
    conditions, params = media_conditions(conn, **filters)
    query = (f"SELECT frames.vector_row FROM frames JOIN media ON media.id = frames.media_id "
             f"WHERE {' AND '.join(['frames.vector_row IS NOT NULL', *conditions])} ORDER BY frames.vector_row")
    return [row[0] for row in conn.execute(query, params)]


def media_conditions(conn: sqlite3.Connection, kind: MediaKind | str | None = None, folder: str | None = None,
                     created_from: float | None = None, created_to: float | None = None,
                     collection: int | None = None,
                     taken_from: TakenBound | None = None, taken_to: TakenBound | None = None,
                     camera: str | None = None, near: Near | None = None,
                     library: int | None = None) -> tuple[list[str], list]:
    """SQL conditions on ``media`` (to be joined with AND) and their parameters, for the filters that
    search (rows_matching) and browsing (timeline.py) share. A folder matches its subfolders too;
    ``taken_from`` is inclusive, ``taken_to`` exclusive; ``camera`` is matched exactly, ignoring case."""
    conditions, params = [], []
    if kind is not None:
        conditions.append("media.kind = ?")
        params.append(MediaKind(kind))
    if folder is not None:
        escaped = folder.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append("(media.folder = ? OR media.folder LIKE ? ESCAPE '\\')")
        params += [folder, escaped.rstrip("/") + "/%"]
    if created_from is not None:
        conditions.append("media.created_at >= ?")
        params.append(created_from)
    if created_to is not None:
        conditions.append("media.created_at <= ?")
        params.append(created_to)
    if collection is not None:
        conditions.append("media.id IN (SELECT media_id FROM collection_members WHERE collection_id = ?)")
        params.append(collection)
    # -- when, where and with what it was taken
    for bound, operator in ((taken_from, ">="), (taken_to, "<")):
        if bound is not None:
            conditions.append(f"{_WALL_CLOCK if bound.wall_clock else 'media.taken_at'} {operator} ?")
            params.append(bound.at)
    if camera is not None:
        conditions.append("media.camera = ? COLLATE NOCASE")
        params.append(camera)
    if near is not None:
        conn.create_function("km_between", 4, km_between, deterministic=True)
        margin = near.km / KM_PER_DEGREE  # latitude first: it rules out most rows without trigonometry
        conditions.append("media.gps_lat BETWEEN ? AND ? AND km_between(media.gps_lat, media.gps_lon, ?, ?) <= ?")
        params += [near.lat - margin, near.lat + margin, near.lat, near.lon, near.km]
    if library is not None:  # a file of the library holds it (catalog.libraries; excluded files do not count)
        conditions.append("media.id IN (SELECT media_id FROM locations WHERE library_id = ? AND excluded = 0)")
        params.append(library)
    return conditions, params


# A capture time as the wall clock where it was taken, read as UTC (what a date with no offset means)
_WALL_CLOCK = "(media.taken_at + COALESCE(media.taken_offset, 0) * 60)"
EARTH_RADIUS_KM = 6371.0088
KM_PER_DEGREE = math.pi * EARTH_RADIUS_KM / 180


class TakenBound(NamedTuple):
    """A bound on the capture time: an instant (UTC epoch seconds), or with ``wall_clock`` a local date
    or time without offset, compared with each item's own wall clock (``at`` is that wall clock read as UTC)."""
    at: float
    wall_clock: bool


class Near(NamedTuple):
    """Within ``km`` kilometres (great-circle distance) of a point in decimal degrees."""
    lat: float
    lon: float
    km: float


def km_between(lat1: float | None, lon1: float | None, lat2: float, lon2: float) -> float | None:
    """Great-circle distance in kilometres (haversine); None when a point is missing."""
    if lat1 is None or lon1 is None:
        return None
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    a = (math.sin((phi2 - phi1) / 2) ** 2
         + math.cos(phi1) * math.cos(phi2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def media_vector_rows(conn: sqlite3.Connection, media_ids: Iterable[int] | None = None) -> dict[int, int]:
    """The one vector row standing for each indexed media item: a photo's frame, a video's pooled vector."""
    query = ("SELECT media.id, CASE WHEN media.kind = ? THEN video_vectors.vector_row "
             "ELSE (SELECT MIN(frames.vector_row) FROM frames WHERE frames.media_id = media.id) END AS row "
             "FROM media LEFT JOIN video_vectors ON video_vectors.media_id = media.id WHERE media.status = ?")
    args = [MediaKind.VIDEO, MediaStatus.INDEXED]
    if media_ids is None:
        return {media_id: row for media_id, row in conn.execute(query, args) if row is not None}
    return {media_id: row for chunk in chunks(list(media_ids))
            for media_id, row in conn.execute(f"{query} AND media.id IN ({marks(chunk)})", [*args, *chunk])
            if row is not None}


# -- crash recovery ----------------------------------------------------------------------------------
def unembedded(conn: sqlite3.Connection, media_id: int | None = None) -> tuple[list[int], list[int]]:
    """Frames without a vector row and videos without a pooled vector (of one media item, or all):
    ``(frame ids, video media ids)``."""
    only = "" if media_id is None else " AND media.id = ?"
    args = () if media_id is None else (media_id,)
    frames = [row[0] for row in conn.execute(
        f"SELECT frames.id FROM frames JOIN media ON media.id = frames.media_id "
        f"WHERE frames.vector_row IS NULL{only}", args)]
    videos = [row[0] for row in conn.execute(
        f"SELECT media.id FROM media LEFT JOIN video_vectors ON video_vectors.media_id = media.id "
        f"WHERE media.kind = ? AND video_vectors.media_id IS NULL{only}", (MediaKind.VIDEO, *args))]
    return frames, videos


def adopt_rows(conn: sqlite3.Connection, frame_rows: dict[int, int], video_rows: dict[int, int]) -> tuple[int, int]:
    """Record committed rows for frames and videos that have none; never replaces a recorded row and never
    gives one row to two owners. Returns how many frames and videos got a row."""
    with transaction(conn):
        frames = sum(conn.execute("UPDATE OR IGNORE frames SET vector_row=? WHERE id=? AND vector_row IS NULL",
                                  (row, frame_id)).rowcount for frame_id, row in frame_rows.items())
        videos = sum(conn.execute("INSERT OR IGNORE INTO video_vectors(media_id, vector_row) "
                                  "SELECT id, ? FROM media WHERE id = ?",  # not for a video deleted meanwhile
                                  (row, media_id)).rowcount for media_id, row in video_rows.items())
    return frames, videos


def existing_ids(conn: sqlite3.Connection) -> tuple[list[int], list[int]]:
    """Every frame id and every media id in the catalog."""
    return ([row[0] for row in conn.execute("SELECT id FROM frames")],
            [row[0] for row in conn.execute("SELECT id FROM media")])
