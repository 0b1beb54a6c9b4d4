"""The catalog's schema as ordered migration steps, and connect(), which brings a catalog file to the
latest step.

Step N takes a catalog from ``PRAGMA user_version`` N-1 to N inside one transaction, so a step that fails
(or a process killed halfway) leaves the catalog at N-1, whole, and the next connect() tries it again.
Steps never change once released: a new need is a new step at the end. A step may run any SQL inside a
transaction, ALTER TABLE (ADD / RENAME / DROP COLUMN) and an UPDATE that backfills included.

Creating steps use ``IF NOT EXISTS``: before these steps existed, connect() ran the whole schema at once,
so a catalog at version 1 or 2 may already hold some of what a later step creates (and a catalog whose
version was set back, as tests do, holds all of it). A step that alters a table cannot be repeated that
way; it is written for exactly the schema of the version before it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from shared.catalog.core import run_script, transaction


@dataclass(frozen=True)
class Step:
    version: int  # the user_version the catalog has once the step ran
    summary: str
    apply: Callable[[sqlite3.Connection], None]  # runs inside the step's transaction; must not commit


def sql_step(version: int, summary: str, script: str) -> Step:
    """A step that is plain SQL: statements separated by ';'."""
    return Step(version, summary, lambda conn: run_script(conn, script))


_V1 = """
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
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: media URLs are cached as immutable
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
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: frame URLs are cached as immutable
    media_id INTEGER NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    timestamp REAL,                    -- seconds into the video; NULL for a still image
    path TEXT NOT NULL,                -- normalised JPEG, relative to the data dir
    thumb_path TEXT NOT NULL,
    width INTEGER NOT NULL, height INTEGER NOT NULL,
    vector_row INTEGER UNIQUE          -- row in the vectors store; NULL until embedded
);
CREATE INDEX IF NOT EXISTS frames_media ON frames(media_id);
"""

_V2 = """
CREATE TABLE IF NOT EXISTS video_vectors (   -- one pooled vector per video, over its frame vectors
    media_id INTEGER PRIMARY KEY REFERENCES media(id) ON DELETE CASCADE,
    vector_row INTEGER NOT NULL UNIQUE
);
"""

_V3 = """
CREATE TABLE IF NOT EXISTS clusters (        -- auto-albums: media grouped by vector similarity
    id INTEGER PRIMARY KEY,
    centroid BLOB NOT NULL,            -- float32 unit vector
    name TEXT,                         -- given by the user; never overwritten by labelling
    label TEXT,                        -- best vocabulary concepts for the centroid
    label_centroid BLOB,               -- the centroid when it was labelled (relabel once it moved)
    label_model TEXT,                  -- model id of the vectors the label was computed with
    dirty INTEGER NOT NULL DEFAULT 1,  -- changed since the last re-clustering
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS cluster_members (
    media_id INTEGER PRIMARY KEY REFERENCES media(id) ON DELETE CASCADE,
    cluster_id INTEGER NOT NULL REFERENCES clusters(id) ON DELETE CASCADE,
    similarity REAL NOT NULL,          -- cosine to the centroid when assigned
    added_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS cluster_members_cluster ON cluster_members(cluster_id);
-- A member leaving (its media deleted) moves the centroid: the next re-clustering recomputes it.
CREATE TRIGGER IF NOT EXISTS cluster_member_gone AFTER DELETE ON cluster_members BEGIN
    UPDATE clusters SET dirty=1 WHERE id=OLD.cluster_id;
END;
CREATE TABLE IF NOT EXISTS collections (     -- named sets of media made by the user or by an upload
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    job_id TEXT UNIQUE REFERENCES jobs(id) ON DELETE SET NULL,  -- the upload whose folder it is
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS collection_members (
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    media_id INTEGER NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    added_at REAL NOT NULL,
    PRIMARY KEY (collection_id, media_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS collection_members_media ON collection_members(media_id);
CREATE TABLE IF NOT EXISTS library_state (   -- small named timestamps (e.g. when re-clustering was asked)
    key TEXT PRIMARY KEY,
    value REAL NOT NULL
);
"""

_V4 = """
-- claim_media looks up the live items of a media row (else a scan of every job item ever made)
CREATE INDEX IF NOT EXISTS job_items_media ON job_items(media_id);
-- deleting a media row sets near_duplicate_of to NULL in its copies (else a scan of media per delete);
-- near_duplicates reads the copies in this order
CREATE INDEX IF NOT EXISTS media_near_duplicate ON media(near_duplicate_of);
"""

_V5 = """
-- Poison files and recovery (see jobs.claim_item): how many times an item was started without ending
-- cleanly (its decoder crashed, was killed or timed out, or its worker died), and which worker holds it.
ALTER TABLE job_items ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job_items ADD COLUMN claimed_by TEXT;   -- the worker running it (or holding its retry)
ALTER TABLE job_items ADD COLUMN claimed_at REAL;
-- Items a release before this step left running were started once, by a worker that has no heartbeat:
-- the reaper re-queues them at once instead of after the task visibility timeout.
UPDATE job_items SET attempts = 1, claimed_by = 'before-schema-5', claimed_at = updated_at
    WHERE status = 'running';
-- The reaper's look-up: live items held by some worker.
CREATE INDEX IF NOT EXISTS job_items_claims ON job_items(status, claimed_by);
"""

_V6 = """
-- Accounts (shared/accounts.py). Secrets are stored hashed: passwords with argon2, session tokens, API keys
-- and invitation tokens (random, 256 bits) with SHA-256.
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,                -- 'owner' (one) or 'member'
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user_id);
CREATE TABLE IF NOT EXISTS api_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,              -- the key's first characters, shown in lists
    key_hash TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    last_used_at REAL
);
CREATE INDEX IF NOT EXISTS api_keys_user ON api_keys(user_id);
CREATE TABLE IF NOT EXISTS invitations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash TEXT NOT NULL UNIQUE,
    created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_log (   -- account, key and delete actions: who, what, when
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    actor TEXT NOT NULL,               -- a username, "api key <prefix> (<username>)", the static key, or "server"
    action TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    client TEXT NOT NULL DEFAULT ''    -- the client's address
);
"""

_V7 = """
-- When and where it was taken (services/ingest_worker/metadata.py), and what a file brings along.
ALTER TABLE media ADD COLUMN taken_at REAL;          -- capture time, UTC epoch seconds; NULL: unknown
ALTER TABLE media ADD COLUMN taken_offset INTEGER;   -- its UTC offset in minutes, when the file says; NULL: unknown
ALTER TABLE media ADD COLUMN taken_at_source TEXT;   -- 'exif', 'video', or 'file' (the file's mtime: a fallback)
ALTER TABLE media ADD COLUMN camera TEXT;            -- "Make Model"
ALTER TABLE media ADD COLUMN lens TEXT;
ALTER TABLE media ADD COLUMN gps_lat REAL;
ALTER TABLE media ADD COLUMN gps_lon REAL;
ALTER TABLE media ADD COLUMN motion_path TEXT;       -- a Live Photo's motion clip, relative to the data dir
ALTER TABLE media ADD COLUMN preview_path TEXT;      -- a browser-playable copy of a video no browser plays
ALTER TABLE job_items ADD COLUMN motion_path TEXT;   -- a Live Photo's motion clip, processed with its photo
-- Media made before this step: their capture time is unknown until re-read; added time stands in for sorting.
CREATE INDEX IF NOT EXISTS media_taken ON media(taken_at, id);
CREATE INDEX IF NOT EXISTS media_camera ON media(camera);
"""

_V8 = """
-- Libraries (shared/libraries/): folders on the server indexed in place. A media item's original is its copy
-- in the data volume (media.path; an upload's) or one of its locations (media.path is then ''): files in a
-- library, never copied.
CREATE TABLE IF NOT EXISTS libraries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,          -- what media.folder starts with
    path TEXT NOT NULL UNIQUE,          -- the folder's resolved absolute path, under an ingest root
    status TEXT NOT NULL DEFAULT 'scanning',  -- scanning | ready | unavailable
    status_reason TEXT,                 -- why it is unavailable
    one_off INTEGER NOT NULL DEFAULT 0, -- made by POST /ingest: scanned when asked, neither watched nor rescanned
    folders INTEGER NOT NULL DEFAULT 0, -- folders its last scan walked (what watching it costs in inotify watches)
    watching INTEGER NOT NULL DEFAULT 0,    -- the watcher follows its changes
    watch_note TEXT,                    -- why it is not watched
    last_scan_at REAL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS locations (   -- a file in a library
    id INTEGER PRIMARY KEY,
    library_id INTEGER NOT NULL REFERENCES libraries(id) ON DELETE CASCADE,
    path TEXT NOT NULL,                 -- relative to the library's folder, '/' separated
    size INTEGER NOT NULL,              -- as last read (or, until it is read, as the scan saw it)
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT,                        -- of its content as last read; NULL until read
    media_id INTEGER REFERENCES media(id) ON DELETE SET NULL,  -- NULL: not ingested (yet), failed or excluded
    excluded INTEGER NOT NULL DEFAULT 0,    -- deleted from search by the user: stays out, the file stays
    error TEXT,                         -- why it could not be ingested
    motion_of INTEGER REFERENCES locations(id) ON DELETE SET NULL,  -- a Live Photo's motion clip: of that photo
    UNIQUE (library_id, path)
);
CREATE INDEX IF NOT EXISTS locations_sha ON locations(sha256);
CREATE INDEX IF NOT EXISTS locations_media ON locations(media_id);
CREATE INDEX IF NOT EXISTS locations_failed ON locations(library_id) WHERE error IS NOT NULL;
ALTER TABLE jobs ADD COLUMN library_id INTEGER REFERENCES libraries(id) ON DELETE SET NULL;  -- a library's scan
-- The location a library item ingests (no foreign key: an item outlives its location as history, and an
-- item whose location went is not taken for a plain folder item).
ALTER TABLE job_items ADD COLUMN location_id INTEGER;
CREATE INDEX IF NOT EXISTS job_items_location ON job_items(location_id);
"""

_V9 = """
-- Near duplicates through indexes (catalog/media.py: find_near_duplicate): the four 16-bit bands of a
-- perceptual hash, each indexed; building an index reads the hashes already there.
CREATE INDEX IF NOT EXISTS media_phash_band0 ON media(substr(phash, 1, 4), kind);
CREATE INDEX IF NOT EXISTS media_phash_band1 ON media(substr(phash, 5, 4), kind);
CREATE INDEX IF NOT EXISTS media_phash_band2 ON media(substr(phash, 9, 4), kind);
CREATE INDEX IF NOT EXISTS media_phash_band3 ON media(substr(phash, 13, 4), kind);
-- Visual duplicates (catalog/visual_pairs.py): pairs of media whose vectors are nearest neighbours in the
-- index and at least VISUAL_FLOOR similar, recorded once per vector; a media item's visual_row is the vector
-- row whose neighbours are recorded (NULL, as for every row here: not looked up yet; the next duplicate
-- report looks them up in the index).
CREATE TABLE IF NOT EXISTS visual_pairs (
    a INTEGER NOT NULL REFERENCES media(id) ON DELETE CASCADE,  -- a < b
    b INTEGER NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    similarity REAL NOT NULL,
    PRIMARY KEY (a, b)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS visual_pairs_b ON visual_pairs(b);  -- deleting media b cascades without a scan
ALTER TABLE media ADD COLUMN visual_row INTEGER;
"""

_V10 = """
-- The words in each frame (services/ingest_worker/ocr.py), read in the background once media is indexed.
ALTER TABLE media ADD COLUMN text_status TEXT;       -- NULL: not read yet | running | read | failed
ALTER TABLE media ADD COLUMN text_claimed_by TEXT;   -- the worker reading it (running)
ALTER TABLE media ADD COLUMN text_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE media ADD COLUMN text_reason TEXT;       -- why it could not be read (failed)
CREATE INDEX IF NOT EXISTS media_text_unread ON media(id) WHERE text_status IS NULL OR text_status = 'running';
CREATE TABLE IF NOT EXISTS frame_text (   -- a frame's lines of text; frames without text have no row
    frame_id INTEGER PRIMARY KEY REFERENCES frames(id) ON DELETE CASCADE,
    search_text TEXT NOT NULL,    -- the lines joined, normalised (shared/text_match.py): what is indexed
    lines TEXT NOT NULL           -- JSON [{text, confidence, box: [[x, y] x 4] as fractions of the upright frame}]
);
-- Substring search that tolerates OCR's mistakes: trigrams of the text, kept in step by the triggers.
CREATE VIRTUAL TABLE IF NOT EXISTS frame_text_search USING fts5(
    search_text, content='frame_text', content_rowid='frame_id', tokenize='trigram');
CREATE TRIGGER IF NOT EXISTS frame_text_added AFTER INSERT ON frame_text BEGIN
    INSERT INTO frame_text_search(rowid, search_text) VALUES (NEW.frame_id, NEW.search_text);
END;
CREATE TRIGGER IF NOT EXISTS frame_text_removed AFTER DELETE ON frame_text BEGIN
    INSERT INTO frame_text_search(frame_text_search, rowid, search_text) VALUES ('delete', OLD.frame_id, OLD.search_text);
END;
"""

STEPS: tuple[Step, ...] = (
    sql_step(1, "jobs, job items, media, frames", _V1),
    sql_step(2, "video_vectors: one pooled vector per video", _V2),
    sql_step(3, "clusters, cluster_members, collections, collection_members, library_state", _V3),
    sql_step(4, "indexes on job_items(media_id) and media(near_duplicate_of)", _V4),
    sql_step(5, "job_items.attempts, claimed_by, claimed_at (per-item claims), backfilled", _V5),
    sql_step(6, "users, sessions, api_keys, invitations, audit_log", _V6),
    sql_step(7, "media: taken_at, taken_offset, taken_at_source, camera, lens, gps, motion_path, preview_path; "
                "job_items.motion_path", _V7),
    sql_step(8, "libraries, locations; jobs.library_id, job_items.location_id", _V8),
    sql_step(9, "indexes on the perceptual hash's bands; visual_pairs, media.visual_row", _V9),
    sql_step(10, "media.text_status, text_claimed_by, text_attempts, text_reason; frame_text and its trigram index",
             _V10),
)
SCHEMA_VERSION = STEPS[-1].version


def user_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection, steps: Sequence[Step] = STEPS) -> int:
    """Run the steps the catalog has not had yet, each in its own transaction; returns the version reached.

    Several processes may connect at once: each step re-reads the version under the write lock, so it
    runs once. A catalog newer than ``steps`` (written by a later release) is left as it is.
    """
    if [step.version for step in steps] != list(range(1, len(steps) + 1)):
        raise ValueError("migration steps must be numbered 1, 2, 3, ... in order")
    for step in steps:
        if user_version(conn) >= step.version:
            continue
        with transaction(conn):
            if user_version(conn) < step.version:  # else another connection ran it meanwhile
                step.apply(conn)
                conn.execute(f"PRAGMA user_version={step.version}")
    return user_version(conn)


def connect(path: Path, steps: Sequence[Step] = STEPS) -> sqlite3.Connection:
    """Open the catalog (created if missing) at the latest schema. Rows read with ``conn.execute`` are
    sqlite3.Row; the catalog's functions return typed rows. One connection per thread."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        migrate(conn, steps)
    except BaseException:
        conn.close()
        raise
    return conn
