"""The watcher: one process for all libraries that asks for a scan of a library when its folder changes.

- One at a time: it works only while it holds a Redis lock (``WATCHER_LOCK``, refreshed, expiring if it
  dies); a second watcher waits as a standby and takes over when the first is gone.
- Changes: watchfiles (inotify on Linux) over every library's folder; the changes of a library are
  grouped (watchfiles' debounce) and become one scan request (SCAN_LIBRARY_TASK; a scan already waiting in
  the queue is enough, one running goes once more). The scans run on the ingest workers.
- A folder that goes away (an unmounted disk, a NAS offline) or comes back: a scan at once (the library
  becomes unavailable, or ready again), and the watches follow.
- Periodically (MEDIASEARCH_LIBRARY_RESCAN_MINUTES) a scan of every library: network mounts, where inotify
  sees nothing, and whatever was missed.
- inotify needs one watch per folder, up to the OS's limit (fs.inotify.max_user_watches; beyond it,
  ENOSPC). The scans count each library's folders: the libraries that fit within WATCH_SHARE of the limit
  are watched, in the order they were added; the others are rescanned periodically only, and say so
  (GET /libraries: "watching": false with the reason). Should inotify fail anyway, watchfiles falls back
  to polling, which is paced like the periodic rescans.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import redis
import watchfiles

from shared import catalog
from shared.catalog import libraries as catalog_libraries
from shared.catalog.libraries import LibraryRow
from shared.libraries.requests import WATCHER_LOCK, request_scan
from shared.settings import Settings

log = logging.getLogger("mediasearch.watcher")

LOCK_TTL_S = 30.0
STANDBY_S = 5.0      # how often a standby watcher tries to take the lock
TICK_S = 1.0         # how often the watch loop looks around (lock, folders, periodic scans)
PLAN_EVERY_S = 5.0   # how often the libraries and their folders are read again
DEBOUNCE_MS = 2000   # changes grouped into one scan request
WATCH_SHARE = 0.8    # of the OS's inotify watches, for the libraries (other programs use some)
INOTIFY_LIMIT = Path("/proc/sys/fs/inotify/max_user_watches")
OVER_LIMIT = ("its {folders} folders are beyond what the OS lets one user watch ({limit} inotify watches in "
              "all: fs.inotify.max_user_watches): rescanned every {minutes:g} min instead")
NO_INOTIFY = "this system has no inotify: rescanned every {minutes:g} min instead"
MISSING = "its folder is missing: rescanned every {minutes:g} min until it is back"


def inotify_limit() -> int | None:
    """The OS's limit of inotify watches per user; None where there is no inotify."""
    try:
        return int(INOTIFY_LIMIT.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class WatchPlan:
    roots: dict[int, Path]            # the libraries watched: their folders
    notes: dict[int, str | None]      # every library: None when watched, else why not
    present: frozenset[int]           # the libraries whose folder is there


def plan_watches(libraries: Iterable[LibraryRow], limit: int | None, rescan_minutes: float) -> WatchPlan:
    """Which libraries to watch: those whose folders are there and fit in the inotify budget, oldest first."""
    roots: dict[int, Path] = {}
    notes: dict[int, str | None] = {}
    present = set()
    budget = None if limit is None else int(limit * WATCH_SHARE)
    for library in libraries:
        root = Path(library["path"])
        if not root.is_dir():
            notes[library["id"]] = MISSING.format(minutes=rescan_minutes)
            continue
        present.add(library["id"])
        if budget is None:
            notes[library["id"]] = NO_INOTIFY.format(minutes=rescan_minutes)
        elif library["folders"] > budget:
            notes[library["id"]] = OVER_LIMIT.format(folders=library["folders"], limit=limit, minutes=rescan_minutes)
        else:
            budget -= max(1, library["folders"])
            roots[library["id"]] = root
            notes[library["id"]] = None
    return WatchPlan(roots, notes, frozenset(present))


def owners(roots: dict[int, Path], changed: str) -> list[int]:
    """The libraries a changed path lies in (nested libraries: each of them)."""
    path = Path(changed)
    return [library_id for library_id, root in roots.items() if path == root or path.is_relative_to(root)]


@dataclass
class _Stop:
    """What ends a watch: the process stopping, or the plan changing (watchfiles asks ``is_set``)."""
    stopping: threading.Event
    replan: threading.Event = field(default_factory=threading.Event)

    def is_set(self) -> bool:
        return self.stopping.is_set() or self.replan.is_set()


class Watcher:
    def __init__(self, settings: Settings, client: redis.Redis, send_scan: Callable[[int], object],
                 limit: Callable[[], int | None] = inotify_limit, clock: Callable[[], float] = time.time):
        self.settings = settings
        self.client = client
        self.send_scan = send_scan
        self.limit = limit
        self.clock = clock
        self.id = f"watcher-{uuid.uuid4().hex[:12]}"
        self.interval_s = settings.library_rescan_minutes * 60
        self.requested: dict[int, float] = {}  # when this watcher last asked for a scan of each library
        self._lock_refreshed = 0.0

    # -- the lock --------------------------------------------------------------------------------------------
    def hold_lock(self) -> bool:
        """Take or keep the watcher lock; False when another watcher holds it (or Redis cannot say)."""
        try:
            if self.client.set(WATCHER_LOCK, self.id, nx=True, px=int(LOCK_TTL_S * 1000)):
                self._lock_refreshed = time.monotonic()
                log.info("watcher %s: watching the libraries", self.id)
                return True
            if self.client.get(WATCHER_LOCK) != self.id.encode():
                return False
            if time.monotonic() - self._lock_refreshed > LOCK_TTL_S / 3:
                self.client.pexpire(WATCHER_LOCK, int(LOCK_TTL_S * 1000))
                self._lock_refreshed = time.monotonic()
            return True
        except redis.RedisError as exc:
            log.warning("watcher: Redis unavailable (%s); waiting", exc)
            return False

    def release_lock(self) -> None:
        try:
            if self.client.get(WATCHER_LOCK) == self.id.encode():
                self.client.delete(WATCHER_LOCK)
        except redis.RedisError:
            pass  # it expires

    # -- the loop --------------------------------------------------------------------------------------------
    def run(self, stopping: threading.Event) -> None:
        conn = catalog.connect(self.settings.catalog_path)
        try:
            while not stopping.is_set():
                if not self.hold_lock():
                    stopping.wait(STANDBY_S)
                    continue
                try:
                    self.watch(conn, _Stop(stopping))
                except Exception:  # noqa: BLE001 (a folder that vanished under inotify, the catalog busy: again)
                    log.exception("watching the libraries failed; starting again")
                    stopping.wait(TICK_S)
        finally:
            self.release_lock()
            conn.close()

    def plan(self, conn) -> tuple[WatchPlan, list[LibraryRow]]:
        libraries = [library for library in catalog_libraries.all_libraries(conn) if not library["one_off"]]
        return plan_watches(libraries, self.limit(), self.settings.library_rescan_minutes), libraries

    def watch(self, conn, stop: _Stop) -> None:
        """Watch the libraries of the current plan until the plan changes, the lock is lost or it stops."""
        plan, libraries = self.plan(conn)
        catalog_libraries.set_watching(conn, plan.notes)
        self._periodic(libraries)
        if plan.roots:
            log.info("watching %d libraries (%s)", len(plan.roots), ", ".join(str(p) for p in plan.roots.values()))
        for library_id, note in plan.notes.items():
            if note is not None:
                log.info("library %s is not watched: %s", library_id, note)
        last_look = time.monotonic()
        for changes in self._changes(plan, stop):
            touched = {library_id for _, path in changes for library_id in owners(plan.roots, path)}
            for library_id in touched:
                self._request(library_id)
            if time.monotonic() - last_look >= PLAN_EVERY_S:
                last_look = time.monotonic()
                if not self.hold_lock() or self._replanned(conn, plan):
                    stop.replan.set()

    def _changes(self, plan: WatchPlan, stop: _Stop) -> Iterable[set[tuple[watchfiles.Change, str]]]:
        """Sets of changes (empty ones every TICK_S, so the loop looks around) until ``stop``."""
        if not plan.roots:
            while not stop.is_set():
                yield set()
                stop.stopping.wait(TICK_S)
            return
        yield from watchfiles.watch(
            *plan.roots.values(), watch_filter=None, debounce=DEBOUNCE_MS, stop_event=stop,
            rust_timeout=int(TICK_S * 1000), yield_on_timeout=True, raise_interrupt=False, force_polling=False,
            poll_delay_ms=int(self.interval_s * 1000), ignore_permission_denied=True)

    def _replanned(self, conn, plan: WatchPlan) -> bool:
        """Read the libraries again: scan those whose folder went or came back, the periodic ones that are
        due; True when the watches must change."""
        new_plan, libraries = self.plan(conn)
        for library_id in new_plan.present ^ plan.present:  # a folder went away or came back
            if library_id in new_plan.notes:
                self._request(library_id)
        self._periodic(libraries)
        return new_plan != plan

    def _periodic(self, libraries: list[LibraryRow]) -> None:
        now = self.clock()
        for library in libraries:
            last = max(library["last_scan_at"] or 0.0, self.requested.get(library["id"], 0.0))
            if now - last >= self.interval_s:
                self._request(library["id"])

    def _request(self, library_id: int) -> None:
        self.requested[library_id] = self.clock()
        try:
            if request_scan(self.client, self.send_scan, library_id):
                log.info("asked for a scan of library %s", library_id)
        except Exception as exc:  # noqa: BLE001 (the queue down: the next change or round asks again)
            log.warning("could not ask for a scan of library %s: %s", library_id, exc)
