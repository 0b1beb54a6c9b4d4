"""The catalog: one SQLite file in WAL mode holding media, frames, jobs and their per-file items.

Writers are the ingest workers (media, frames, item outcomes) and the gateway (jobs, items when a
job is created). Job counters are not stored: they are counted from the items, so a retried or
duplicated task can never count twice.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA_VERSION = 2  # 2: video_vectors

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,              -- 'upload' or 'folder'
    folder TEXT NOT NULL DEFAULT '',   -- upload folder name or server path, for display and filters
    created_at REAL NOT NULL,
    cancelled INTEGER NOT NULL DEFAULT 0,
    error TEXT                         -- a job-level failure (the whole job could not run)
);
CREATE TABLE IF NOT EXISTS job_items (
    id INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    file TEXT NOT NULL,                -- path relative to the uploaded/ingested folder
    stored_path TEXT NOT NULL,         -- where the bytes wait, relative to the data dir or absolute
    status TEXT NOT NULL DEFAULT 'queued',  -- queued|running|indexed|duplicate|failed|cancelled
    reason TEXT,
    media_id INTEGER,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS job_items_job ON job_items(job_id, status);
CREATE TABLE IF NOT EXISTS media (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,                -- 'image' or 'video'
    mime TEXT NOT NULL,
    path TEXT NOT NULL,                -- original, relative to the data dir
    name TEXT NOT NULL,                -- relative path as the user named it
    folder TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL,
    width INTEGER, height INTEGER,
    duration REAL, fps REAL,
    phash TEXT,
    near_duplicate_of INTEGER REFERENCES media(id) ON DELETE SET NULL,
    job_id TEXT,
    status TEXT NOT NULL DEFAULT 'pending', -- pending (frames not all embedded) | indexed
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS media_phash ON media(phash);
CREATE TABLE IF NOT EXISTS frames (
    id INTEGER PRIMARY KEY,
    media_id INTEGER NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    timestamp REAL,                    -- seconds into the video; NULL for a still image
    path TEXT NOT NULL,                -- normalised JPEG, relative to the data dir
    thumb_path TEXT NOT NULL,
    width INTEGER NOT NULL, height INTEGER NOT NULL,
    vector_row INTEGER UNIQUE          -- row in the vectors store; NULL until embedded
);
CREATE INDEX IF NOT EXISTS frames_media ON frames(media_id);
CREATE TABLE IF NOT EXISTS video_vectors (   -- one pooled vector per video, over its frame vectors
    media_id INTEGER PRIMARY KEY REFERENCES media(id) ON DELETE CASCADE,
    vector_row INTEGER NOT NULL UNIQUE
);
"""

TERMINAL_ITEM_STATES = ("indexed", "duplicate", "failed", "cancelled")


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
        # executescript() commits whatever is open before it runs, so the transaction is in the script.
        try:
            conn.executescript(f"BEGIN IMMEDIATE;\n{_SCHEMA}\nPRAGMA user_version={SCHEMA_VERSION};\nCOMMIT;")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """An IMMEDIATE transaction: takes the write lock up front so two writers never deadlock."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# -- jobs ------------------------------------------------------------------------------------------
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
            conn.execute("INSERT INTO job_items(job_id, file, stored_path, updated_at) VALUES (?,?,?,?)",
                         (job_id, file, stored, now)).lastrowid
            for file, stored in files
        ]
    return job_id, item_ids


def fail_job(conn: sqlite3.Connection, job_id: str, error: str) -> None:
    conn.execute("UPDATE jobs SET error=? WHERE id=?", (error, job_id))


def job_status(conn: sqlite3.Connection, job_id: str) -> dict | None:
    job = conn.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
    if job is None:
        return None
    counts = dict(conn.execute("SELECT status, COUNT(*) FROM job_items WHERE job_id=? GROUP BY status",
                               (job_id,)).fetchall())
    total = sum(counts.values())
    finished = sum(counts.get(state, 0) for state in TERMINAL_ITEM_STATES)
    if job["error"]:
        status = "failed"
    elif job["cancelled"]:
        status = "cancelled"
    elif finished == total:
        status = "done"
    elif finished or counts.get("running"):
        status = "running"
    else:
        status = "queued"
    errors = [
        {"file": row["file"], "reason": row["reason"] or "failed"}
        for row in conn.execute("SELECT file, reason FROM job_items WHERE job_id=? AND status='failed' ORDER BY id",
                                (job_id,))
    ]
    return {
        "id": job_id,
        "status": status,
        "source": job["source"],
        "folder": job["folder"],
        "created_at": job["created_at"],
        "total": total,
        "processed": finished,
        "indexed": counts.get("indexed", 0),
        "duplicates": counts.get("duplicate", 0),
        "failed": counts.get("failed", 0),
        "errors": errors,
        "error": job["error"],
    }


def recent_job_ids(conn: sqlite3.Connection, limit: int = 20) -> list[str]:
    return [row[0] for row in conn.execute("SELECT id FROM jobs ORDER BY created_at DESC LIMIT ?", (limit,))]


def cancel_job(conn: sqlite3.Connection, job_id: str) -> bool:
    with transaction(conn):
        found = conn.execute("UPDATE jobs SET cancelled=1 WHERE id=?", (job_id,)).rowcount
        conn.execute("UPDATE job_items SET status='cancelled', reason='job cancelled', updated_at=? "
                     "WHERE job_id=? AND status='queued'", (time.time(), job_id))
    return bool(found)


def get_item(conn: sqlite3.Connection, item_id: int) -> sqlite3.Row | None:
    return conn.execute(
        "SELECT job_items.*, jobs.cancelled, jobs.folder FROM job_items JOIN jobs ON jobs.id = job_items.job_id "
        "WHERE job_items.id=?", (item_id,)).fetchone()


def set_item(conn: sqlite3.Connection, item_id: int, status: str, reason: str | None = None,
             media_id: int | None = None) -> None:
    conn.execute("UPDATE job_items SET status=?, reason=?, media_id=COALESCE(?, media_id), updated_at=? WHERE id=?",
                 (status, reason, media_id, time.time(), item_id))


# -- media and frames ------------------------------------------------------------------------------
def media_by_sha(conn: sqlite3.Connection, sha256: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM media WHERE sha256=?", (sha256,)).fetchone()


def get_media(conn: sqlite3.Connection, media_id: int) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM media WHERE id=?", (media_id,)).fetchone()


def insert_media(conn: sqlite3.Connection, **fields) -> int:
    fields.setdefault("created_at", time.time())
    columns = ", ".join(fields)
    marks = ", ".join("?" for _ in fields)
    return conn.execute(f"INSERT INTO media({columns}) VALUES ({marks})", tuple(fields.values())).lastrowid


def insert_frame(conn: sqlite3.Connection, media_id: int, path: str, thumb_path: str, width: int, height: int,
                 timestamp: float | None = None) -> int:
    return conn.execute(
        "INSERT INTO frames(media_id, timestamp, path, thumb_path, width, height) VALUES (?,?,?,?,?,?)",
        (media_id, timestamp, path, thumb_path, width, height)).lastrowid


def frames_of_media(conn: sqlite3.Connection, media_id: int) -> list[sqlite3.Row]:
    return conn.execute("SELECT * FROM frames WHERE media_id=? ORDER BY timestamp, id", (media_id,)).fetchall()


def set_frame_rows(conn: sqlite3.Connection, rows_by_frame: dict[int, int]) -> None:
    conn.executemany("UPDATE frames SET vector_row=? WHERE id=?",
                     [(row, frame_id) for frame_id, row in rows_by_frame.items()])


def mark_media_indexed(conn: sqlite3.Connection, media_id: int) -> None:
    conn.execute("UPDATE media SET status='indexed' WHERE id=?", (media_id,))


def get_frame(conn: sqlite3.Connection, frame_id: int) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM frames WHERE id=?", (frame_id,)).fetchone()


def frames_for_rows(conn: sqlite3.Connection, rows: Iterable[int]) -> dict[int, sqlite3.Row]:
    """Frame and media fields for each vector row that the catalog knows, keyed by row."""
    rows = list(rows)
    if not rows:
        return {}
    marks = ",".join("?" for _ in rows)
    found = conn.execute(
        "SELECT frames.id AS frame_id, frames.vector_row, frames.timestamp, frames.media_id, "
        "media.kind, media.name, media.folder, media.mime, media.duration "
        f"FROM frames JOIN media ON media.id = frames.media_id WHERE frames.vector_row IN ({marks})", rows)
    return {row["vector_row"]: row for row in found}


def delete_media(conn: sqlite3.Connection, media_id: int) -> tuple[list[int], list[str]] | None:
    """Remove a media item and its frames; returns the vector rows and file paths to remove."""
    with transaction(conn):
        media = get_media(conn, media_id)
        if media is None:
            return None
        frames = frames_of_media(conn, media_id)
        pooled = video_row(conn, media_id)
        conn.execute("DELETE FROM media WHERE id=?", (media_id,))
    rows = [f["vector_row"] for f in frames if f["vector_row"] is not None]
    if pooled is not None:
        rows.append(pooled)
    paths = [media["path"]] + [p for f in frames for p in (f["path"], f["thumb_path"])]
    return rows, paths


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    return {
        "media": conn.execute("SELECT COUNT(*) FROM media").fetchone()[0],
        "frames": conn.execute("SELECT COUNT(*) FROM frames WHERE vector_row IS NOT NULL").fetchone()[0],
    }


def rows_matching(conn: sqlite3.Connection, kind: str | None = None, folder: str | None = None,
                  created_from: float | None = None, created_to: float | None = None) -> list[int]:
    """Vector rows of the frames whose media pass the filters (a folder matches its subfolders too)."""
    conditions, params = ["frames.vector_row IS NOT NULL"], []
    if kind is not None:
        conditions.append("media.kind = ?")
        params.append(kind)
    if folder is not None:
        escaped = folder.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append("(media.folder = ? OR media.folder LIKE ? ESCAPE '\\')")
        params += [folder, escaped.rstrip("/") + "/%"]
    if created_from is not None:
        conditions.append("media.created_at >= ?")
        params.append(created_from)
    if created_to is not None:
        conditions.append("media.created_at <= ?")
        params.append(created_to)
    query = (f"SELECT frames.vector_row FROM frames JOIN media ON media.id = frames.media_id "
             f"WHERE {' AND '.join(conditions)} ORDER BY frames.vector_row")
    return [row[0] for row in conn.execute(query, params)]


def mark_items_failed(conn: sqlite3.Connection, reasons: dict[int, str]) -> None:
    """Fail items before any worker sees them (a file refused at the door, e.g. an unusable name)."""
    now = time.time()
    conn.executemany("UPDATE job_items SET status='failed', reason=?, updated_at=? WHERE id=?",
                     [(reason, now, item_id) for item_id, reason in reasons.items()])


# -- ingest: claims, pooled video vectors, near duplicates ------------------------------------------
def claim_media(conn: sqlite3.Connection, item_id: int, media_id: int) -> bool:
    """Make ``item_id`` the one item finishing an unfinished media row, unless another live item already is."""
    with transaction(conn):
        taken = conn.execute("SELECT 1 FROM job_items WHERE media_id=? AND id<>? AND status IN ('queued','running')",
                             (media_id, item_id)).fetchone()
        if taken:
            return False
        conn.execute("UPDATE job_items SET status='running', media_id=?, updated_at=? WHERE id=?",
                     (media_id, time.time(), item_id))
    return True


def video_row(conn: sqlite3.Connection, media_id: int) -> int | None:
    found = conn.execute("SELECT vector_row FROM video_vectors WHERE media_id=?", (media_id,)).fetchone()
    return found[0] if found else None


def set_video_row(conn: sqlite3.Connection, media_id: int, row: int) -> None:
    conn.execute("INSERT OR REPLACE INTO video_vectors(media_id, vector_row) VALUES (?,?)", (media_id, row))


def videos_for_rows(conn: sqlite3.Connection, rows: Iterable[int]) -> dict[int, sqlite3.Row]:
    """The video (media row) behind each pooled-video vector row that the catalog knows, keyed by row."""
    rows = list(rows)
    if not rows:
        return {}
    marks = ",".join("?" for _ in rows)
    found = conn.execute("SELECT video_vectors.vector_row, media.* FROM video_vectors "
                         f"JOIN media ON media.id = video_vectors.media_id WHERE video_vectors.vector_row IN ({marks})",
                         rows)
    return {row["vector_row"]: row for row in found}


def phash_distance(a: str, b: str) -> int:
    """Hamming distance of two perceptual hashes written as hex digits."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def find_near_duplicate(conn: sqlite3.Connection, phash: str, max_distance: int, kind: str = "image") -> int | None:
    """The original (never itself a near duplicate) of the closest media within ``max_distance`` bits."""
    best: tuple[int, int] | None = None
    for row in conn.execute("SELECT id, phash, near_duplicate_of FROM media WHERE kind=? AND phash IS NOT NULL",
                            (kind,)):
        distance = phash_distance(phash, row["phash"])
        if distance <= max_distance and (best is None or distance < best[0]):
            best = (distance, row["near_duplicate_of"] or row["id"])
    return best[1] if best else None


def near_duplicates(conn: sqlite3.Connection, limit: int = 1000) -> list[dict]:
    """Groups of near-duplicate media, oldest groups first: ``{"original": row, "duplicates": [rows]}``."""
    groups: dict[int, list[sqlite3.Row]] = {}
    for row in conn.execute("SELECT * FROM media WHERE near_duplicate_of IS NOT NULL ORDER BY near_duplicate_of, id"):
        if len(groups) >= limit and row["near_duplicate_of"] not in groups:
            break
        groups.setdefault(row["near_duplicate_of"], []).append(row)
    originals = {row["id"]: row for row in conn.execute(
        f"SELECT * FROM media WHERE id IN ({','.join('?' for _ in groups)})", list(groups))} if groups else {}
    return [{"original": originals[original_id], "duplicates": duplicates}
            for original_id, duplicates in groups.items() if original_id in originals]
