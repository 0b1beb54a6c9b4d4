"""Browsing the library without a query: indexed media newest (or oldest) first by when they were taken or
added, page by page, with the same filters as search (vector_rows.media_conditions).

Pages are keyset-paginated on (sort key, id): a page starts after the last (key, id) of the previous one,
so items added or deleted meanwhile never shift a page, and reading page 500 costs what page 1 does.

The sort key of ``taken`` is COALESCE(taken_at, created_at): media without a capture time (ingested before
catalog step 7 read it) sort by when they were added. SQLite cannot read that expression from the
media(taken_at, id) index, so each page scans media once with a sort bounded by the page size (LIMIT);
an index on exactly that expression (a migration step) would make it a range read without changing this.
"""

from __future__ import annotations

import sqlite3
from enum import StrEnum
from typing import TypedDict, cast

from shared.catalog.media import MediaKind, MediaStatus
from shared.catalog.vector_rows import media_conditions


class TimelineSort(StrEnum):
    TAKEN = "taken"  # capture time, else the time it was added
    ADDED = "added"


_SORT_KEYS = {TimelineSort.TAKEN: "COALESCE(media.taken_at, media.created_at)",
              TimelineSort.ADDED: "media.created_at"}


class TimelineRow(TypedDict):
    id: int
    name: str
    kind: MediaKind
    taken_at: float | None
    taken_offset: int | None
    camera: str | None
    width: int | None
    height: int | None
    duration: float | None
    created_at: float
    cover_frame: int | None  # its first frame, for a thumbnail
    sort_key: float          # with ``id``, where the next page starts


class CameraCount(TypedDict):
    camera: str
    media: int


class MonthCount(TypedDict):
    month: str  # "2024-03": the wall-clock month where it was taken (else the UTC month it was added)
    media: int


def timeline_page(conn: sqlite3.Connection, sort: TimelineSort | str = TimelineSort.TAKEN, descending: bool = True,
                  limit: int = 100, after: tuple[float, int] | None = None, **filters) -> list[TimelineRow]:
    """Up to ``limit`` indexed media in (sort key, id) order, starting after ``after`` (the last row's
    ``(sort_key, id)`` of the previous page); ``filters`` are media_conditions' keyword arguments."""
    key = _SORT_KEYS[TimelineSort(sort)]
    order = "DESC" if descending else "ASC"
    conditions, params = media_conditions(conn, **filters)
    conditions, params = ["media.status = ?", *conditions], [MediaStatus.INDEXED, *params]
    if after is not None:
        conditions.append(f"({key}, media.id) {'<' if descending else '>'} (?, ?)")
        params += list(after)
    query = (f"SELECT media.id, media.name, media.kind, media.taken_at, media.taken_offset, media.camera, "
             f"media.width, media.height, media.duration, media.created_at, {key} AS sort_key, "
             f"(SELECT MIN(frames.id) FROM frames WHERE frames.media_id = media.id) AS cover_frame "
             f"FROM media WHERE {' AND '.join(conditions)} ORDER BY sort_key {order}, media.id {order} LIMIT ?")
    return [cast(TimelineRow, {**dict(row), "kind": MediaKind(row["kind"])})
            for row in conn.execute(query, [*params, limit])]


def cameras(conn: sqlite3.Connection) -> list[CameraCount]:
    """Every camera of indexed media (one spelling per camera, ignoring case) with how many media it took,
    most used first."""
    return [CameraCount(camera=camera, media=count) for camera, count in conn.execute(
        "SELECT camera, COUNT(*) AS n FROM media WHERE camera IS NOT NULL AND status = ? "
        "GROUP BY camera COLLATE NOCASE ORDER BY n DESC, camera COLLATE NOCASE", (MediaStatus.INDEXED,))]


def months(conn: sqlite3.Connection, **filters) -> list[MonthCount]:
    """How many indexed media each month holds, newest month first (a date scrubber's marks); ``filters``
    as timeline_page's. A month is the wall clock's where the item was taken, as a date filter reads it."""
    conditions, params = media_conditions(conn, **filters)
    month = ("strftime('%Y-%m', COALESCE(media.taken_at + COALESCE(media.taken_offset, 0) * 60, media.created_at), "
             "'unixepoch')")
    query = (f"SELECT {month} AS month, COUNT(*) FROM media WHERE {' AND '.join(['media.status = ?', *conditions])} "
             f"GROUP BY month ORDER BY month DESC")
    return [MonthCount(month=month, media=count)
            for month, count in conn.execute(query, [MediaStatus.INDEXED, *params]) if month is not None]
