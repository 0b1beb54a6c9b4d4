"""Accounts: the owner made at first start with the setup token, members invited by the owner, their
sessions and API keys, the sign-in throttle and the audit log. Plain library code over the catalog
(``shared/catalog/accounts.py``); the gateway's routes and ``tools/accounts.py`` are thin shells over it.

Passwords are hashed with argon2id (argon2-cffi's defaults, rehashed when those change). Session tokens,
API keys and invitation tokens are 256 random bits, so a SHA-256 of each is stored (a slow hash adds
nothing to a secret nobody can guess, and a key is checked on every request). A token is shown once:
in the Set-Cookie of a sign-in, in the answer that creates a key or an invitation.

The setup token: until the owner exists, ``<data dir>/secrets/setup.token`` (mode 0600) holds it and the
gateway prints it in its log; creating the owner needs it, so a stranger who finds the setup page first
cannot claim the instance. It is deleted once the owner exists.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from shared.catalog import accounts as rows
from shared.catalog.accounts import ApiKeyRow, AuditRow, InvitationRow, Role, UserRow
from shared.catalog.core import transaction
from shared.errors import Conflict, Forbidden, NotFound, TooManyAttempts, Unauthenticated
from shared.internal_auth import load_or_create_secret, secrets_dir
from shared.settings import Settings

log = logging.getLogger("mediasearch.accounts")

SETUP_TOKEN_FILE = "setup.token"
API_KEY_PREFIX = "ms_"
SHOWN_KEY_CHARACTERS = len(API_KEY_PREFIX) + 8  # how much of a key lists show
STATIC_KEY_ACTOR = "MEDIASEARCH_API_KEY"
SERVER_ACTOR = "server"
WRONG_CREDENTIALS = "wrong username or password"

_hasher = PasswordHasher()
# Verified against when the username is unknown, so a wrong name costs the same time as a wrong password.
_UNKNOWN_USER_HASH = _hasher.hash(secrets.token_urlsafe(16))


class Via(StrEnum):
    SESSION = "session"
    API_KEY = "api_key"
    STATIC_KEY = "static_key"


@dataclass(frozen=True)
class Principal:
    """Who made a request: a user by session or API key, or the operator's static key."""
    user_id: int | None  # None: the static key
    username: str
    role: Role
    via: Via
    key_prefix: str = ""

    @property
    def actor(self) -> str:
        """How the audit log names them."""
        if self.via is Via.API_KEY:
            return f"{self.username} (API key {self.key_prefix})"
        return self.username

    def require_owner(self) -> None:
        if self.role is not Role.OWNER:
            raise Forbidden("only the owner can do this")

    def require_user(self) -> int:
        if self.user_id is None:
            raise Forbidden("the static key (MEDIASEARCH_API_KEY) has no account: sign in as a user for this")
        return self.user_id


def principal_of(user: UserRow, via: Via, key_prefix: str = "") -> Principal:
    return Principal(user["id"], user["username"], user["role"], via, key_prefix)


STATIC_KEY_PRINCIPAL = Principal(None, STATIC_KEY_ACTOR, Role.OWNER, Via.STATIC_KEY)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def audit(conn: sqlite3.Connection, actor: str, action: str, target: str = "", detail: str = "",
          client: str = "") -> None:
    rows.insert_audit(conn, actor, action, target, detail, client)


def audit_events(conn: sqlite3.Connection, limit: int, before: int | None = None) -> list[AuditRow]:
    return rows.audit_events(conn, limit, before)


# Setup --------------------------------------------------------------------------------------------------

def setup_token_path(settings: Settings) -> Path:
    return secrets_dir(settings) / SETUP_TOKEN_FILE


def setup_needed(conn: sqlite3.Connection) -> bool:
    return not rows.has_owner(conn)


def announce_setup(conn: sqlite3.Connection, settings: Settings) -> str | None:
    """At the gateway's start: while there is no owner, the setup token (made once, kept in the data
    volume) printed in the log with what to do with it. Returns the token, None once set up."""
    if not setup_needed(conn):
        setup_token_path(settings).unlink(missing_ok=True)
        return None
    token = load_or_create_secret(setup_token_path(settings))
    log.warning("No owner account yet. Open the web UI and create it with the setup token %s "
                "(also in %s, readable by this server's user only).", token, setup_token_path(settings))
    return token


def create_owner(conn: sqlite3.Connection, settings: Settings, token: str, username: str, password: str,
                 client: str = "") -> UserRow:
    path = setup_token_path(settings)
    with transaction(conn):
        if not setup_needed(conn):
            raise Conflict("this instance is set up already: sign in instead")
        try:
            expected = path.read_text().strip()
        except FileNotFoundError:
            expected = ""
        if not expected or not hmac.compare_digest(token.strip().encode(), expected.encode()):
            raise Unauthenticated("wrong setup token: it is in the gateway's log and in "
                                  f"{SETUP_TOKEN_FILE} in the data volume's secrets folder")
        user_id = rows.insert_user(conn, username, _hasher.hash(password), Role.OWNER)
        audit(conn, username, "setup", f"user {username}", "owner account created", client)
    path.unlink(missing_ok=True)
    return rows.get_user(conn, user_id)


# Passwords and sessions ---------------------------------------------------------------------------------

def check_password(conn: sqlite3.Connection, username: str, password: str) -> UserRow:
    """The user, when the password is theirs; else Unauthenticated (the same for an unknown name)."""
    user = rows.user_by_name(conn, username)
    try:
        _hasher.verify(user["password_hash"] if user else _UNKNOWN_USER_HASH, password)
    except (VerificationError, InvalidHashError):
        raise Unauthenticated(WRONG_CREDENTIALS) from None
    if user is None:
        raise Unauthenticated(WRONG_CREDENTIALS)
    if _hasher.check_needs_rehash(user["password_hash"]):
        rows.set_password_hash(conn, user["id"], _hasher.hash(password))
    return user


def start_session(conn: sqlite3.Connection, user_id: int, max_age_s: float) -> str:
    """A new session for the user; returns its token (the cookie's value), stored only hashed."""
    token = secrets.token_urlsafe(32)
    now = time.time()
    with transaction(conn):
        rows.delete_expired_sessions(conn, now)
        rows.insert_session(conn, hash_token(token), user_id, now + max_age_s)
    return token


def user_of_session(conn: sqlite3.Connection, token: str) -> UserRow | None:
    return rows.user_of_session(conn, hash_token(token), time.time())


def end_session(conn: sqlite3.Connection, token: str) -> None:
    rows.delete_session(conn, hash_token(token))


def change_password(conn: sqlite3.Connection, principal: Principal, current: str, new: str,
                    session_token: str | None, client: str = "") -> None:
    """Sets a new password once the current one is confirmed; signs the user out everywhere else."""
    user_id = principal.require_user()
    with transaction(conn):
        user = rows.get_user(conn, user_id)
        try:
            _hasher.verify(user["password_hash"], current)
        except (VerificationError, InvalidHashError):
            raise Forbidden("the current password is wrong") from None
        rows.set_password_hash(conn, user_id, _hasher.hash(new))
        rows.delete_sessions_of(conn, user_id, keep=hash_token(session_token) if session_token else None)
        audit(conn, principal.actor, "password changed", f"user {user['username']}", "", client)


def reset_password(conn: sqlite3.Connection, username: str) -> str:
    """For the server's command line: a new random password for ``username``, who is signed out everywhere."""
    password = secrets.token_urlsafe(12)
    with transaction(conn):
        user = rows.user_by_name(conn, username)
        if user is None:
            known = ", ".join(row["username"] for row in rows.list_users(conn)) or "none yet"
            raise NotFound(f"no user named {username!r} (users: {known})")
        rows.set_password_hash(conn, user["id"], _hasher.hash(password))
        rows.delete_sessions_of(conn, user["id"])
        audit(conn, SERVER_ACTOR, "password reset", f"user {user['username']}", "from the server's command line")
    return password


# API keys -----------------------------------------------------------------------------------------------

def create_api_key(conn: sqlite3.Connection, principal: Principal, name: str, client: str = "") -> tuple[ApiKeyRow, str]:
    """A new key for the principal's user: its row and the key itself (shown this once)."""
    user_id = principal.require_user()
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    with transaction(conn):
        row = rows.insert_api_key(conn, user_id, name, key[:SHOWN_KEY_CHARACTERS], hash_token(key))
        audit(conn, principal.actor, "api key created", f"key {row['prefix']}", name, client)
    return row, key


def api_keys_of(conn: sqlite3.Connection, principal: Principal) -> list[ApiKeyRow]:
    return rows.api_keys_of(conn, principal.require_user())


def revoke_api_key(conn: sqlite3.Connection, principal: Principal, key_id: int, client: str = "") -> None:
    with transaction(conn):
        row = rows.delete_api_key(conn, key_id, principal.require_user())
        if row is None:
            raise NotFound(f"you have no API key with id {key_id}")
        audit(conn, principal.actor, "api key revoked", f"key {row['prefix']}", row["name"], client)


KEY_USE_RESOLUTION_S = 60.0  # last_used_at is written at most this often per key (not on every request)


def user_of_api_key(conn: sqlite3.Connection, key: str) -> Principal | None:
    found = rows.key_and_user(conn, hash_token(key))
    if found is None:
        return None
    row, user = found
    now = time.time()
    if row["last_used_at"] is None or now - row["last_used_at"] > KEY_USE_RESOLUTION_S:
        rows.touch_api_key(conn, row["id"], now)
    return principal_of(user, Via.API_KEY, row["prefix"])


# Users and invitations ----------------------------------------------------------------------------------

def list_users(conn: sqlite3.Connection, principal: Principal) -> list[UserRow]:
    principal.require_owner()
    return rows.list_users(conn)


def remove_user(conn: sqlite3.Connection, principal: Principal, user_id: int, client: str = "") -> None:
    principal.require_owner()
    with transaction(conn):
        user = rows.get_user(conn, user_id)
        if user is None:
            raise NotFound(f"no user with id {user_id}")
        if user["role"] is Role.OWNER:
            raise Conflict("the owner cannot be removed")
        rows.delete_user(conn, user_id)
        audit(conn, principal.actor, "user removed", f"user {user['username']}", "", client)


def create_invitation(conn: sqlite3.Connection, principal: Principal, valid_s: float,
                      client: str = "") -> tuple[InvitationRow, str]:
    """A one-time invitation for a new member: its row and its token (shown this once)."""
    principal.require_owner()
    token = secrets.token_urlsafe(32)
    with transaction(conn):
        row = rows.insert_invitation(conn, hash_token(token), principal.user_id, time.time() + valid_s)
        audit(conn, principal.actor, "invitation created", f"invitation {row['id']}",
              f"valid for {valid_s / 3600:g} h", client)
    return row, token


def pending_invitations(conn: sqlite3.Connection, principal: Principal) -> list[InvitationRow]:
    principal.require_owner()
    return rows.pending_invitations(conn, time.time())


def revoke_invitation(conn: sqlite3.Connection, principal: Principal, invitation_id: int, client: str = "") -> None:
    principal.require_owner()
    with transaction(conn):
        if not rows.delete_invitation(conn, invitation_id):
            raise NotFound(f"no invitation with id {invitation_id}")
        audit(conn, principal.actor, "invitation revoked", f"invitation {invitation_id}", "", client)


def accept_invitation(conn: sqlite3.Connection, token: str, username: str, password: str,
                      client: str = "") -> UserRow:
    with transaction(conn):
        invitation = rows.take_invitation(conn, hash_token(token), time.time())
        if invitation is None:
            raise Unauthenticated("this invitation is unknown, used or expired: ask the owner for a new one")
        if rows.user_by_name(conn, username) is not None:
            raise Conflict(f"the username {username!r} is taken: choose another")
        user_id = rows.insert_user(conn, username, _hasher.hash(password), Role.MEMBER)
        audit(conn, username, "invitation accepted", f"user {username}", f"invitation {invitation['id']}", client)
    return rows.get_user(conn, user_id)


# The sign-in throttle -----------------------------------------------------------------------------------

class SignInThrottle:
    """Backoff after failed sign-ins, per client address and per username: the first ``free`` failures
    cost nothing, then each further one doubles the wait before the next try (1 s, 2 s, 4 s ... up to
    ``max_wait_s``). A success clears the username's and the client's count. In the gateway's memory: one
    gateway process, as the rate limits (services/gateway/ratelimit.py)."""

    MAX_TRACKED = 10_000

    def __init__(self, free: int = 5, max_wait_s: float = 900.0, clock: Callable[[], float] = time.monotonic):
        self.free = free
        self.max_wait_s = max_wait_s
        self.clock = clock
        self.failures: OrderedDict[str, tuple[int, float]] = OrderedDict()  # who -> (failures, blocked until)

    def check(self, client: str, username: str) -> None:
        """TooManyAttempts (with Retry-After) while either is waiting out its backoff."""
        now = self.clock()
        until = max(self.failures.get(key, (0, 0.0))[1] for key in self._keys(client, username))
        if until > now:
            seconds = max(1, math.ceil(until - now))
            raise TooManyAttempts(f"too many failed sign-ins: try again in {seconds} s",
                                  headers={"Retry-After": str(seconds)})

    def failed(self, client: str, username: str) -> None:
        now = self.clock()
        for key in self._keys(client, username):
            count, _ = self.failures.pop(key, (0, 0.0))
            count += 1
            wait = 0.0 if count <= self.free else min(self.max_wait_s, 2.0 ** (count - self.free - 1))
            self.failures[key] = (count, now + wait)
        while len(self.failures) > self.MAX_TRACKED:
            self.failures.popitem(last=False)

    def succeeded(self, client: str, username: str) -> None:
        for key in self._keys(client, username):
            self.failures.pop(key, None)

    @staticmethod
    def _keys(client: str, username: str) -> tuple[str, str]:
        return f"client:{client}", f"user:{username.casefold()}"
