"""A scan of one library: its folder walked (walk.py) and compared with its locations (catalog.libraries).

- new file: a location and a job item to ingest it (the item hashes and decodes it; content already
  stored only gains a location, nothing is decoded again). A Live Photo's still and clip found together
  are one item, the clip riding along (job_items.motion_path).
- changed file (size or mtime): an item to ingest it again; the location keeps its media until the item
  has read the new content (the same content, e.g. a touched file, is only re-recorded).
- deleted file: its location goes; a media item left with no location and no copy in the data volume leaves
  the catalog and the index (forget).
- moved or renamed file: the new files whose size equals that of a vanished location's are hashed; one
  whose content a vanished location had is that location, moved: its media keeps its id, vectors, albums
  and collections, and nothing is decoded or embedded again. A hashed file whose content is already stored
  (another location, an upload) becomes a location of that media at once.
- a file whose content the user excluded (deleted from search) is recorded excluded.

An unchanged tree costs one stat per file and no hashing; the only catalog writes are the library's
status and scan time. Safety: a folder that is missing, unreadable or suddenly empty (an unmounted disk,
a NAS offline) makes the library ``unavailable`` and nothing is removed; a subfolder that cannot be read
keeps what was known beneath it.

One scan of a library runs at a time (requests.py holds a Redis lock around it).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path, PurePosixPath

from shared.catalog import libraries as catalog_libraries
from shared.catalog import media_by_sha, transaction
from shared.catalog.libraries import LibraryRow, LibraryStatus, LocationRow, NewItem, Walked
from shared.libraries.exclusions import Exclusions
from shared.libraries.walk import WalkCounts, walk
from shared.live_photos import pair_live_photos
from shared.media_store import MediaStore
from shared.safe_open import RefusedFile, open_beneath
from shared.settings import Settings

log = logging.getLogger("mediasearch.libraries")

BATCH = 500          # files recorded (locations and items) per transaction, then queued
WALK_BATCH = 1000    # walked files written to the TEMP table at once
MISSING = "its folder {path} is missing: an unmounted disk or a NAS offline? Nothing was removed; it is " \
          "rescanned when the folder is back"
UNREADABLE = "its folder {path} cannot be read ({error}); nothing was removed"
EMPTY = "its folder {path} is empty: an unmounted disk or a NAS offline? Nothing was removed (remove the " \
        "library to forget its files)"
OUTSIDE = "its folder {path} is no longer under the ingest roots (MEDIASEARCH_INGEST_ROOTS)"


@dataclass
class ScanReport:
    library_id: int
    status: LibraryStatus
    reason: str | None = None  # why it is unavailable
    files: int = 0        # files the walk found
    folders: int = 0
    queued: int = 0       # files queued to be ingested (new, changed, or left unfinished before)
    failed: int = 0       # files the walk could not read
    moved: int = 0        # locations found at a new path (their media kept)
    linked: int = 0       # new locations of stored content (nothing decoded)
    excluded: int = 0     # new files with content the user excluded
    removed: int = 0      # locations whose files are gone
    forgotten: int = 0    # media that left the catalog and the index
    released: int = 0     # copies in the data volume a location stands for now
    hashed: int = 0       # files read whole by the scan (to recognise moves)
    job_id: str | None = None


@dataclass
class ScanServices:
    """What a scan acts through: the catalog, the data volume, the queue and the index."""
    conn: sqlite3.Connection
    settings: Settings
    store: MediaStore
    enqueue: Callable[[list[int]], None]      # send the ingest tasks of these job items
    forget: Callable[[list[int]], object]     # media out of the catalog, the index and the data volume
    keep_alive: Callable[[], None] = lambda: None  # called as the scan goes (refreshes its lock)


def unavailable_reason(root: Path, settings: Settings) -> str | None:
    """Why a library's folder cannot be scanned now; None when it can."""
    if not any(root.is_relative_to(allowed.resolve()) for allowed in settings.ingest_roots):
        return OUTSIDE.format(path=root)
    if not root.is_dir():
        return MISSING.format(path=root)
    return None


def scan_library(library_id: int, services: ScanServices, source: str = "library") -> ScanReport | None:
    """Scan a library (see the module's docstring); None for an unknown library. ``source`` names the job of
    the files it queues ('library', or 'folder' for POST /ingest)."""
    conn = services.conn
    library = catalog_libraries.get_library(conn, library_id)
    if library is None:
        return None
    root = Path(library["path"])
    report = ScanReport(library_id, LibraryStatus.SCANNING)
    reason = unavailable_reason(root, services.settings)
    if reason is None:
        catalog_libraries.set_status(conn, library_id, LibraryStatus.SCANNING)
        counts = WalkCounts()
        try:
            _walk_into_catalog(conn, root, services, counts)
        except OSError as exc:
            reason = UNREADABLE.format(path=root, error=exc.strerror or exc)
        else:
            report.files, report.folders = counts.files, counts.folders
            if counts.files == 0 and not counts.blind and catalog_libraries.has_locations(conn, library_id):
                reason = EMPTY.format(path=root)
    if reason is not None:
        catalog_libraries.set_status(conn, library_id, LibraryStatus.UNAVAILABLE, reason)
        report.status, report.reason = LibraryStatus.UNAVAILABLE, reason
        log.warning("library %s (%s) is unavailable: %s", library_id, library["name"], reason)
        return report
    try:
        _Comparison(library, root, services, report, source).run()
    finally:
        catalog_libraries.end_walk(conn)
    catalog_libraries.finish_scan(conn, library_id, report.folders, time.time())
    report.status = LibraryStatus.READY
    log.info("scanned library %s (%s): %s", library_id, library["name"], report)
    return report


def _walk_into_catalog(conn: sqlite3.Connection, root: Path, services: ScanServices, counts: WalkCounts) -> None:
    catalog_libraries.start_walk(conn)
    batch: list[Walked] = []
    for found in walk(root, Exclusions(services.settings.library_exclude), counts):
        batch.append(found)
        if len(batch) >= WALK_BATCH:
            catalog_libraries.add_walked(conn, batch)
            batch.clear()
            services.keep_alive()
    catalog_libraries.add_walked(conn, batch)
    catalog_libraries.add_blind(conn, counts.blind)


@dataclass
class _Comparison:
    """The walk (in TEMP tables) against the library's locations, and what follows from the differences."""
    library: LibraryRow
    root: Path
    services: ScanServices
    report: ScanReport
    source: str
    pending: list[tuple[Walked, Walked | None]] = field(default_factory=list)  # new files (and their clips)
    requeued: list[NewItem] = field(default_factory=list)  # known locations to ingest again
    maybe_orphans: list[int] = field(default_factory=list)  # media that lost a location
    release: list[str] = field(default_factory=list)

    @property
    def conn(self) -> sqlite3.Connection:
        return self.services.conn

    def run(self) -> None:
        library_id = self.library["id"]
        vanished = list(catalog_libraries.vanished_locations(self.conn, library_id))
        # A move keeps the size: only new files of a vanished location's size are worth hashing.
        movable: dict[int, dict[str, LocationRow]] = {}
        for location in vanished:
            if location["sha256"] is not None and (location["media_id"] is not None or location["excluded"]):
                movable.setdefault(location["size"], {})[location["sha256"]] = location
        moved: set[int] = set()
        for _, folder in groupby(catalog_libraries.new_files(self.conn, library_id),
                                 key=lambda found: PurePosixPath(found[1].path).parent):
            self._new_folder([found for _, found in folder], movable, moved)
        self._flush()
        for changed in catalog_libraries.changed_locations(self.conn, library_id):
            self._changed(changed)
        self._flush()
        for location in catalog_libraries.unfinished_locations(self.conn, library_id):
            self._requeue(location)
        self._flush()
        gone = [location["id"] for location in vanished if location["id"] not in moved]
        if gone:
            self.maybe_orphans += catalog_libraries.remove_locations(self.conn, gone)
            self.report.removed = len(gone)
        self.services.store.remove(self.release)
        self.report.released = len(self.release)
        orphans = catalog_libraries.orphans(self.conn, self.maybe_orphans)  # again: a later file may hold them
        if orphans:
            self.services.forget(orphans)
            self.report.forgotten = len(orphans)

    # -- new files --------------------------------------------------------------------------------------
    def _new_folder(self, files: list[Walked], movable: dict[int, dict[str, LocationRow]], moved: set[int]) -> None:
        """The new files of one folder (a Live Photo's still and clip lie side by side)."""
        pairs = pair_live_photos((found.path, found.size) for found in files if found.problem is None)
        clips = set(pairs.values())
        by_path = {found.path: found for found in files}
        for found in files:
            if found.path in clips:
                continue  # rides along with its still
            clip = by_path.get(pairs.get(found.path, ""))
            if found.problem is None and found.size in movable:
                content = self._hash(found)
                known = None if content is None else self._known_content(found, content, movable[found.size], moved)
                if known is not None:
                    if clip is not None:  # beside a photo known already: recorded as its clip, nothing to ingest
                        catalog_libraries.insert_location(self.conn, self.library["id"], clip, motion_of=known)
                    continue
            self.pending.append((found, clip))
            if len(self.pending) >= BATCH:
                self._flush()
        self.services.keep_alive()

    def _hash(self, found: Walked) -> str | None:
        try:
            with open_beneath(self.root / found.path, [self.root]) as opened:
                self.report.hashed += 1
                return opened.sha256()
        except (RefusedFile, OSError):
            return None  # its item says what is wrong with it

    def _known_content(self, found: Walked, sha256: str, vanished: dict[str, LocationRow],
                       moved: set[int]) -> int | None:
        """A vanished location moved here, or content stored (or excluded) before: recorded without decoding
        anything; returns its location. None: content to ingest."""
        conn, library_id = self.conn, self.library["id"]
        location = vanished.pop(sha256, None)
        if location is not None:
            catalog_libraries.move_location(conn, location["id"], found.path, found.size, found.mtime_ns)
            moved.add(location["id"])
            self.report.moved += 1
            return location["id"]
        if catalog_libraries.content_excluded(conn, library_id, sha256):
            self.report.excluded += 1
            return catalog_libraries.insert_location(conn, library_id, found, sha256=sha256, excluded=True)
        media = media_by_sha(conn, sha256)
        if media is None:
            return None
        with transaction(conn):
            location_id = catalog_libraries.insert_location(conn, library_id, found)
            settled = catalog_libraries.bind_location(conn, location_id, media["id"], sha256, found.size,
                                                      found.mtime_ns)
        self.release += settled.release
        self.report.linked += 1
        return location_id

    # -- known locations ----------------------------------------------------------------------------------
    def _changed(self, changed: catalog_libraries.Changed) -> None:
        location, now = changed
        if now.problem is not None:
            self.maybe_orphans += catalog_libraries.set_location_problem(self.conn, location["id"], now)
            self.requeued.append(self._item(now, location["id"], failed=now.problem))
        elif location["motion_of"] is not None:  # a Live Photo's clip: its still is ingested again with it
            with transaction(self.conn):
                self.conn.execute("UPDATE locations SET size=?, mtime_ns=? WHERE id=?",
                                  (now.size, now.mtime_ns, location["id"]))
            still = catalog_libraries.get_location(self.conn, location["motion_of"])
            if still is not None:
                self._requeue(still)
        else:
            self._requeue(location)
        if len(self.requeued) >= BATCH:
            self._flush()

    def _requeue(self, location: LocationRow) -> None:
        if location["excluded"] or catalog_libraries.being_ingested(self.conn, location["id"]):
            return
        clip = catalog_libraries.motion_clip_of(self.conn, location["id"])
        self.requeued.append(self._item(Walked(location["path"], location["size"], location["mtime_ns"]),
                                        location["id"], clip=clip["path"] if clip else None))
        if len(self.requeued) >= BATCH:
            self._flush()

    def _item(self, found: Walked, location_id: int, clip: str | None = None, failed: str | None = None) -> NewItem:
        return NewItem(found.path, str(self.root / found.path), location_id,
                       str(self.root / clip) if clip else None, failed)

    # -- recording and queueing ---------------------------------------------------------------------------
    def _flush(self) -> None:
        """Record the pending new files (a location each, and an item) and the known locations to ingest
        again, in one transaction; then queue their items."""
        if not self.pending and not self.requeued:
            return
        conn, library_id = self.conn, self.library["id"]
        with transaction(conn):
            if self.report.job_id is None:
                self.report.job_id = catalog_libraries.create_scan_job(conn, library_id, self.source,
                                                                       self.library["path"])
            items = list(self.requeued)
            for found, clip in self.pending:
                location_id = catalog_libraries.insert_location(conn, library_id, found)
                if clip is not None:
                    catalog_libraries.insert_location(conn, library_id, clip, motion_of=location_id)
                items.append(self._item(found, location_id, clip.path if clip else None, found.problem))
            queued = catalog_libraries.add_items(conn, self.report.job_id, items)
        self.report.failed += len(items) - len(queued)
        self.report.queued += len(queued)
        self.pending.clear()
        self.requeued.clear()
        self.services.enqueue(queued)
        self.services.keep_alive()
