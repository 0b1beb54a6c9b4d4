"""Tables ``jobs`` and ``job_items``: a job is one upload or folder ingest, an item one file of it.

Job counters are not stored: they are counted from the items, so a retried or duplicated task can
never count twice.

An item starts running only through ``claim_item``: in one transaction it becomes ``running``, held by
one worker (``claimed_by``), with its ``attempts`` counted. A second delivery of its task while that
worker lives is refused (no file is processed twice at once); an item whose worker is gone is claimed
again; an item that was started ``max_attempts`` times without ending cleanly (a crash, an OOM kill, a
time limit, a dead worker) fails with a reason instead of being tried forever.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import NamedTuple, TypedDict, cast

from shared.catalog.core import marks, transaction


class ItemStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    INDEXED = "indexed"      # its media is searchable
    DUPLICATE = "duplicate"  # the same bytes were stored before; media_id names them
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobStatus(StrEnum):
    """Not stored: worked out from the job's flags and its items' statuses (see job_status)."""
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_ITEM_STATES = (ItemStatus.INDEXED, ItemStatus.DUPLICATE, ItemStatus.FAILED, ItemStatus.CANCELLED)
LIVE_ITEM_STATES = (ItemStatus.QUEUED, ItemStatus.RUNNING)

# A job's status lists this many failed files at most (it is polled and streamed often); `failed` counts all.
MAX_LISTED_ERRORS = 200


class JobRow(TypedDict):
    id: str
    source: str          # 'upload' or 'folder'
    folder: str          # upload folder name or server path
    created_at: float
    cancelled: int       # 0 or 1
    error: str | None    # a job-level failure (the whole job could not run)


class JobItemRow(TypedDict):
    id: int
    job_id: str
    file: str            # path relative to the uploaded/ingested folder
    stored_path: str     # where the bytes wait, relative to the data dir or absolute
    status: ItemStatus
    reason: str | None
    media_id: int | None
    updated_at: float
    attempts: int             # starts that did not end cleanly, the one running included (claim_item)
    claimed_by: str | None    # the worker running it, or holding its retry; kept once it is finished
    claimed_at: float | None


class ItemRow(JobItemRow):
    """A job item with what a worker needs of its job (get_item)."""
    cancelled: int
    folder: str


class FailedFile(TypedDict):
    file: str
    reason: str


class JobSummary(TypedDict):
    """A job's progress, counted from its items (the wire schema JobStatus validates it)."""
    id: str
    status: JobStatus
    source: str
    folder: str
    created_at: float
    total: int
    processed: int
    indexed: int
    duplicates: int
    failed: int
    errors: list[FailedFile]  # the first MAX_LISTED_ERRORS failed files
    error: str | None


class UploadAliasRow(TypedDict):
    """A job item that was an exact duplicate of a stored media item (see upload_aliases)."""
    id: int
    file: str
    folder: str
    job_id: str
    media_id: int
    updated_at: float


def new_job_id() -> str:
    return uuid.uuid4().hex


def create_job(conn: sqlite3.Connection, source: str, folder: str, files: Iterable[tuple[str, str]],
               job_id: str | None = None) -> tuple[str, list[int]]:
    """A job with one queued item per ``(file, stored_path)``; returns the job id and item ids.

    ``job_id`` (from new_job_id()) lets an uploader name the job's folder before the job exists.
    """
    job_id = job_id or new_job_id()
    now = time.time()
    with transaction(conn):
        conn.execute("INSERT INTO jobs(id, source, folder, created_at) VALUES (?,?,?,?)",
                     (job_id, source, folder, now))
        item_ids = [
            conn.execute("INSERT INTO job_items(job_id, file, stored_path, status, updated_at) VALUES (?,?,?,?,?)",
                         (job_id, file, stored, ItemStatus.QUEUED, now)).lastrowid
            for file, stored in files
        ]
    return job_id, item_ids


def fail_job(conn: sqlite3.Connection, job_id: str, error: str) -> None:
    conn.execute("UPDATE jobs SET error=? WHERE id=?", (error, job_id))


def job_status(conn: sqlite3.Connection, job_id: str) -> JobSummary | None:
    found = conn.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
    if found is None:
        return None
    job = JobRow(**found)
    counts: dict[ItemStatus, int] = {
        ItemStatus(status): count for status, count in conn.execute(
            "SELECT status, COUNT(*) FROM job_items WHERE job_id=? GROUP BY status", (job_id,))}
    total = sum(counts.values())
    finished = sum(counts.get(state, 0) for state in TERMINAL_ITEM_STATES)
    if job["error"]:
        status = JobStatus.FAILED
    elif job["cancelled"]:
        status = JobStatus.CANCELLED
    elif finished == total:
        status = JobStatus.DONE
    elif finished or counts.get(ItemStatus.RUNNING):
        status = JobStatus.RUNNING
    else:
        status = JobStatus.QUEUED
    errors = [
        FailedFile(file=row["file"], reason=row["reason"] or "failed")
        for row in conn.execute("SELECT file, reason FROM job_items WHERE job_id=? AND status=? ORDER BY id LIMIT ?",
                                (job_id, ItemStatus.FAILED, MAX_LISTED_ERRORS))
    ]
    return JobSummary(
        id=job_id, status=status, source=job["source"], folder=job["folder"], created_at=job["created_at"],
        total=total, processed=finished, indexed=counts.get(ItemStatus.INDEXED, 0),
        duplicates=counts.get(ItemStatus.DUPLICATE, 0), failed=counts.get(ItemStatus.FAILED, 0), errors=errors,
        error=job["error"])


def recent_job_ids(conn: sqlite3.Connection, limit: int = 20) -> list[str]:
    return [row[0] for row in conn.execute("SELECT id FROM jobs ORDER BY created_at DESC LIMIT ?", (limit,))]


def cancel_job(conn: sqlite3.Connection, job_id: str) -> bool:
    """Flag the job and cancel its items no worker has started; False for an unknown job."""
    with transaction(conn):
        found = conn.execute("UPDATE jobs SET cancelled=1 WHERE id=?", (job_id,)).rowcount
        conn.execute("UPDATE job_items SET status=?, reason='job cancelled', updated_at=? "
                     "WHERE job_id=? AND status=?", (ItemStatus.CANCELLED, time.time(), job_id, ItemStatus.QUEUED))
    return bool(found)


def _item(row: sqlite3.Row) -> ItemRow:
    item = cast(ItemRow, dict(row))
    item["status"] = ItemStatus(item["status"])
    return item


def get_item(conn: sqlite3.Connection, item_id: int) -> ItemRow | None:
    found = conn.execute(
        "SELECT job_items.*, jobs.cancelled, jobs.folder FROM job_items JOIN jobs ON jobs.id = job_items.job_id "
        "WHERE job_items.id=?", (item_id,)).fetchone()
    return None if found is None else _item(found)


def item_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Job items of every job by status (``{"queued": 3, ...}``; absent statuses absent): for metrics."""
    return {status: count for status, count in
            conn.execute("SELECT status, COUNT(*) FROM job_items GROUP BY status")}


def set_item(conn: sqlite3.Connection, item_id: int, status: ItemStatus | str, reason: str | None = None,
             media_id: int | None = None) -> None:
    """Record an item's status (and its media, once known); ``status`` must be an ItemStatus value."""
    conn.execute("UPDATE job_items SET status=?, reason=?, media_id=COALESCE(?, media_id), updated_at=? WHERE id=?",
                 (ItemStatus(status), reason, media_id, time.time(), item_id))


def mark_items_failed(conn: sqlite3.Connection, reasons: dict[int, str]) -> None:
    """Fail items before any worker sees them (a file refused at the door, e.g. an unusable name)."""
    now = time.time()
    with transaction(conn):
        conn.executemany("UPDATE job_items SET status=?, reason=?, updated_at=? WHERE id=?",
                         [(ItemStatus.FAILED, reason, now, item_id) for item_id, reason in reasons.items()])


def claim_media(conn: sqlite3.Connection, item_id: int, media_id: int) -> bool:
    """Make ``item_id`` the one item finishing an unfinished media row, unless another live item already is."""
    with transaction(conn):
        taken = conn.execute(
            f"SELECT 1 FROM job_items WHERE media_id=? AND id<>? AND status IN ({marks(LIVE_ITEM_STATES)})",
            (media_id, item_id, *LIVE_ITEM_STATES)).fetchone()
        if taken:
            return False
        conn.execute("UPDATE job_items SET status=?, media_id=?, updated_at=? WHERE id=?",
                     (ItemStatus.RUNNING, media_id, time.time(), item_id))
    return True


# -- claims: who runs an item, and how many times it was started ---------------------------------------
class Claim(StrEnum):
    CLAIMED = "claimed"    # the caller runs the item now; this attempt is counted
    BUSY = "busy"          # a live worker (or the caller itself) runs it: not started a second time
    FINISHED = "finished"  # already in a terminal state
    GAVE_UP = "gave up"    # started max_attempts times without ending cleanly: failed now, with the reason
    MISSING = "missing"    # no such item (its job was deleted)


class ClaimResult(NamedTuple):
    claim: Claim
    item: ItemRow | None  # the item after the claim (None when missing)


WORKER_GONE = "its worker stopped while processing it: crashed, killed or out of memory"


def gave_up_reason(attempts: int, last: str) -> str:
    return f"gave up: processing crashed or timed out {attempts} times (last: {last})"


def claim_item(conn: sqlite3.Connection, item_id: int, worker: str, max_attempts: int,
               alive: Callable[[str], bool]) -> ClaimResult:
    """Take an item for ``worker`` (the one way an item starts running).

    A terminal item is FINISHED; an item running under a live worker (``worker`` itself, or one for which
    ``alive(holder)`` is true) is BUSY; neither changes. Anything else (queued, or running under a worker
    that is gone) becomes running, held by ``worker``, with ``attempts`` + 1, in one transaction; unless
    it was started ``max_attempts`` times already: then it fails with "gave up: ..." (GAVE_UP).
    ``alive`` (a look-up in Redis) is asked outside the write lock; the claim is written only if the item
    did not change meanwhile, else it is decided again.
    """
    while True:
        item = get_item(conn, item_id)
        if item is None:
            return ClaimResult(Claim.MISSING, None)
        if item["status"] in TERMINAL_ITEM_STATES:
            return ClaimResult(Claim.FINISHED, item)
        holder, running = item["claimed_by"], item["status"] == ItemStatus.RUNNING
        if running and holder is not None and (holder == worker or alive(holder)):
            return ClaimResult(Claim.BUSY, item)
        now = time.time()
        with transaction(conn):
            if conn.execute("SELECT 1 FROM job_items WHERE id=? AND status=? AND claimed_by IS ? AND attempts=?",
                            (item_id, item["status"], holder, item["attempts"])).fetchone() is None:
                continue  # another worker claimed or finished it meanwhile: decide again
            if item["attempts"] >= max_attempts:
                last = WORKER_GONE if running else (item["reason"] or WORKER_GONE)
                conn.execute("UPDATE job_items SET status=?, reason=?, updated_at=? WHERE id=?",
                             (ItemStatus.FAILED, gave_up_reason(item["attempts"], last), now, item_id))
                claim = Claim.GAVE_UP
            else:
                conn.execute("UPDATE job_items SET status=?, claimed_by=?, claimed_at=?, attempts=attempts+1, "
                             "updated_at=? WHERE id=?", (ItemStatus.RUNNING, worker, now, now, item_id))
                claim = Claim.CLAIMED
        return ClaimResult(claim, get_item(conn, item_id))


def release_item(conn: sqlite3.Connection, item_id: int, worker: str, reason: str, counted: bool = False) -> bool:
    """Put an item ``worker`` runs back to queued, held by nobody until its retry's task reaches a worker.
    A clean stop (a transient fault outside the file) gives its attempt back; a counted one (the file's
    decoder died) keeps it. False when ``worker`` no longer holds the item (another worker took it over)."""
    now = time.time()
    return conn.execute(
        "UPDATE job_items SET status=?, reason=?, attempts=MAX(attempts-?, 0), claimed_by=NULL, claimed_at=?, "
        "updated_at=? WHERE id=? AND status=? AND claimed_by=?",
        (ItemStatus.QUEUED, reason, 0 if counted else 1, now, now, item_id, ItemStatus.RUNNING, worker)).rowcount == 1


def hold_item(conn: sqlite3.Connection, item_id: int, worker: str) -> bool:
    """Record that ``worker`` holds the task of a queued item (received, and waiting for a free thread or
    for its retry countdown), so that the reaper re-queues it if that worker dies before starting it."""
    now = time.time()
    return conn.execute("UPDATE job_items SET claimed_by=?, claimed_at=? WHERE id=? AND status=?",
                        (worker, now, item_id, ItemStatus.QUEUED)).rowcount == 1


def waiting_items(conn: sqlite3.Connection, before: float) -> list[int]:
    """Items that wait for a task held by no worker (in the broker's queue, or lost), queued or last
    released before ``before``, of jobs that can run (not failed, not cancelled)."""
    return [row[0] for row in conn.execute(
        "SELECT job_items.id FROM job_items JOIN jobs ON jobs.id = job_items.job_id WHERE job_items.status=? "
        "AND job_items.claimed_by IS NULL AND job_items.updated_at < ? AND jobs.error IS NULL AND jobs.cancelled=0 "
        "ORDER BY job_items.id", (ItemStatus.QUEUED, before))]


def held_items(conn: sqlite3.Connection) -> dict[str, list[int]]:
    """Unfinished items by the worker holding them: ``{worker: [item ids]}`` (the reaper's look-up)."""
    held: dict[str, list[int]] = {}
    for worker, item_id in conn.execute(
            f"SELECT claimed_by, id FROM job_items WHERE status IN ({marks(LIVE_ITEM_STATES)}) "
            "AND claimed_by IS NOT NULL ORDER BY claimed_by, id", tuple(LIVE_ITEM_STATES)):
        held.setdefault(worker, []).append(item_id)
    return held


def upload_aliases(conn: sqlite3.Connection) -> list[UploadAliasRow]:
    """Job items that were exact duplicates of a stored media item (same SHA-256, another upload),
    oldest first."""
    return [UploadAliasRow(**row) for row in conn.execute(
        "SELECT job_items.id, job_items.file, jobs.folder, job_items.job_id, job_items.media_id, "
        "job_items.updated_at FROM job_items JOIN jobs ON jobs.id = job_items.job_id "
        "JOIN media ON media.id = job_items.media_id WHERE job_items.status = ? ORDER BY job_items.media_id, job_items.id", (ItemStatus.DUPLICATE,))]
