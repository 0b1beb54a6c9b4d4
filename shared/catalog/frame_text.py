"""Table ``frame_text`` and its trigram index ``frame_text_search``: the words read in each frame (OCR), and
the reading's state on ``media`` (text_status).

Media are read in the background once indexed (services/ingest_worker/ocr.py): a reader claims one item
(``claim_unread``), reads all its frames and records their lines at once (``record_text``). A claim held
by a worker that is no longer alive is taken over; an item whose reading was started ``max_attempts``
times (a reader that died on it each time) fails with the reason.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from enum import StrEnum
from typing import NamedTuple, TypedDict

from shared.catalog.core import transaction
from shared.catalog.media import MediaRow, MediaStatus
from shared.catalog.vector_rows import media_conditions
from shared.text_match import normalise

CLAIM_LOOKAHEAD = 64  # unread items looked at per claim (those another live worker holds are skipped)


class TextStatus(StrEnum):
    RUNNING = "running"
    READ = "read"
    FAILED = "failed"


class TextLine(TypedDict):
    text: str
    confidence: float
    box: list[list[float]]  # four corners (x, y) as fractions of the upright frame's width and height


class TextProgress(NamedTuple):
    read: int  # media whose text was read (with or without words found)
    waiting: int  # indexed media not read yet
    failed: int


class TextCandidate(NamedTuple):
    frame_id: int
    vector_row: int
    search_text: str  # its lines normalised, one per line (the lines themselves: frames_text)


def claim_unread(conn: sqlite3.Connection, worker_id: str, alive: Callable[[str], bool], max_attempts: int,
                 skip: frozenset[int] = frozenset()) -> MediaRow | None:
    """Claim the oldest indexed media whose text is not read (or whose reader died) for ``worker_id``, but
    none of ``skip``. Liveness (a Redis call) is asked outside the write lock; each claim is then a
    compare-and-set on the state it was asked about."""
    leave_out = f" AND id NOT IN ({','.join('?' * len(skip))})" if skip else ""
    for row in conn.execute(
            "SELECT id, text_status, text_claimed_by, text_attempts FROM media "
            f"WHERE (text_status IS NULL OR text_status = 'running') AND status = ?{leave_out} ORDER BY id LIMIT ?",
            (MediaStatus.INDEXED, *skip, CLAIM_LOOKAHEAD)).fetchall():
        holder = row["text_claimed_by"]
        if row["text_status"] == TextStatus.RUNNING and holder != worker_id and alive(holder):
            continue
        unchanged = ("WHERE id=? AND text_status IS ? AND text_claimed_by IS ? AND text_attempts=?",
                     (row["id"], row["text_status"], holder, row["text_attempts"]))
        with transaction(conn):
            if row["text_attempts"] >= max_attempts:
                conn.execute(f"UPDATE media SET text_status=?, text_claimed_by=NULL, text_reason=? {unchanged[0]}",
                             (TextStatus.FAILED, f"gave up: its reading was started {row['text_attempts']} "
                                                 "times and never finished", *unchanged[1]))
                continue
            if conn.execute("UPDATE media SET text_status=?, text_claimed_by=?, text_attempts=text_attempts+1 "
                            f"{unchanged[0]}", (TextStatus.RUNNING, worker_id, *unchanged[1])).rowcount:
                return MediaRow(**conn.execute("SELECT * FROM media WHERE id=?", (row["id"],)).fetchone())
    return None


def indexed_text(lines: list[TextLine]) -> str:
    """What the trigram index holds for a frame (``search_text``): its lines normalised, one per line."""
    return "\n".join(normalise(line["text"]).replace("\n", " ") for line in lines)


def record_text(conn: sqlite3.Connection, media_id: int, worker_id: str, lines: dict[int, list[TextLine]]) -> bool:
    """Record the lines read in each frame of a media item (``{frame id: lines}``; frames without words may be
    left out) and mark it read; False (nothing written) when it was deleted or taken over meanwhile."""
    with transaction(conn):
        if not _holds(conn, media_id, worker_id):
            return False
        frames = [row[0] for row in conn.execute("SELECT id FROM frames WHERE media_id=?", (media_id,))]
        conn.executemany("DELETE FROM frame_text WHERE frame_id=?", [(f,) for f in frames])
        conn.executemany("INSERT INTO frame_text (frame_id, search_text, lines) VALUES (?, ?, ?)",
                         [(f, indexed_text(lines[f]), json.dumps(lines[f])) for f in frames if lines.get(f)])
        conn.execute("UPDATE media SET text_status=?, text_claimed_by=NULL, text_reason=NULL WHERE id=?",
                     (TextStatus.READ, media_id))
    return True


def text_failed(conn: sqlite3.Connection, media_id: int, worker_id: str, reason: str) -> None:
    with transaction(conn):
        if _holds(conn, media_id, worker_id):
            conn.execute("UPDATE media SET text_status=?, text_claimed_by=NULL, text_reason=? WHERE id=?",
                         (TextStatus.FAILED, reason[:500], media_id))


def release_text(conn: sqlite3.Connection, media_id: int, worker_id: str) -> None:
    """Give a claimed item back unread, its attempt not counted (the worker is stopping)."""
    with transaction(conn):
        if _holds(conn, media_id, worker_id):
            conn.execute("UPDATE media SET text_status=NULL, text_claimed_by=NULL, text_attempts=text_attempts-1 "
                         "WHERE id=?", (media_id,))


def _holds(conn: sqlite3.Connection, media_id: int, worker_id: str) -> bool:
    return conn.execute("SELECT 1 FROM media WHERE id=? AND text_status=? AND text_claimed_by=?",
                        (media_id, TextStatus.RUNNING, worker_id)).fetchone() is not None


def frame_text(conn: sqlite3.Connection, frame_id: int) -> tuple[str | None, list[TextLine]] | None:
    """A frame's reading state (its media's text_status, with NULL for not read yet) and its lines; None for
    an unknown frame."""
    found = conn.execute(
        "SELECT media.text_status, frame_text.lines FROM frames JOIN media ON media.id = frames.media_id "
        "LEFT JOIN frame_text ON frame_text.frame_id = frames.id WHERE frames.id=?", (frame_id,)).fetchone()
    if found is None:
        return None
    return found["text_status"], json.loads(found["lines"]) if found["lines"] else []


def frames_text(conn: sqlite3.Connection, frame_ids: list[int]) -> dict[int, list[TextLine]]:
    """The lines of each of these frames that has words."""
    found = conn.execute(f"SELECT frame_id, lines FROM frame_text WHERE frame_id IN ({','.join('?' * len(frame_ids))})",
                         frame_ids) if frame_ids else []
    return {row["frame_id"]: json.loads(row["lines"]) for row in found}


def text_candidates(conn: sqlite3.Connection, match: str, limit: int, **filters) -> list[TextCandidate]:
    """Embedded frames whose text matches the FTS5 expression ``match`` (shared/text_match.py's
    candidates_query), best bm25 rank first, among the media passing ``filters`` (media_conditions')."""
    conditions, params = media_conditions(conn, **filters)
    where = " AND ".join(["frame_text_search MATCH ?", "frames.vector_row IS NOT NULL", *conditions])
    found = conn.execute(
        "SELECT frame_text.frame_id, frames.vector_row, frame_text.search_text FROM frame_text_search "
        "JOIN frame_text ON frame_text.frame_id = frame_text_search.rowid "
        "JOIN frames ON frames.id = frame_text.frame_id JOIN media ON media.id = frames.media_id "
        f"WHERE {where} ORDER BY frame_text_search.rank LIMIT ?", [match, *params, limit])
    return [TextCandidate(row["frame_id"], row["vector_row"], row["search_text"]) for row in found]


def job_text_progress(conn: sqlite3.Connection, job_id: str) -> TextProgress:
    """How far the text of a job's indexed media (its own and the duplicates it matched) has been read."""
    counts = dict(conn.execute(
        "SELECT COALESCE(media.text_status, ''), COUNT(*) FROM media WHERE media.status = ? AND media.id IN "
        "(SELECT media_id FROM job_items WHERE job_id = ? AND media_id IS NOT NULL) "
        "GROUP BY COALESCE(media.text_status, '')", (MediaStatus.INDEXED, job_id)).fetchall())
    return TextProgress(read=counts.get(TextStatus.READ, 0),
                        waiting=counts.get("", 0) + counts.get(TextStatus.RUNNING, 0),
                        failed=counts.get(TextStatus.FAILED, 0))
