"""Tables ``collections`` and ``collection_members``: named sets of media made by the user, or by an
upload (its folder's collection, one per job). Deleting a collection leaves its media in the library."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from typing import TypedDict, cast

from shared.catalog.core import cover_frames, transaction
from shared.catalog.media import MediaWithCover, media_row


class CollectionRow(TypedDict):
    """A collection with its member count (every read of a collection counts its members)."""
    id: int
    name: str
    job_id: str | None  # the upload whose folder it is
    created_at: float
    size: int


_COLLECTION_WITH_SIZE = ("SELECT collections.*, COUNT(collection_members.media_id) AS size FROM collections "
                         "LEFT JOIN collection_members ON collection_members.collection_id = collections.id")


def insert_collection(conn: sqlite3.Connection, name: str) -> int:
    return conn.execute("INSERT INTO collections(name, created_at) VALUES (?,?)", (name, time.time())).lastrowid


def folder_collection(conn: sqlite3.Connection, job_id: str, name: str) -> int:
    """The collection of an upload's folder, created with the job's first media item."""
    with transaction(conn):
        conn.execute("INSERT INTO collections(name, job_id, created_at) VALUES (?,?,?) "
                     "ON CONFLICT(job_id) DO NOTHING", (name, job_id, time.time()))
        return conn.execute("SELECT id FROM collections WHERE job_id=?", (job_id,)).fetchone()[0]


def collections_with_sizes(conn: sqlite3.Connection) -> list[CollectionRow]:
    """Every collection with its member count, newest first."""
    return [CollectionRow(**row) for row in conn.execute(
        f"{_COLLECTION_WITH_SIZE} GROUP BY collections.id ORDER BY collections.created_at DESC, collections.id DESC")]


def get_collection(conn: sqlite3.Connection, collection_id: int) -> CollectionRow | None:
    found = conn.execute(f"{_COLLECTION_WITH_SIZE} WHERE collections.id=? GROUP BY collections.id",
                         (collection_id,)).fetchone()
    return None if found is None else CollectionRow(**found)


def rename_collection(conn: sqlite3.Connection, collection_id: int, name: str) -> bool:
    return bool(conn.execute("UPDATE collections SET name=? WHERE id=?", (name, collection_id)).rowcount)


def delete_collection(conn: sqlite3.Connection, collection_id: int) -> bool:
    """Forget the set; its media stay in the library."""
    return bool(conn.execute("DELETE FROM collections WHERE id=?", (collection_id,)).rowcount)


def add_to_collection(conn: sqlite3.Connection, collection_id: int, media_ids: Iterable[int]) -> int:
    """Add media (already members are skipped); returns how many were added."""
    now = time.time()
    with transaction(conn):
        return conn.executemany("INSERT OR IGNORE INTO collection_members(collection_id, media_id, added_at) "
                                "VALUES (?,?,?)", [(collection_id, media_id, now) for media_id in media_ids]).rowcount


def remove_from_collection(conn: sqlite3.Connection, collection_id: int, media_ids: Iterable[int]) -> int:
    """Take media out (the media stay in the library); returns how many were members."""
    with transaction(conn):
        return conn.executemany("DELETE FROM collection_members WHERE collection_id=? AND media_id=?",
                                [(collection_id, media_id) for media_id in media_ids]).rowcount


def collection_media(conn: sqlite3.Connection, collection_id: int, limit: int,
                     offset: int = 0) -> list[MediaWithCover]:
    """Members of a collection (media rows with ``cover_frame``), in the order they were added."""
    return [cast(MediaWithCover, media_row(row)) for row in conn.execute(
        "SELECT media.*, (SELECT MIN(frames.id) FROM frames WHERE frames.media_id = media.id) AS cover_frame "
        "FROM collection_members JOIN media ON media.id = collection_members.media_id "
        "WHERE collection_members.collection_id=? ORDER BY collection_members.added_at, media.id LIMIT ? OFFSET ?",
        (collection_id, limit, offset))]


def collection_covers(conn: sqlite3.Connection, collection_ids: list[int],
                      per_collection: int = 4) -> dict[int, list[int]]:
    """Up to ``per_collection`` thumbnail frames per collection, first added first."""
    return cover_frames(conn, "collection_members", "collection_id", "m.added_at, m.media_id", collection_ids,
                        per_collection)
