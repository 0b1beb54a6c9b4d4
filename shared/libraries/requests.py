"""Asking for library scans and running them one at a time per library, over Redis.

A scan runs as a Celery task on an ingest worker (SCAN_LIBRARY_TASK), or in the gateway for POST /ingest.
Whoever runs one holds the library's lock (``mediasearch:library-scan:<id>``, refreshed as the scan goes,
expiring if its holder dies). A scan asked for while one runs is not lost: the request leaves a mark and the
running scan goes once more when it is done (changes that came during a scan are seen). Requests that
reach the queue while a scan task of the library waits there already are dropped (one waiting is enough).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import redis
from redis.exceptions import LockError

log = logging.getLogger("mediasearch.libraries")

T = TypeVar("T")
LOCK_TTL_S = 60.0
QUEUED_TTL_S = 120  # a queued scan task lost on the way stops blocking new requests after this
RESCAN_TTL_S = 3600
WATCHER_LOCK = "mediasearch:watcher"  # held by the one running watcher (services/watcher)
_LOCK = "mediasearch:library-scan:{}"
_QUEUED = "mediasearch:library-scan-queued:{}"
_RESCAN = "mediasearch:library-rescan:{}"


def request_scan(client: redis.Redis, send: Callable[[int], object], library_id: int) -> bool:
    """Queue a scan of the library unless one is queued and not started yet; True when sent."""
    if not client.set(_QUEUED.format(library_id), 1, nx=True, ex=QUEUED_TTL_S):
        return False
    try:
        send(library_id)
    except BaseException:
        client.delete(_QUEUED.format(library_id))
        raise
    return True


class ScanLock:
    """The lock of one library's scans; ``keep_alive`` refreshes it (cheaply: at most every third of its TTL)."""

    def __init__(self, client: redis.Redis, library_id: int, ttl: float = LOCK_TTL_S):
        self.ttl = ttl
        self.lock = client.lock(_LOCK.format(library_id), timeout=ttl, thread_local=False)
        self._refreshed = 0.0

    def acquire(self, wait_s: float | None = None) -> bool:
        got = self.lock.acquire(blocking=wait_s is not None, blocking_timeout=wait_s)
        self._refreshed = time.monotonic()
        return got

    def keep_alive(self) -> None:
        if time.monotonic() - self._refreshed > self.ttl / 3:
            self.lock.reacquire()
            self._refreshed = time.monotonic()

    def release(self) -> None:
        try:
            self.lock.release()
        except LockError:  # it expired (a scan stalled past its TTL): nothing to release
            log.warning("a library scan outlived its lock")


def run_exclusively(client: redis.Redis, library_id: int, scan: Callable[[Callable[[], None]], T],
                    wait_s: float | None = None) -> T | None:
    """Run ``scan(keep_alive)`` under the library's lock, again while requests came during it. None when
    another scan holds the lock (after waiting up to ``wait_s``): that one runs once more for this request."""
    client.delete(_QUEUED.format(library_id))
    lock = ScanLock(client, library_id)
    if not lock.acquire(wait_s):
        client.set(_RESCAN.format(library_id), 1, ex=RESCAN_TTL_S)
        if not lock.acquire():  # it may have ended meanwhile
            return None
    try:
        while True:
            client.delete(_RESCAN.format(library_id))
            result = scan(lock.keep_alive)
            if not client.delete(_RESCAN.format(library_id)):
                return result
    finally:
        lock.release()


def scan_running(client: redis.Redis, library_id: int) -> bool:
    return bool(client.exists(_LOCK.format(library_id)))
