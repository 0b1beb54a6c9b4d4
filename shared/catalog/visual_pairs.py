"""Table ``visual_pairs``: media items whose vectors were found to be nearest neighbours, and how similar
they are (shared/organise/duplicates.py looks them up in the index once per vector and groups from here).

A media item's ``visual_row`` is the vector row whose neighbours are recorded: a media item whose vector
row is another (re-embedded) or that has none recorded yet is looked up again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from shared.catalog.core import chunks, marks, transaction


def visual_rows(conn: sqlite3.Connection) -> dict[int, int]:
    """``{media_id: vector row}`` of the media whose neighbours are recorded."""
    return dict(conn.execute("SELECT id, visual_row FROM media WHERE visual_row IS NOT NULL").fetchall())


def forget_visual_pairs(conn: sqlite3.Connection, media_ids: Iterable[int]) -> None:
    """Drop the pairs of these media (their vectors changed) and mark them not looked up."""
    with transaction(conn):
        for chunk in chunks(list(media_ids)):
            conn.execute(f"DELETE FROM visual_pairs WHERE a IN ({marks(chunk)}) OR b IN ({marks(chunk)})",
                         chunk + chunk)
            conn.execute(f"UPDATE media SET visual_row = NULL WHERE id IN ({marks(chunk)})", chunk)


def record_visual_pairs(conn: sqlite3.Connection, pairs: Iterable[tuple[int, int, float]],
                        looked_up: dict[int, int]) -> None:
    """Record pairs ``(media, media, similarity)`` and that the media of ``looked_up`` ``{media_id: vector
    row}`` had their neighbours looked up. Pairs with media deleted meanwhile are dropped."""
    with transaction(conn):
        conn.executemany(
            "INSERT OR REPLACE INTO visual_pairs(a, b, similarity) "
            "SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM media WHERE id = ?) AND EXISTS (SELECT 1 FROM media WHERE id = ?)",
            [(min(a, b), max(a, b), similarity, a, b) for a, b, similarity in pairs if a != b])
        conn.executemany("UPDATE media SET visual_row = ? WHERE id = ?",
                         [(row, media_id) for media_id, row in looked_up.items()])


def visual_pairs(conn: sqlite3.Connection, threshold: float) -> list[tuple[int, int, float]]:
    """Every recorded pair at least ``threshold`` similar, ``(a, b, similarity)`` with a < b."""
    return conn.execute("SELECT a, b, similarity FROM visual_pairs WHERE similarity >= ?", (threshold,)).fetchall()
