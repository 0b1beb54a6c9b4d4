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

SCHEMA_VERSION = 3  # 2: video_vectors; 3: clusters, collections, library_state

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
CREATE TABLE IF NOT EXISTS video_vectors (   -- one pooled vector per video, over its frame vectors
    media_id INTEGER PRIMARY KEY REFERENCES media(id) ON DELETE CASCADE,
    vector_row INTEGER NOT NULL UNIQUE
);
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

# A job's status lists this many failed files at most (it is polled and streamed often); `failed` counts all.
MAX_LISTED_ERRORS = 200
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
        for row in conn.execute("SELECT file, reason FROM job_items WHERE job_id=? AND status='failed' "
                                "ORDER BY id LIMIT ?", (job_id, MAX_LISTED_ERRORS))
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
                  created_from: float | None = None, created_to: float | None = None,
                  collection: int | None = None) -> list[int]:
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
    if collection is not None:
        conditions.append("media.id IN (SELECT media_id FROM collection_members WHERE collection_id = ?)")
        params.append(collection)
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


# -- library: the vector standing for each media item ----------------------------------------------
def _marks(values: list) -> str:
    return ",".join("?" for _ in values)


_IN_CHUNK = 900  # ids per "IN (...)" (SQLite limits the variables of one statement)


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), _IN_CHUNK):
        yield ids[start:start + _IN_CHUNK]


def media_vector_rows(conn: sqlite3.Connection, media_ids: Iterable[int] | None = None) -> dict[int, int]:
    """The one vector row standing for each indexed media item: a photo's frame, a video's pooled vector."""
    query = ("SELECT media.id, CASE WHEN media.kind = 'video' THEN video_vectors.vector_row "
             "ELSE (SELECT MIN(frames.vector_row) FROM frames WHERE frames.media_id = media.id) END AS row "
             "FROM media LEFT JOIN video_vectors ON video_vectors.media_id = media.id WHERE media.status = 'indexed'")
    if media_ids is None:
        return {media_id: row for media_id, row in conn.execute(query) if row is not None}
    return {media_id: row for chunk in _chunks(list(media_ids))
            for media_id, row in conn.execute(f"{query} AND media.id IN ({_marks(chunk)})", chunk) if row is not None}


def media_rows(conn: sqlite3.Connection, media_ids: Iterable[int]) -> dict[int, sqlite3.Row]:
    """Media rows with ``cover_frame`` (their first frame, for a thumbnail), keyed by id; unknown ids are absent."""
    query = ("SELECT media.*, (SELECT MIN(frames.id) FROM frames WHERE frames.media_id = media.id) AS cover_frame "
             "FROM media WHERE media.id IN ")
    return {row["id"]: row for chunk in _chunks(list(media_ids))
            for row in conn.execute(f"{query}({_marks(chunk)})", chunk)}


def media_kinds(conn: sqlite3.Connection) -> dict[int, str]:
    """``{media_id: "image" | "video"}`` for the whole library."""
    return dict(conn.execute("SELECT id, kind FROM media").fetchall())


def _cover_frames(conn: sqlite3.Connection, members: str, group: str, order: str, group_ids: list[int],
                  per_group: int) -> dict[int, list[int]]:
    """Up to ``per_group`` thumbnail frames per group (a cluster or a collection), best members first."""
    if not group_ids:
        return {}
    found = conn.execute(
        f"SELECT grp, frame FROM (SELECT m.{group} AS grp, "
        "(SELECT MIN(frames.id) FROM frames WHERE frames.media_id = m.media_id) AS frame, "
        f"ROW_NUMBER() OVER (PARTITION BY m.{group} ORDER BY {order}) AS rank "
        f"FROM {members} AS m WHERE m.{group} IN ({_marks(group_ids)})) "
        "WHERE rank <= ? AND frame IS NOT NULL ORDER BY grp, rank", [*group_ids, per_group])
    covers: dict[int, list[int]] = {}
    for group_id, frame_id in found:
        covers.setdefault(group_id, []).append(frame_id)
    return covers


# -- library: clusters (auto-albums) ----------------------------------------------------------------
_CLUSTER_WITH_SIZE = ("SELECT clusters.*, COUNT(cluster_members.media_id) AS size FROM clusters "
                      "LEFT JOIN cluster_members ON cluster_members.cluster_id = clusters.id")


def clusters_with_sizes(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """Every cluster with its member count, largest first."""
    return conn.execute(f"{_CLUSTER_WITH_SIZE} GROUP BY clusters.id ORDER BY size DESC, clusters.id").fetchall()


def get_cluster(conn: sqlite3.Connection, cluster_id: int) -> sqlite3.Row | None:
    return conn.execute(f"{_CLUSTER_WITH_SIZE} WHERE clusters.id=? GROUP BY clusters.id", (cluster_id,)).fetchone()


def cluster_of_media(conn: sqlite3.Connection, media_id: int) -> int | None:
    found = conn.execute("SELECT cluster_id FROM cluster_members WHERE media_id=?", (media_id,)).fetchone()
    return found[0] if found else None


def cluster_memberships(conn: sqlite3.Connection) -> list[tuple[int, int]]:
    """``(media_id, cluster_id)`` for every clustered media item."""
    return [tuple(row) for row in conn.execute("SELECT media_id, cluster_id FROM cluster_members ORDER BY media_id")]


def insert_cluster(conn: sqlite3.Connection, centroid: bytes) -> int:
    now = time.time()
    return conn.execute("INSERT INTO clusters(centroid, created_at, updated_at) VALUES (?,?,?)",
                        (centroid, now, now)).lastrowid


def set_cluster_centroid(conn: sqlite3.Connection, cluster_id: int, centroid: bytes, dirty: bool = True) -> None:
    conn.execute("UPDATE clusters SET centroid=?, dirty=?, updated_at=? WHERE id=?",
                 (centroid, int(dirty), time.time(), cluster_id))


def add_cluster_member(conn: sqlite3.Connection, cluster_id: int, media_id: int, similarity: float) -> None:
    conn.execute("INSERT INTO cluster_members(media_id, cluster_id, similarity, added_at) VALUES (?,?,?,?)",
                 (media_id, cluster_id, similarity, time.time()))


def merge_cluster_into(conn: sqlite3.Connection, gone: int, kept: int) -> None:
    """Move every member of cluster ``gone`` to ``kept`` and drop ``gone``."""
    conn.execute("UPDATE cluster_members SET cluster_id=? WHERE cluster_id=?", (kept, gone))
    conn.execute("DELETE FROM clusters WHERE id=?", (gone,))


def set_member_similarities(conn: sqlite3.Connection, similarities: Iterable[tuple[float, int]]) -> None:
    """``(cosine to its cluster's centroid, media_id)`` pairs, after centroids were recomputed."""
    conn.executemany("UPDATE cluster_members SET similarity=? WHERE media_id=?", similarities)

def delete_empty_clusters(conn: sqlite3.Connection) -> int:
    return conn.execute("DELETE FROM clusters WHERE id NOT IN (SELECT cluster_id FROM cluster_members)").rowcount


def cluster_media(conn: sqlite3.Connection, cluster_id: int, limit: int, offset: int = 0) -> list[sqlite3.Row]:
    """Members of a cluster (media rows with ``similarity`` and ``cover_frame``), most typical first."""
    return conn.execute(
        "SELECT media.*, cluster_members.similarity, "
        "(SELECT MIN(frames.id) FROM frames WHERE frames.media_id = media.id) AS cover_frame "
        "FROM cluster_members JOIN media ON media.id = cluster_members.media_id WHERE cluster_members.cluster_id=? "
        "ORDER BY cluster_members.similarity DESC, media.id LIMIT ? OFFSET ?", (cluster_id, limit, offset)).fetchall()


def cluster_covers(conn: sqlite3.Connection, cluster_ids: list[int], per_cluster: int = 4) -> dict[int, list[int]]:
    return _cover_frames(conn, "cluster_members", "cluster_id", "m.similarity DESC, m.media_id", cluster_ids,
                         per_cluster)


def rename_cluster(conn: sqlite3.Connection, cluster_id: int, name: str | None) -> bool:
    return bool(conn.execute("UPDATE clusters SET name=? WHERE id=?", (name, cluster_id)).rowcount)


def set_cluster_label(conn: sqlite3.Connection, cluster_id: int, label: str, label_centroid: bytes,
                      model_id: str) -> None:
    conn.execute("UPDATE clusters SET label=?, label_centroid=?, label_model=? WHERE id=?",
                 (label, label_centroid, model_id, cluster_id))


def unclustered_media(conn: sqlite3.Connection) -> list[int]:
    """Indexed media that no cluster holds yet (their assignment was missed or is still to come)."""
    return [row[0] for row in conn.execute(
        "SELECT id FROM media WHERE status='indexed' AND id NOT IN (SELECT media_id FROM cluster_members) ORDER BY id")]


def clusters_need_work(conn: sqlite3.Connection) -> bool:
    """True when re-clustering has something to do: a changed or unlabelled cluster, or unclustered media."""
    return conn.execute(
        "SELECT EXISTS(SELECT 1 FROM clusters WHERE dirty=1 OR label IS NULL) OR EXISTS(SELECT 1 FROM media "
        "WHERE status='indexed' AND id NOT IN (SELECT media_id FROM cluster_members))").fetchone()[0] == 1


def mark_clusters_clean(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE clusters SET dirty=0 WHERE dirty=1")


def get_state(conn: sqlite3.Connection, key: str) -> float | None:
    found = conn.execute("SELECT value FROM library_state WHERE key=?", (key,)).fetchone()
    return found[0] if found else None


def set_state(conn: sqlite3.Connection, key: str, value: float) -> None:
    conn.execute("INSERT INTO library_state(key, value) VALUES (?,?) "
                 "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value))


# -- library: collections ---------------------------------------------------------------------------
_COLLECTION_WITH_SIZE = ("SELECT collections.*, COUNT(collection_members.media_id) AS size FROM collections "
                         "LEFT JOIN collection_members ON collection_members.collection_id = collections.id")


def insert_collection(conn: sqlite3.Connection, name: str) -> int:
    return conn.execute("INSERT INTO collections(name, created_at) VALUES (?,?)", (name, time.time())).lastrowid


def folder_collection(conn: sqlite3.Connection, job_id: str, name: str) -> int:
    """The collection of an upload's folder, created with the job's first media item."""
    conn.execute("INSERT INTO collections(name, job_id, created_at) VALUES (?,?,?) ON CONFLICT(job_id) DO NOTHING",
                 (name, job_id, time.time()))
    return conn.execute("SELECT id FROM collections WHERE job_id=?", (job_id,)).fetchone()[0]


def collections_with_sizes(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """Every collection with its member count, newest first."""
    return conn.execute(f"{_COLLECTION_WITH_SIZE} GROUP BY collections.id "
                        "ORDER BY collections.created_at DESC, collections.id DESC").fetchall()


def get_collection(conn: sqlite3.Connection, collection_id: int) -> sqlite3.Row | None:
    return conn.execute(f"{_COLLECTION_WITH_SIZE} WHERE collections.id=? GROUP BY collections.id",
                        (collection_id,)).fetchone()


def rename_collection(conn: sqlite3.Connection, collection_id: int, name: str) -> bool:
    return bool(conn.execute("UPDATE collections SET name=? WHERE id=?", (name, collection_id)).rowcount)


def delete_collection(conn: sqlite3.Connection, collection_id: int) -> bool:
    """Forget the set; its media stay in the library."""
    return bool(conn.execute("DELETE FROM collections WHERE id=?", (collection_id,)).rowcount)


def add_to_collection(conn: sqlite3.Connection, collection_id: int, media_ids: Iterable[int]) -> int:
    """Add media (already members are skipped); returns how many were added."""
    now = time.time()
    return conn.executemany("INSERT OR IGNORE INTO collection_members(collection_id, media_id, added_at) "
                            "VALUES (?,?,?)", [(collection_id, media_id, now) for media_id in media_ids]).rowcount


def remove_from_collection(conn: sqlite3.Connection, collection_id: int, media_ids: Iterable[int]) -> int:
    return conn.executemany("DELETE FROM collection_members WHERE collection_id=? AND media_id=?",
                            [(collection_id, media_id) for media_id in media_ids]).rowcount


def collection_media(conn: sqlite3.Connection, collection_id: int, limit: int, offset: int = 0) -> list[sqlite3.Row]:
    """Members of a collection (media rows with ``cover_frame``), in the order they were added."""
    return conn.execute(
        "SELECT media.*, (SELECT MIN(frames.id) FROM frames WHERE frames.media_id = media.id) AS cover_frame "
        "FROM collection_members JOIN media ON media.id = collection_members.media_id "
        "WHERE collection_members.collection_id=? ORDER BY collection_members.added_at, media.id LIMIT ? OFFSET ?",
        (collection_id, limit, offset)).fetchall()


def collection_covers(conn: sqlite3.Connection, collection_ids: list[int],
                      per_collection: int = 4) -> dict[int, list[int]]:
    return _cover_frames(conn, "collection_members", "collection_id", "m.added_at, m.media_id", collection_ids,
                         per_collection)


def missing_media(conn: sqlite3.Connection, media_ids: Iterable[int]) -> list[int]:
    """The ids among ``media_ids`` that name no media item, in the order given."""
    ids = list(dict.fromkeys(media_ids))
    known = {row[0] for chunk in _chunks(ids)
             for row in conn.execute(f"SELECT id FROM media WHERE id IN ({_marks(chunk)})", chunk)}
    return [media_id for media_id in ids if media_id not in known]


# -- library: every name a stored file was uploaded under --------------------------------------------
def upload_aliases(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """Job items that were exact duplicates of a stored media item (same SHA-256, another upload):
    ``id, file, folder, job_id, media_id, updated_at``, oldest first."""
    return conn.execute(
        "SELECT job_items.id, job_items.file, jobs.folder, job_items.job_id, job_items.media_id, job_items.updated_at "
        "FROM job_items JOIN jobs ON jobs.id = job_items.job_id JOIN media ON media.id = job_items.media_id "
        "WHERE job_items.status = 'duplicate' ORDER BY job_items.media_id, job_items.id").fetchall()


# -- crash recovery: vector rows committed that the catalog did not record (shared/reconcile.py) ------
# Media and frame ids are never reused (AUTOINCREMENT), so a row's owner id names one item forever.
def unembedded(conn: sqlite3.Connection, media_id: int | None = None) -> tuple[list[int], list[int]]:
    """Frames without a vector row and videos without a pooled vector (of one media item, or all):
    ``(frame ids, video media ids)``."""
    only = "" if media_id is None else " AND media.id = ?"
    args = () if media_id is None else (media_id,)
    frames = [row[0] for row in conn.execute(
        f"SELECT frames.id FROM frames JOIN media ON media.id = frames.media_id "
        f"WHERE frames.vector_row IS NULL{only}", args)]
    videos = [row[0] for row in conn.execute(
        f"SELECT media.id FROM media LEFT JOIN video_vectors ON video_vectors.media_id = media.id "
        f"WHERE media.kind = 'video' AND video_vectors.media_id IS NULL{only}", args)]
    return frames, videos


def adopt_rows(conn: sqlite3.Connection, frame_rows: dict[int, int], video_rows: dict[int, int]) -> tuple[int, int]:
    """Record committed rows for frames and videos that have none; never replaces a recorded row and never
    gives one row to two owners. Returns how many frames and videos got a row."""
    with transaction(conn):
        frames = sum(conn.execute("UPDATE OR IGNORE frames SET vector_row=? WHERE id=? AND vector_row IS NULL",
                                  (row, frame_id)).rowcount for frame_id, row in frame_rows.items())
        videos = sum(conn.execute("INSERT OR IGNORE INTO video_vectors(media_id, vector_row) "
                                  "SELECT id, ? FROM media WHERE id = ?",  # not for a video deleted meanwhile
                                  (row, media_id)).rowcount for media_id, row in video_rows.items())
    return frames, videos


def existing_ids(conn: sqlite3.Connection) -> tuple[list[int], list[int]]:
    """Every frame id and every media id in the catalog."""
    return ([row[0] for row in conn.execute("SELECT id FROM frames")],
            [row[0] for row in conn.execute("SELECT id FROM media")])
