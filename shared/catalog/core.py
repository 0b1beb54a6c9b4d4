"""The transaction rule and the small SQL helpers every table group shares."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

_savepoint_names = itertools.count()
T = TypeVar("T")


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """All statements inside happen together or not at all; safe to nest.

    Outermost: ``BEGIN IMMEDIATE`` … ``COMMIT`` (the write lock is taken up front, so two writers never
    deadlock upgrading a read lock). Inside an open transaction: ``SAVEPOINT`` … ``RELEASE``, and an
    exception rolls back to the savepoint, undoing only the inner part; the outer transaction goes on
    unless the exception leaves it too. A connection is used by one thread at a time (see connect()).
    """
    if not conn.in_transaction:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite rolls back by itself after some errors (e.g. a full disk)
                conn.execute("ROLLBACK")
            raise
        return
    name = f"nested_{next(_savepoint_names)}"
    conn.execute(f"SAVEPOINT {name}")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
        raise
    conn.execute(f"RELEASE {name}")


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run each statement of ``script`` in the transaction that is open (executescript() would commit it)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""
    if any(line.strip() and not line.strip().startswith("--") for line in statement.splitlines()):
        raise ValueError(f"SQL statement without its ';': {statement.strip()[:200]}")


def marks(values: Sequence) -> str:
    """``?,?,?``: one placeholder per value."""
    return ",".join("?" for _ in values)


IN_CHUNK = 900  # ids per "IN (...)"; SQLite allows 999 variables in a statement by default


def chunks(ids: list[T]) -> Iterator[list[T]]:
    """``ids`` in lists short enough for one ``IN (...)`` (SQLite limits the variables of one statement)."""
    for start in range(0, len(ids), IN_CHUNK):
        yield ids[start:start + IN_CHUNK]


def cover_frames(conn: sqlite3.Connection, members: str, group: str, order: str, group_ids: list[int],
                 per_group: int) -> dict[int, list[int]]:
    """Up to ``per_group`` thumbnail frames per group (a cluster or a collection), best members first."""
    if not group_ids:
        return {}
    found = conn.execute(
        f"SELECT grp, frame FROM (SELECT m.{group} AS grp, "
        "(SELECT MIN(frames.id) FROM frames WHERE frames.media_id = m.media_id) AS frame, "
        f"ROW_NUMBER() OVER (PARTITION BY m.{group} ORDER BY {order}) AS rank "
        f"FROM {members} AS m WHERE m.{group} IN ({marks(group_ids)})) "
        "WHERE rank <= ? AND frame IS NOT NULL ORDER BY grp, rank", [*group_ids, per_group])
    covers: dict[int, list[int]] = {}
    for group_id, frame_id in found:
        covers.setdefault(group_id, []).append(frame_id)
    return covers
