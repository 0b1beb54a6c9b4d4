"""Tables ``libraries`` and ``locations``: folders on the server indexed in place, and the files in them.

A location is one file of a library (its path relative to the library's folder, its size, mtime and the
SHA-256 of its content as last read) and the media item that content is. Identical content at several
locations is one media item; a media item's original is its copy in the data volume (``media.path``, an
upload's) or, when ``media.path`` is '', one of its locations. A location without media is waiting to be
ingested, failed (``error``), excluded by the user (deleted from search; the exclusion survives rescans) or
a Live Photo's motion clip (``motion_of``).

A library scan (shared/libraries/scan.py) compares a walk of the folder with the locations: the walk goes
into the connection's TEMP tables ``walked`` and ``blind`` (folders it could not read), never into the
catalog file, so an unchanged tree costs no catalog write; the comparisons below read them page by page.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from enum import StrEnum
from pathlib import PurePosixPath
from typing import NamedTuple, TypedDict, cast

from shared.catalog.core import chunks, marks, transaction
from shared.catalog.jobs import LIVE_ITEM_STATES, MAX_LISTED_ERRORS, FailedFile, ItemStatus, new_job_id

PAGE = 1000  # rows per read of a comparison


class LibraryStatus(StrEnum):
    SCANNING = "scanning"
    READY = "ready"
    UNAVAILABLE = "unavailable"  # its folder is missing (an unmounted disk, a NAS offline): nothing is removed


class LibraryRow(TypedDict):
    id: int
    name: str
    path: str
    status: LibraryStatus
    status_reason: str | None
    one_off: int              # 1: made by POST /ingest, scanned when asked only
    folders: int
    watching: int
    watch_note: str | None
    last_scan_at: float | None
    created_at: float


class LibrarySummary(LibraryRow):
    media: int    # media items with a location here
    failed: int   # files that could not be ingested
    busy: int     # 1 while files of it wait to be ingested


class LocationRow(TypedDict):
    id: int
    library_id: int
    path: str
    size: int
    mtime_ns: int
    sha256: str | None
    media_id: int | None
    excluded: int
    error: str | None
    motion_of: int | None


class MediaLocation(TypedDict):
    library_id: int
    library: str   # its name
    path: str      # relative to the library's folder


class Walked(NamedTuple):
    """A file a walk found: its size and mtime, or why it cannot be read (``problem``)."""
    path: str
    size: int
    mtime_ns: int
    problem: str | None = None


class Changed(NamedTuple):
    location: LocationRow
    now: Walked


class Settled(NamedTuple):
    """What settling an item left to do outside the catalog's transaction."""
    forget: list[int]     # media left with no location and no copy: out of the catalog and the index
    release: list[str]    # copies in the data volume that a location now stands for: to remove
    refused: str | None   # the item's outcome no longer holds (its location went meanwhile): fail it with this


def _library(row: sqlite3.Row) -> LibraryRow:
    library = cast(LibraryRow, dict(row))
    library["status"] = LibraryStatus(library["status"])
    return library


def _location(row: sqlite3.Row) -> LocationRow:
    return cast(LocationRow, dict(row))


def media_names(library_name: str, relative: str) -> tuple[str, str]:
    """``(media.name, media.folder)`` of a library file: the library's name and its path, and directory."""
    parent = PurePosixPath(relative).parent.as_posix()
    return f"{library_name}/{relative}", library_name if parent == "." else f"{library_name}/{parent}"


# -- libraries ----------------------------------------------------------------------------------------------
def insert_library(conn: sqlite3.Connection, name: str, path: str, one_off: bool = False) -> int:
    return conn.execute("INSERT INTO libraries(name, path, one_off, created_at) VALUES (?,?,?,?)",
                        (name, path, int(one_off), time.time())).lastrowid


def get_library(conn: sqlite3.Connection, library_id: int) -> LibraryRow | None:
    found = conn.execute("SELECT * FROM libraries WHERE id=?", (library_id,)).fetchone()
    return None if found is None else _library(found)


def library_by_path(conn: sqlite3.Connection, path: str) -> LibraryRow | None:
    found = conn.execute("SELECT * FROM libraries WHERE path=?", (path,)).fetchone()
    return None if found is None else _library(found)


def library_names(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM libraries")}


def all_libraries(conn: sqlite3.Connection) -> list[LibraryRow]:
    return [_library(row) for row in conn.execute("SELECT * FROM libraries ORDER BY id")]


def make_watched(conn: sqlite3.Connection, library_id: int, name: str | None) -> None:
    """A one-off folder (POST /ingest) becomes a library: watched and rescanned from now on."""
    conn.execute("UPDATE libraries SET one_off=0, name=COALESCE(?, name) WHERE id=?", (name, library_id))


def set_status(conn: sqlite3.Connection, library_id: int, status: LibraryStatus | str,
               reason: str | None = None) -> None:
    conn.execute("UPDATE libraries SET status=?, status_reason=? WHERE id=?",
                 (LibraryStatus(status), reason, library_id))


def finish_scan(conn: sqlite3.Connection, library_id: int, folders: int, at: float) -> None:
    conn.execute("UPDATE libraries SET status=?, status_reason=NULL, folders=?, last_scan_at=? WHERE id=?",
                 (LibraryStatus.READY, folders, at, library_id))


def set_watching(conn: sqlite3.Connection, notes: dict[int, str | None]) -> None:
    """``{library id: None}`` for a library the watcher follows, else why it does not."""
    with transaction(conn):
        conn.executemany("UPDATE libraries SET watching=?, watch_note=? WHERE id=?",
                         [(int(note is None), note, library_id) for library_id, note in notes.items()])


def library_summaries(conn: sqlite3.Connection, library_id: int | None = None) -> list[LibrarySummary]:
    """Libraries (one, or all in id order) with their media and failure counts, and whether files of
    theirs wait to be ingested."""
    where, args = ("WHERE libraries.id = ?", [library_id]) if library_id is not None else ("", [])
    rows = conn.execute(
        "SELECT libraries.*, "
        "(SELECT COUNT(DISTINCT media_id) FROM locations WHERE library_id = libraries.id AND excluded = 0 "
        " AND media_id IS NOT NULL) AS media, "
        "(SELECT COUNT(*) FROM locations WHERE library_id = libraries.id AND error IS NOT NULL) AS failed, "
        "EXISTS (SELECT 1 FROM jobs JOIN job_items ON job_items.job_id = jobs.id WHERE jobs.library_id = libraries.id "
        f" AND jobs.cancelled = 0 AND jobs.error IS NULL AND job_items.status IN ({marks(LIVE_ITEM_STATES)})) AS busy "
        f"FROM libraries {where} ORDER BY libraries.id", [*LIVE_ITEM_STATES, *args])
    return [cast(LibrarySummary, _library(row)) for row in rows]


def library_errors(conn: sqlite3.Connection, library_id: int, limit: int = MAX_LISTED_ERRORS) -> list[FailedFile]:
    """The first ``limit`` files of a library that could not be ingested, in the order they were found."""
    return [FailedFile(file=row[0], reason=row[1]) for row in conn.execute(
        "SELECT path, error FROM locations WHERE library_id=? AND error IS NOT NULL ORDER BY id LIMIT ?",
        (library_id, limit))]


def live_jobs(conn: sqlite3.Connection, library_id: int) -> list[str]:
    """The library's scan jobs that still have files to ingest."""
    return [row[0] for row in conn.execute(
        f"SELECT DISTINCT jobs.id FROM jobs JOIN job_items ON job_items.job_id = jobs.id WHERE jobs.library_id = ? "
        f"AND job_items.status IN ({marks(LIVE_ITEM_STATES)})", (library_id, *LIVE_ITEM_STATES))]


def delete_library(conn: sqlite3.Connection, library_id: int) -> list[int] | None:
    """Forget a library and its locations (never its files); returns the media that had no other original
    (no location elsewhere, no copy in the data volume), which must leave the catalog and the index next.
    None: no such library."""
    with transaction(conn):
        if get_library(conn, library_id) is None:
            return None
        media_ids = [row[0] for row in conn.execute(
            "SELECT DISTINCT media_id FROM locations WHERE library_id=? AND media_id IS NOT NULL", (library_id,))]
        conn.execute("DELETE FROM libraries WHERE id=?", (library_id,))
        return orphans(conn, media_ids)


# -- locations ------------------------------------------------------------------------------------------
def get_location(conn: sqlite3.Connection, location_id: int) -> LocationRow | None:
    found = conn.execute("SELECT * FROM locations WHERE id=?", (location_id,)).fetchone()
    return None if found is None else _location(found)


def media_locations(conn: sqlite3.Connection, media_id: int) -> list[MediaLocation]:
    """Where a media item's content is in the libraries (not counting excluded files), oldest first."""
    return [MediaLocation(library_id=row[0], library=row[1], path=row[2]) for row in conn.execute(
        "SELECT libraries.id, libraries.name, locations.path FROM locations JOIN libraries ON libraries.id = "
        "locations.library_id WHERE locations.media_id=? AND locations.excluded=0 ORDER BY locations.id", (media_id,))]


def original_locations(conn: sqlite3.Connection, media_id: int) -> list[tuple[LocationRow, LibraryRow]]:
    """The files that can serve a media item's original, oldest first, with their libraries."""
    return _with_libraries(conn, conn.execute(
        "SELECT locations.id FROM locations WHERE media_id=? AND excluded=0 ORDER BY id", (media_id,)))


def motion_clip_locations(conn: sqlite3.Connection, media_id: int) -> list[tuple[LocationRow, LibraryRow]]:
    """The Live Photo motion clips beside a media item's files in libraries, oldest first."""
    return _with_libraries(conn, conn.execute(
        "SELECT clip.id FROM locations AS still JOIN locations AS clip ON clip.motion_of = still.id "
        "WHERE still.media_id=? AND still.excluded=0 ORDER BY clip.id", (media_id,)))


def _with_libraries(conn: sqlite3.Connection, location_ids: Iterable[tuple[int]]) -> list[tuple[LocationRow, LibraryRow]]:
    """Each location (by id, in order) with its library; those gone meanwhile are left out."""
    found = []
    for (location_id,) in list(location_ids):
        location = get_location(conn, location_id)
        library = get_library(conn, location["library_id"]) if location else None
        if location and library:
            found.append((location, library))
    return found


def exclude_media(conn: sqlite3.Connection, media_ids: Iterable[int]) -> int:
    """The user deleted these media: their files stay, excluded (a rescan does not bring them back)."""
    ids = list(media_ids)
    return sum(conn.execute(f"UPDATE locations SET excluded=1 WHERE media_id IN ({marks(chunk)})", chunk).rowcount
               for chunk in chunks(ids))


def content_excluded(conn: sqlite3.Connection, library_id: int, sha256: str) -> bool:
    """Whether the user deleted this content from the library before (it stays out wherever it shows up)."""
    return conn.execute("SELECT 1 FROM locations WHERE library_id=? AND sha256=? AND excluded=1 LIMIT 1",
                        (library_id, sha256)).fetchone() is not None


def orphans(conn: sqlite3.Connection, media_ids: Iterable[int]) -> list[int]:
    """The media among these that have no original left: no location (an excluded one does not count) and
    no copy in the data volume."""
    ids = list(dict.fromkeys(media_ids))
    return [row[0] for chunk in chunks(ids) for row in conn.execute(
        f"SELECT id FROM media WHERE id IN ({marks(chunk)}) AND path = '' AND NOT EXISTS "
        "(SELECT 1 FROM locations WHERE locations.media_id = media.id AND locations.excluded = 0)", chunk)]


def refresh_media_names(conn: sqlite3.Connection, media_ids: Iterable[int]) -> None:
    """A library media item (no copy in the data volume) is named after its oldest location."""
    for media_id in set(media_ids):
        found = conn.execute(
            "SELECT libraries.name, locations.path FROM locations JOIN libraries ON libraries.id = locations.library_id "
            "JOIN media ON media.id = locations.media_id WHERE locations.media_id=? AND locations.excluded=0 "
            "AND media.path = '' ORDER BY locations.id LIMIT 1", (media_id,)).fetchone()
        if found is not None:
            name, folder = media_names(found[0], found[1])
            conn.execute("UPDATE media SET name=?, folder=? WHERE id=?", (name, folder, media_id))


def releasable_copy(conn: sqlite3.Connection, media_id: int) -> str | None:
    """The copy of a media item in the data volume that a location can stand for: one an earlier release's
    server-folder ingest made, never an upload's (an upload lives in the data volume). None otherwise."""
    found = conn.execute(
        "SELECT path FROM media WHERE id=? AND path <> '' AND NOT EXISTS (SELECT 1 FROM job_items "
        "JOIN jobs ON jobs.id = job_items.job_id WHERE job_items.media_id = media.id AND jobs.source = 'upload' "
        "AND job_items.status IN (?, ?))", (media_id, ItemStatus.INDEXED, ItemStatus.DUPLICATE)).fetchone()
    return found[0] if found else None


def bind_location(conn: sqlite3.Connection, location_id: int, media_id: int, sha256: str, size: int,
                  mtime_ns: int) -> Settled:
    """The file at a location holds the content of ``media_id``; what it held before may leave, and a
    server-folder copy of this content is released (the location serves it from now on)."""
    with transaction(conn):
        location = get_location(conn, location_id)
        if location is None:
            return Settled([], [], None)
        conn.execute("UPDATE locations SET media_id=?, sha256=?, size=?, mtime_ns=?, error=NULL WHERE id=?",
                     (media_id, sha256, size, mtime_ns, location_id))
        release = []
        copy = releasable_copy(conn, media_id)
        if copy is not None:
            conn.execute("UPDATE media SET path='' WHERE id=?", (media_id,))
            release.append(copy)
        previous = location["media_id"]
        refresh_media_names(conn, [media_id] + ([previous] if previous else []))
        gone = orphans(conn, [previous]) if previous not in (None, media_id) else []
    return Settled(gone, release, None)


def unbind_location(conn: sqlite3.Connection, location_id: int, *, error: str | None = None,
                    excluded_sha: str | None = None, stat: tuple[int, int] | None = None) -> Settled:
    """The file at a location no longer is the media it was: it failed (``error``), or holds content the user
    excluded (``excluded_sha``). ``stat``: its size and mtime as read."""
    with transaction(conn):
        location = get_location(conn, location_id)
        if location is None:
            return Settled([], [], None)
        size, mtime_ns = stat or (location["size"], location["mtime_ns"])
        conn.execute("UPDATE locations SET media_id=NULL, sha256=?, error=?, excluded=MAX(excluded, ?), size=?, "
                     "mtime_ns=? WHERE id=?", (excluded_sha, error, int(excluded_sha is not None), size, mtime_ns,
                                               location_id))
        previous = location["media_id"]
        if previous is not None:
            refresh_media_names(conn, [previous])
        return Settled(orphans(conn, [previous]) if previous is not None else [], [], None)


def remove_locations(conn: sqlite3.Connection, location_ids: list[int]) -> list[int]:
    """Forget locations whose files are gone; returns the media left with no original."""
    with transaction(conn):
        media_ids = [row[0] for chunk in chunks(location_ids) for row in conn.execute(
            f"SELECT media_id FROM locations WHERE id IN ({marks(chunk)}) AND media_id IS NOT NULL", chunk)]
        for chunk in chunks(location_ids):
            conn.execute(f"DELETE FROM locations WHERE id IN ({marks(chunk)})", chunk)
        refresh_media_names(conn, media_ids)
        return orphans(conn, media_ids)


def move_location(conn: sqlite3.Connection, location_id: int, path: str, size: int, mtime_ns: int) -> None:
    """A file found at a new path with the content a vanished location had: the same location, moved (its
    media keeps its id, vectors, albums and collections)."""
    with transaction(conn):
        conn.execute("UPDATE locations SET path=?, size=?, mtime_ns=? WHERE id=?", (path, size, mtime_ns, location_id))
        media = conn.execute("SELECT media_id FROM locations WHERE id=?", (location_id,)).fetchone()
        if media and media[0] is not None:
            refresh_media_names(conn, [media[0]])


def insert_location(conn: sqlite3.Connection, library_id: int, walked: Walked, *, sha256: str | None = None,
                    media_id: int | None = None, excluded: bool = False, motion_of: int | None = None) -> int:
    return conn.execute(
        "INSERT INTO locations(library_id, path, size, mtime_ns, sha256, media_id, excluded, error, motion_of) "
        "VALUES (?,?,?,?,?,?,?,?,?)", (library_id, walked.path, walked.size, walked.mtime_ns, sha256, media_id,
                                       int(excluded), walked.problem, motion_of)).lastrowid


def set_location_problem(conn: sqlite3.Connection, location_id: int, walked: Walked) -> list[int]:
    """The walk cannot read the file at a location (a dangling symlink, a link out, a fifo): it is recorded
    failed; the media it was may leave (returned, as remove_locations)."""
    return unbind_location(conn, location_id, error=walked.problem, stat=(walked.size, walked.mtime_ns)).forget


def set_motion_of(conn: sqlite3.Connection, location_id: int, still_id: int | None) -> None:
    conn.execute("UPDATE locations SET motion_of=? WHERE id=?", (still_id, location_id))


# -- scans: the walk in TEMP tables, compared with the locations, page by page ---------------------------
def start_walk(conn: sqlite3.Connection) -> None:
    """Empty TEMP tables for a walk (this connection's own; nothing is written to the catalog file)."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS walked (path TEXT PRIMARY KEY, size INTEGER NOT NULL, "
                 "mtime_ns INTEGER NOT NULL, problem TEXT)")
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS blind (path TEXT PRIMARY KEY)")
    conn.execute("DELETE FROM temp.walked")
    conn.execute("DELETE FROM temp.blind")


def end_walk(conn: sqlite3.Connection) -> None:
    """Empty the TEMP tables once a scan is done with them (the connection goes on serving other work)."""
    conn.execute("DELETE FROM temp.walked")
    conn.execute("DELETE FROM temp.blind")


def add_walked(conn: sqlite3.Connection, files: list[Walked]) -> None:
    # A deferred transaction (a savepoint) that writes only TEMP tables takes no lock on the catalog file.
    conn.execute("SAVEPOINT walked")
    conn.executemany("INSERT OR REPLACE INTO temp.walked(path, size, mtime_ns, problem) VALUES (?,?,?,?)", files)
    conn.execute("RELEASE walked")


def add_blind(conn: sqlite3.Connection, folders: list[str]) -> None:
    """Folders the walk could not read: the locations beneath them are kept as they are."""
    conn.executemany("INSERT OR IGNORE INTO temp.blind(path) VALUES (?)", [(folder,) for folder in folders])


def blind_folders(conn: sqlite3.Connection) -> list[str]:
    return [row[0] for row in conn.execute("SELECT path FROM temp.blind")]


def _pages(conn: sqlite3.Connection, query: str, args: tuple, key: str) -> Iterator[sqlite3.Row]:
    """Rows of ``query`` (which takes ``args`` then a last key and a limit) in pages by ``key``, so the
    caller may write between pages."""
    after = -1
    while True:
        page = conn.execute(query, (*args, after, PAGE)).fetchall()
        yield from page
        if len(page) < PAGE:
            return
        after = page[-1][key]


def new_files(conn: sqlite3.Connection, library_id: int) -> Iterator[tuple[int, Walked]]:
    """Walked files with no location yet, in walk order (a folder's files together): ``(order, file)``."""
    for row in _pages(conn, "SELECT walked.rowid AS n, walked.* FROM temp.walked LEFT JOIN locations ON "
                            "locations.library_id = ? AND locations.path = walked.path WHERE locations.id IS NULL "
                            "AND walked.rowid > ? ORDER BY walked.rowid LIMIT ?", (library_id,), "n"):
        yield row["n"], Walked(row["path"], row["size"], row["mtime_ns"], row["problem"])


def changed_locations(conn: sqlite3.Connection, library_id: int) -> Iterator[Changed]:
    """Locations (not excluded) whose file the walk saw with another size or mtime, or another problem."""
    for row in _pages(conn, "SELECT locations.*, walked.size AS now_size, walked.mtime_ns AS now_mtime, "
                            "walked.problem AS now_problem FROM locations JOIN temp.walked ON walked.path = "
                            "locations.path WHERE locations.library_id = ? AND locations.excluded = 0 AND "
                            "(locations.size <> walked.size OR locations.mtime_ns <> walked.mtime_ns OR "
                            "(walked.problem IS NOT NULL AND locations.error IS NOT walked.problem)) "
                            "AND locations.id > ? ORDER BY locations.id LIMIT ?", (library_id,), "id"):
        location = {key: row[key] for key in LocationRow.__annotations__}
        yield Changed(_location(location), Walked(row["path"], row["now_size"], row["now_mtime"], row["now_problem"]))


def vanished_locations(conn: sqlite3.Connection, library_id: int) -> Iterator[LocationRow]:
    """Locations whose file the walk did not find (those beneath a folder it could not read aside)."""
    blind = blind_folders(conn)
    for row in _pages(conn, "SELECT locations.* FROM locations LEFT JOIN temp.walked ON walked.path = locations.path "
                            "WHERE locations.library_id = ? AND walked.path IS NULL AND locations.id > ? "
                            "ORDER BY locations.id LIMIT ?", (library_id,), "id"):
        if not any(row["path"].startswith(folder + "/") for folder in blind):
            yield _location(row)


# A job item that will still run: queued or running, in a job neither cancelled nor failed.
_LIVE_ITEM = (f"SELECT 1 FROM job_items JOIN jobs ON jobs.id = job_items.job_id WHERE job_items.location_id = "
              f"locations.id AND job_items.status IN ({marks(LIVE_ITEM_STATES)}) AND jobs.cancelled = 0 AND "
              "jobs.error IS NULL")


def unfinished_locations(conn: sqlite3.Connection, library_id: int) -> Iterator[LocationRow]:
    """Locations waiting to be ingested (not failed, excluded or a motion clip) that no live item ingests:
    their job was cancelled or failed, or its items were lost."""
    for row in _pages(conn, "SELECT locations.* FROM locations WHERE library_id = ? AND media_id IS NULL AND "
                            "error IS NULL AND excluded = 0 AND motion_of IS NULL AND NOT EXISTS "
                            f"({_LIVE_ITEM}) AND locations.id > ? ORDER BY locations.id LIMIT ?",
                      (library_id, *LIVE_ITEM_STATES), "id"):
        yield _location(row)


def being_ingested(conn: sqlite3.Connection, location_id: int) -> bool:
    """A live job item ingests this location already."""
    found = conn.execute(f"SELECT EXISTS ({_LIVE_ITEM}) FROM locations WHERE locations.id = ?",
                         (*LIVE_ITEM_STATES, location_id)).fetchone()
    return bool(found and found[0])


def location_by_path(conn: sqlite3.Connection, library_id: int, path: str) -> LocationRow | None:
    found = conn.execute("SELECT * FROM locations WHERE library_id=? AND path=?", (library_id, path)).fetchone()
    return None if found is None else _location(found)


def motion_clip_of(conn: sqlite3.Connection, still_id: int) -> LocationRow | None:
    found = conn.execute("SELECT * FROM locations WHERE motion_of=? ORDER BY id LIMIT 1", (still_id,)).fetchone()
    return None if found is None else _location(found)


def has_locations(conn: sqlite3.Connection, library_id: int) -> bool:
    return conn.execute("SELECT 1 FROM locations WHERE library_id=? LIMIT 1", (library_id,)).fetchone() is not None


# -- scan jobs -------------------------------------------------------------------------------------------
class NewItem(NamedTuple):
    file: str                  # relative to the library's folder
    stored_path: str           # the file's absolute path
    location_id: int
    motion_path: str | None = None  # a Live Photo's motion clip (absolute), ingested with its photo
    failed: str | None = None  # recorded failed at once (the walk could not read it)


def create_scan_job(conn: sqlite3.Connection, library_id: int, source: str, folder: str,
                    job_id: str | None = None) -> str:
    """A job for the files a scan of a library found to ingest (its items are added by add_items)."""
    job_id = job_id or new_job_id()
    conn.execute("INSERT INTO jobs(id, source, folder, created_at, library_id) VALUES (?,?,?,?,?)",
                 (job_id, source, folder, time.time(), library_id))
    return job_id


def add_items(conn: sqlite3.Connection, job_id: str, items: list[NewItem]) -> list[int]:
    """Job items for library files; returns the ids of those queued (the failed ones are recorded as such)."""
    now, queued = time.time(), []
    with transaction(conn):
        for item in items:
            status = ItemStatus.QUEUED if item.failed is None else ItemStatus.FAILED
            item_id = conn.execute(
                "INSERT INTO job_items(job_id, file, stored_path, status, reason, updated_at, location_id, motion_path) "
                "VALUES (?,?,?,?,?,?,?,?)", (job_id, item.file, item.stored_path, status, item.failed, now,
                                             item.location_id, item.motion_path)).lastrowid
            if item.failed is None:
                queued.append(item_id)
    return queued


def keep_upload_copy(conn: sqlite3.Connection, media_id: int, path: str) -> None:
    """An upload of content known only from a library is kept as the media's copy (an upload lives in the
    data volume, whatever happens to the library)."""
    conn.execute("UPDATE media SET path=? WHERE id=? AND path=''", (path, media_id))
