"""What the ingest pipeline (services/ingest_worker/pipeline.py) does differently for a library file: it
opens the file beneath its library's folder (at its location's path now: a file moved since it was queued
is still found), never copies it, names its media after the library and its path, and records the outcome
on the location instead: bound to its media, failed with the reason, or excluded.

A job item is a library item when it has a location (job_items.location_id).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from shared import catalog
from shared.catalog import libraries as catalog_libraries
from shared.catalog.jobs import ItemStatus
from shared.catalog.libraries import Settled
from shared.libraries.forget import forget_everywhere
from shared.libraries.scan import unavailable_reason
from shared.media_store import MediaStore
from shared.safe_open import OpenedFile, OutsideRoots, RefusedFile, open_beneath
from shared.settings import Settings

LOCATION_GONE = "removed from its library while it was being ingested"
LEADS_OUT = "refused: the file leads outside its library's folder"
EXCLUDED = "excluded: the same content was deleted from this library before (the file stays where it is)"


class LibraryUnavailable(RefusedFile):
    """The library's folder is missing (or no longer under the ingest roots): the file waits for its return."""


def in_library(item: sqlite3.Row | dict) -> bool:
    return item["location_id"] is not None


def file_stat(source: OpenedFile) -> tuple[int, int]:
    """``(size, mtime_ns)`` of the opened file: what the next scan compares with."""
    info = os.fstat(source.fd)
    return info.st_size, info.st_mtime_ns


def open_library_file(conn: sqlite3.Connection, location_id: int, settings: Settings) -> OpenedFile:
    """The file at a location, opened beneath its library's folder. RefusedFile says why it cannot be."""
    location = catalog_libraries.get_location(conn, location_id)
    library = catalog_libraries.get_library(conn, location["library_id"]) if location else None
    if location is None or library is None:
        raise RefusedFile(LOCATION_GONE)
    root = Path(library["path"])
    reason = unavailable_reason(root, settings)
    if reason is not None:
        raise LibraryUnavailable(f"the library {library['name']!r} is unavailable: {reason}")
    try:
        return open_beneath(root / location["path"], [root])
    except OutsideRoots:
        raise RefusedFile(LEADS_OUT) from None


def media_names(conn: sqlite3.Connection, location_id: int) -> tuple[str, str]:
    """``(name, folder)`` of the media a library file becomes: the library's name and the file's path."""
    location = catalog_libraries.get_location(conn, location_id)
    library = catalog_libraries.get_library(conn, location["library_id"]) if location else None
    if location is None or library is None:
        raise RefusedFile(LOCATION_GONE)
    return catalog_libraries.media_names(library["name"], location["path"])


def exclude_if_excluded(conn: sqlite3.Connection, location_id: int, sha256: str, stat: tuple[int, int]) -> bool:
    """The file holds content the user deleted from this library before: its location is excluded too
    (nothing is decoded). False otherwise."""
    location = catalog_libraries.get_location(conn, location_id)
    if location is None or not catalog_libraries.content_excluded(conn, location["library_id"], sha256):
        return False
    catalog_libraries.unbind_location(conn, location_id, excluded_sha=sha256, stat=stat)
    return True


def settle(conn: sqlite3.Connection, item_id: int, status: str, reason: str | None, media_id: int | None,
           stat: tuple[int, int] | None) -> Settled:
    """Record a library item's outcome on its location (call inside the transaction that records the
    item's; nothing for an item of no library). ``stat``: the file's size and mtime as the item read it
    (None: as the scan saw it). ``refused`` in the answer: the location went meanwhile, so the item fails."""
    found = conn.execute("SELECT location_id FROM job_items WHERE id=?", (item_id,)).fetchone()
    if found is None or found[0] is None:
        return Settled([], [], None)
    location = catalog_libraries.get_location(conn, found[0])
    ingested = status in (ItemStatus.INDEXED, ItemStatus.DUPLICATE) and media_id is not None
    if location is None:
        return Settled(catalog_libraries.orphans(conn, [media_id]) if ingested else [], [],
                       LOCATION_GONE if ingested else None)
    if ingested:
        media = catalog.get_media(conn, media_id)
        size, mtime_ns = stat or (location["size"], location["mtime_ns"])
        return catalog_libraries.bind_location(conn, location["id"], media_id, media["sha256"], size, mtime_ns)
    if status == ItemStatus.FAILED:
        library = catalog_libraries.get_library(conn, location["library_id"])
        if library is None or not Path(library["path"]).is_dir():
            return Settled([], [], None)  # its folder is gone for now: the file waits, unfailed, for its return
        return catalog_libraries.unbind_location(conn, location["id"], error=reason, stat=stat)
    return Settled([], [], None)  # cancelled: the next scan queues it again (an excluded one is recorded so)


def after_settle(settled: Settled, conn: sqlite3.Connection, store: MediaStore, settings: Settings) -> None:
    """Outside the item's transaction: remove released copies, forget media left with no original."""
    store.remove(settled.release)
    if settled.forget:
        forget_everywhere(conn, store, settings.index_urls, settled.forget)
