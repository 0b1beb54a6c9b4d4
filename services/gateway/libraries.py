"""Libraries: server folders indexed in place (shared/libraries/), as the API shows and changes them, and
POST /ingest, a one-off scan of a folder.

Scans of libraries run on the ingest workers (a Celery task, asked for here and by the watcher); the one
of POST /ingest runs here, in the request, so that its job exists with its items when the answer says
its id. Either way one scan of a library runs at a time (shared/libraries/requests.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import redis

from services.gateway.state import Gateway
from shared import catalog
from shared.catalog import libraries as catalog_libraries
from shared.catalog.libraries import LibraryStatus, LibrarySummary
from shared.durable import ensure_room
from shared.errors import BadInput, Conflict, Forbidden, NotFound, Unavailable
from shared.internal_auth import internal_secret
from shared.libraries import requests
from shared.libraries.forget import Forgotten, forget_everywhere
from shared.libraries.scan import ScanServices, scan_library
from shared.queue import SCAN_LIBRARY_TASK
from shared.schemas import FileError, JobCreated, LibraryDeleted, LibraryInfo, LibraryList
from shared.settings import Settings

NO_WATCHER = "no watcher is running (python -m services.watcher; `make run` and compose start one)"
ONE_OFF = "a one-off folder (POST /ingest): scanned when asked"
SCAN_WAIT_S = 30.0  # how long POST /ingest and DELETE wait for a running scan of the same library


def allowed_folder(settings: Settings, requested: str) -> Path:
    """The real folder behind ``requested`` if it lies under an ingest root (after following symlinks)."""
    if not settings.ingest_roots:
        raise Forbidden("server-side folders are disabled: set MEDIASEARCH_INGEST_ROOTS")
    if "\0" in requested:
        raise BadInput("path contains a NUL byte")
    path = Path(requested)
    if not path.is_absolute():
        raise BadInput(f"give an absolute path under one of the ingest roots: "
                       f"{', '.join(str(r) for r in settings.ingest_roots)}")
    real = path.resolve()
    roots = [root.resolve() for root in settings.ingest_roots]
    if not any(real.is_relative_to(root) for root in roots):
        raise Forbidden(f"{requested!r} is outside the ingest roots "
                        f"({', '.join(str(r) for r in roots)}); symlinks and '..' are followed first")
    if not real.exists():
        raise NotFound(f"no such folder: {requested!r}")
    if not real.is_dir():
        raise BadInput(f"{requested!r} is not a folder")
    return real


# -- reading ---------------------------------------------------------------------------------------------
def _watcher_running(gateway: Gateway) -> bool:
    try:
        return bool(gateway.redis.exists(requests.WATCHER_LOCK))
    except redis.RedisError:
        return False


def _info(gateway: Gateway, library: LibrarySummary, watcher: bool) -> LibraryInfo:
    status = library["status"]
    if status == LibraryStatus.READY and library["busy"]:
        status = LibraryStatus.SCANNING  # its files are still being ingested
    if library["one_off"]:
        watching, note = False, ONE_OFF
    elif not watcher:
        watching, note = False, NO_WATCHER
    else:
        watching, note = bool(library["watching"]), library["watch_note"]
    errors = catalog_libraries.library_errors(gateway.catalog(), library["id"])
    return LibraryInfo(
        id=library["id"], name=library["name"], path=library["path"], status=status,
        status_reason=library["status_reason"], one_off=bool(library["one_off"]), watching=watching,
        watch_note=note, media=library["media"], failed=library["failed"], last_scan_at=library["last_scan_at"],
        created_at=library["created_at"], errors=[FileError(**error) for error in errors])


def list_libraries(gateway: Gateway) -> LibraryList:
    watcher = _watcher_running(gateway)
    return LibraryList(libraries=[_info(gateway, library, watcher)
                                  for library in catalog_libraries.library_summaries(gateway.catalog())])


def library_info(gateway: Gateway, library_id: int) -> LibraryInfo:
    found = catalog_libraries.library_summaries(gateway.catalog(), library_id)
    if not found:
        raise NotFound(f"no library with id {library_id}")
    return _info(gateway, found[0], _watcher_running(gateway))


# -- changing ------------------------------------------------------------------------------------------
def _checked_name(name: str | None) -> str | None:
    if name is None:
        return None
    name = name.strip()
    if not name or "/" in name or "\\" in name or "\0" in name:
        raise BadInput("a library's name must be some text without '/', '\\' or NUL (it begins its media's folder)")
    return name


def _free_name(conn, wanted: str) -> str:
    """``wanted``, or ``wanted (2)``, ``(3)``, ... if a library has that name."""
    taken = catalog_libraries.library_names(conn)
    name, number = wanted, 1
    while name in taken:
        number += 1
        name = f"{wanted} ({number})"
    return name


def create_library(gateway: Gateway, path: str, name: str | None) -> LibraryInfo:
    """A folder becomes a library (a one-off folder of POST /ingest becomes watched); its first scan is
    queued. Conflict when it is a library already, or the name is taken."""
    folder = allowed_folder(gateway.settings, path)
    name = _checked_name(name)
    conn = gateway.catalog()
    with catalog.transaction(conn):
        existing = catalog_libraries.library_by_path(conn, str(folder))
        if existing is not None and not existing["one_off"]:
            raise Conflict(f"{str(folder)!r} is a library already: {existing['name']!r} (id {existing['id']})")
        if name is not None and name in catalog_libraries.library_names(conn) - (
                {existing["name"]} if existing else set()):
            raise Conflict(f"a library is named {name!r} already")
        if existing is not None:
            library_id = existing["id"]
            catalog_libraries.make_watched(conn, library_id, name)
        else:
            library_id = catalog_libraries.insert_library(conn, name or _free_name(conn, folder.name or "Library"),
                                                          str(folder))
    try:
        _queue_scan(gateway, library_id)
    except Unavailable:
        if existing is None:  # nothing of it is left behind; the caller tries again
            catalog_libraries.delete_library(conn, library_id)
        raise
    return library_info(gateway, library_id)


def request_scan(gateway: Gateway, library_id: int) -> LibraryInfo:
    """Queue a scan of the library now (one already waiting in the queue is enough)."""
    if catalog_libraries.get_library(gateway.catalog(), library_id) is None:
        raise NotFound(f"no library with id {library_id}")
    _queue_scan(gateway, library_id)
    return library_info(gateway, library_id)


def _queue_scan(gateway: Gateway, library_id: int) -> None:
    try:
        requests.request_scan(gateway.redis, lambda lid: gateway.queue.celery.send_task(SCAN_LIBRARY_TASK, args=[lid]),
                              library_id)
    except Exception as exc:  # Redis or the broker
        raise Unavailable(f"the task queue (Redis) is unavailable: {exc}") from exc
    catalog_libraries.set_status(gateway.catalog(), library_id, LibraryStatus.SCANNING)


async def delete_library(gateway: Gateway, library_id: int) -> LibraryDeleted:
    """Forget a library: its scans' waiting files are cancelled, its media with no other original (a file
    in another library, an upload) leave the catalog and the index. Its files are never touched."""
    def remove() -> Forgotten:
        conn = gateway.catalog()
        if catalog_libraries.get_library(conn, library_id) is None:
            raise NotFound(f"no library with id {library_id}")

        def forget_all(_keep_alive: Callable[[], None]) -> Forgotten:
            for job_id in catalog_libraries.live_jobs(conn, library_id):
                catalog.cancel_job(conn, job_id)
            orphans = catalog_libraries.delete_library(conn, library_id)
            if orphans is None:
                raise NotFound(f"no library with id {library_id}")
            return _forgetter(gateway)(orphans)

        forgotten = requests.run_exclusively(gateway.redis, library_id, forget_all, wait_s=SCAN_WAIT_S)
        if forgotten is None:
            raise Conflict("a scan of this library is running; try again when it is done")
        return forgotten

    forgotten = await anyio.to_thread.run_sync(remove)
    return LibraryDeleted(id=library_id, media=len(forgotten.media), rows=forgotten.rows, partial=forgotten.partial)


def _forgetter(gateway: Gateway) -> Callable[[list[int]], Forgotten]:
    """Media out of the catalog, every index shard and the data volume, from a request's thread."""
    settings = gateway.settings
    return lambda media_ids: forget_everywhere(gateway.catalog(), gateway.store, settings.index_urls, media_ids,
                                               secret=internal_secret(settings))


# -- POST /ingest: a one-off scan -----------------------------------------------------------------------------
def ingest_folder(gateway: Gateway, requested: str) -> JobCreated:
    """Scan a folder in place, once (nothing is copied; no cap on its size): it is recorded as a one-off
    library (unless it is a library already), its new and changed files are queued as the items of a job,
    deleted ones leave. The job may be empty: nothing changed since the last time."""
    settings = gateway.settings
    folder = allowed_folder(settings, requested)
    ensure_room(settings.media_dir, 0, settings.disk_reserve_bytes, f"the frames of {requested!r}")
    conn = gateway.catalog()
    with catalog.transaction(conn):
        existing = catalog_libraries.library_by_path(conn, str(folder))
        library_id = existing["id"] if existing else catalog_libraries.insert_library(
            conn, _free_name(conn, folder.name or "Folder"), str(folder), one_off=True)
    queue_failure: list[Unavailable] = []

    def enqueue(item_ids: list[int]) -> None:
        if not queue_failure:
            try:
                gateway.queue.ingest(item_ids)
            except Unavailable as exc:  # recorded: the job is failed below; the next scan queues them again
                queue_failure.append(exc)

    services = ScanServices(conn, settings, gateway.store, enqueue, _forgetter(gateway))

    def scan(keep_alive: Callable[[], None]):
        services.keep_alive = keep_alive
        return scan_library(library_id, services, source="folder")

    report = requests.run_exclusively(gateway.redis, library_id, scan, wait_s=SCAN_WAIT_S)
    if report is None:
        raise Conflict(f"a scan of {requested!r} is running; try again when it is done")
    if report.status == LibraryStatus.UNAVAILABLE:
        raise NotFound(f"{requested!r} cannot be scanned: {report.reason}")
    if existing is None and report.files == 0:
        catalog_libraries.delete_library(conn, library_id)
        raise BadInput(f"{requested!r} holds no files (hidden files and NAS clutter are skipped)")
    job_id = report.job_id or catalog_libraries.create_scan_job(conn, library_id, "folder", str(folder))
    if queue_failure:
        catalog.fail_job(conn, job_id, f"could not queue the files: {queue_failure[0].__cause__}")
        raise queue_failure[0]
    return JobCreated(job_id=job_id, library_id=library_id)
