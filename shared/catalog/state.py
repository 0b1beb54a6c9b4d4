"""Table ``library_state``: small named timestamps (e.g. when re-clustering was last asked for)."""

from __future__ import annotations

import sqlite3


def get_state(conn: sqlite3.Connection, key: str) -> float | None:
    found = conn.execute("SELECT value FROM library_state WHERE key=?", (key,)).fetchone()
    return found[0] if found else None


def set_state(conn: sqlite3.Connection, key: str, value: float) -> None:
    conn.execute("INSERT INTO library_state(key, value) VALUES (?,?) "
                 "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value))
