"""Tables ``users``, ``sessions``, ``api_keys``, ``invitations`` and ``audit_log``: who may use the product
(shared/accounts.py holds the rules; this module only reads and writes rows). Every secret arrives here
already hashed."""

from __future__ import annotations

import sqlite3
import time
from enum import StrEnum
from typing import TypedDict

from shared.catalog.core import transaction


class Role(StrEnum):
    OWNER = "owner"  # one per instance: manages users, invitations, and reads the audit log
    MEMBER = "member"


class UserRow(TypedDict):
    id: int
    username: str
    password_hash: str
    role: Role
    created_at: float


class ApiKeyRow(TypedDict):
    id: int
    user_id: int
    name: str
    prefix: str
    created_at: float
    last_used_at: float | None


class InvitationRow(TypedDict):
    id: int
    created_by: int | None
    created_at: float
    expires_at: float


class AuditRow(TypedDict):
    id: int
    at: float
    actor: str
    action: str
    target: str
    detail: str
    client: str


def _user(row: sqlite3.Row | None) -> UserRow | None:
    return None if row is None else UserRow(**{**row, "role": Role(row["role"])})


def insert_user(conn: sqlite3.Connection, username: str, password_hash: str, role: Role) -> int:
    return conn.execute("INSERT INTO users(username, password_hash, role, created_at) VALUES (?,?,?,?)",
                        (username, password_hash, role, time.time())).lastrowid


def has_owner(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM users WHERE role=?", (Role.OWNER,)).fetchone() is not None


def get_user(conn: sqlite3.Connection, user_id: int) -> UserRow | None:
    return _user(conn.execute("SELECT * FROM users WHERE id=?", (user_id,)).fetchone())


def user_by_name(conn: sqlite3.Connection, username: str) -> UserRow | None:
    return _user(conn.execute("SELECT * FROM users WHERE username=?", (username,)).fetchone())


def list_users(conn: sqlite3.Connection) -> list[UserRow]:
    return [_user(row) for row in conn.execute("SELECT * FROM users ORDER BY id")]


def set_password_hash(conn: sqlite3.Connection, user_id: int, password_hash: str) -> None:
    conn.execute("UPDATE users SET password_hash=? WHERE id=?", (password_hash, user_id))


def delete_user(conn: sqlite3.Connection, user_id: int) -> bool:
    """Removes the user with their sessions and keys (ON DELETE CASCADE)."""
    return conn.execute("DELETE FROM users WHERE id=?", (user_id,)).rowcount > 0


def insert_session(conn: sqlite3.Connection, token_hash: str, user_id: int, expires_at: float) -> None:
    conn.execute("INSERT INTO sessions(token_hash, user_id, created_at, expires_at) VALUES (?,?,?,?)",
                 (token_hash, user_id, time.time(), expires_at))


def user_of_session(conn: sqlite3.Connection, token_hash: str, now: float) -> UserRow | None:
    return _user(conn.execute("SELECT users.* FROM sessions JOIN users ON users.id = sessions.user_id "
                              "WHERE sessions.token_hash=? AND sessions.expires_at > ?", (token_hash, now)).fetchone())


def delete_session(conn: sqlite3.Connection, token_hash: str) -> None:
    conn.execute("DELETE FROM sessions WHERE token_hash=?", (token_hash,))


def delete_sessions_of(conn: sqlite3.Connection, user_id: int, keep: str | None = None) -> None:
    """Signs the user out everywhere, but for the session whose hash is ``keep``."""
    conn.execute("DELETE FROM sessions WHERE user_id=? AND token_hash IS NOT ?", (user_id, keep))


def delete_expired_sessions(conn: sqlite3.Connection, now: float) -> None:
    conn.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))


def insert_api_key(conn: sqlite3.Connection, user_id: int, name: str, prefix: str, key_hash: str) -> ApiKeyRow:
    key_id = conn.execute("INSERT INTO api_keys(user_id, name, prefix, key_hash, created_at) VALUES (?,?,?,?,?)",
                          (user_id, name, prefix, key_hash, time.time())).lastrowid
    return ApiKeyRow(**conn.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id=?", (key_id,)).fetchone())


_KEY_COLUMNS = "id, user_id, name, prefix, created_at, last_used_at"


def api_keys_of(conn: sqlite3.Connection, user_id: int) -> list[ApiKeyRow]:
    return [ApiKeyRow(**row) for row in conn.execute(
        f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE user_id=? ORDER BY id", (user_id,))]


def key_and_user(conn: sqlite3.Connection, key_hash: str) -> tuple[ApiKeyRow, UserRow] | None:
    row = conn.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_hash=?", (key_hash,)).fetchone()
    if row is None:
        return None
    return ApiKeyRow(**row), get_user(conn, row["user_id"])


def touch_api_key(conn: sqlite3.Connection, key_id: int, now: float) -> None:
    conn.execute("UPDATE api_keys SET last_used_at=? WHERE id=?", (now, key_id))


def delete_api_key(conn: sqlite3.Connection, key_id: int, user_id: int) -> ApiKeyRow | None:
    """Revokes the user's key ``key_id``; None when they have no such key."""
    with transaction(conn):
        row = conn.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id=? AND user_id=?", (key_id, user_id)).fetchone()
        if row is not None:
            conn.execute("DELETE FROM api_keys WHERE id=?", (key_id,))
        return None if row is None else ApiKeyRow(**row)


def insert_invitation(conn: sqlite3.Connection, token_hash: str, created_by: int | None,
                      expires_at: float) -> InvitationRow:
    invitation_id = conn.execute("INSERT INTO invitations(token_hash, created_by, created_at, expires_at) "
                                 "VALUES (?,?,?,?)", (token_hash, created_by, time.time(), expires_at)).lastrowid
    return get_invitation(conn, invitation_id)


def get_invitation(conn: sqlite3.Connection, invitation_id: int) -> InvitationRow | None:
    row = conn.execute("SELECT id, created_by, created_at, expires_at FROM invitations WHERE id=?",
                       (invitation_id,)).fetchone()
    return None if row is None else InvitationRow(**row)


def pending_invitations(conn: sqlite3.Connection, now: float) -> list[InvitationRow]:
    return [InvitationRow(**row) for row in conn.execute(
        "SELECT id, created_by, created_at, expires_at FROM invitations WHERE expires_at > ? ORDER BY id",
        (now,))]


def take_invitation(conn: sqlite3.Connection, token_hash: str, now: float) -> InvitationRow | None:
    """Uses up the live invitation with this token (it works once); None when there is none."""
    with transaction(conn):
        row = conn.execute("SELECT id, created_by, created_at, expires_at FROM invitations "
                           "WHERE token_hash=? AND expires_at > ?", (token_hash, now)).fetchone()
        if row is not None:
            conn.execute("DELETE FROM invitations WHERE id=?", (row["id"],))
        return None if row is None else InvitationRow(**row)


def delete_invitation(conn: sqlite3.Connection, invitation_id: int) -> bool:
    return conn.execute("DELETE FROM invitations WHERE id=?", (invitation_id,)).rowcount > 0


def insert_audit(conn: sqlite3.Connection, actor: str, action: str, target: str = "", detail: str = "",
                 client: str = "") -> None:
    conn.execute("INSERT INTO audit_log(at, actor, action, target, detail, client) VALUES (?,?,?,?,?,?)",
                 (time.time(), actor, action, target, detail, client))


def audit_events(conn: sqlite3.Connection, limit: int, before: int | None = None) -> list[AuditRow]:
    """The newest ``limit`` events (older than the event ``before`` when given), newest first."""
    return [AuditRow(**row) for row in conn.execute(
        "SELECT * FROM audit_log WHERE id < ? ORDER BY id DESC LIMIT ?",
        (before if before is not None else 2**63 - 1, limit))]
