"""Tables ``jobs`` and ``job_items``: a job is one upload or folder ingest, an item one file of it.

Job counters are not stored: they are counted from the items, so a retried or duplicated task can
never count twice.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterable
from enum import StrEnum
from typing import TypedDict, cast

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


def upload_aliases(conn: sqlite3.Connection) -> list[UploadAliasRow]:
    """Job items that were exact duplicates of a stored media item (same SHA-256, another upload),
    oldest first."""
    return [UploadAliasRow(**row) for row in conn.execute(
        "SELECT job_items.id, job_items.file, jobs.folder, job_items.job_id, job_items.media_id, "
        "job_items.updated_at FROM job_items JOIN jobs ON jobs.id = job_items.job_id "
        "JOIN media ON media.id = job_items.media_id WHERE job_items.status = ? ORDER BY job_items.media_id, job_items.id", (ItemStatus.DUPLICATE,))]
