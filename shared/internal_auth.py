"""The secret the product's own processes share, so that the embedder and the index answer only them.

Where it comes from: ``MEDIASEARCH_INTERNAL_SECRET`` when the operator sets it, else the file
``<data dir>/secrets/internal.key`` (mode 0600), which the first process to need it creates. Every
process of one deployment shares the data volume (natively and in compose), so they all read the same
file. The native launcher keeps Redis's generated password the same way (``redis.password``).

Callers send it in the ``X-Internal-Secret`` header (``shared/clients.py`` does); the embedder and the
index wrap their apps in ``RequireInternalSecret``, which refuses every request without it (401) but
``GET /health``, which container healthchecks call anonymously.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import stat
import tempfile
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from shared.settings import Settings

log = logging.getLogger("mediasearch.auth")

INTERNAL_SECRET_HEADER = "X-Internal-Secret"
INTERNAL_KEY_FILE = "internal.key"
REDIS_PASSWORD_FILE = "redis.password"
OPEN_ROUTES = frozenset({("GET", "/health")})  # answered anonymously (with less detail)
REFUSAL = (f"this service answers only mediasearch's own services: the {INTERNAL_SECRET_HEADER} header "
           "is missing or wrong (see MEDIASEARCH_INTERNAL_SECRET)")


def secrets_dir(settings: Settings) -> Path:
    return settings.data_path / "secrets"


def load_or_create_secret(path: Path) -> str:
    """The secret in ``path``; when there is none, a new random one written there first (mode 0600 in a
    0700 folder). Safe when several processes start at once: the file appears whole, by one hard link
    that fails for all but the first (O_EXCL semantics), and the others read the winner's."""
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process came first: its secret is the one
    finally:
        os.unlink(temporary)
    return _read_secret(path)


def _read_secret(path: Path) -> str:
    mode = path.stat().st_mode
    if mode & 0o077:
        log.warning("%s is open to other users (mode %o); making it 0600", path, stat.S_IMODE(mode))
        try:
            path.chmod(0o600)
        except OSError as exc:
            log.warning("cannot chmod %s: %s", path, exc)
    secret = path.read_text().strip()
    if not secret:
        raise ValueError(f"{path} is empty: delete it to have a new secret made, or write one into it")
    return secret


def _configured(settings: Settings) -> str:
    """MEDIASEARCH_INTERNAL_SECRET, or "" when unset or empty."""
    return settings.internal_secret.get_secret_value().strip() if settings.internal_secret else ""


def internal_secret(settings: Settings) -> str:
    """This deployment's internal secret: the setting, else the data volume's key file (made if missing)."""
    if configured := _configured(settings):
        return configured
    return load_or_create_secret(secrets_dir(settings) / INTERNAL_KEY_FILE)


class ProcessSecret:
    """The secret of this process's own settings (``Settings()``), for clients given none: the setting,
    else the key file once it exists. Clients never create the file (the services and the launcher do),
    so a client started first sends nothing, is refused, and finds the secret on a later request."""

    def __init__(self) -> None:
        self._value: str | None = None
        self._settings: Settings | None = None

    def get(self) -> str | None:
        if self._value is None:
            if self._settings is None:
                self._settings = Settings()
            if configured := _configured(self._settings):
                self._value = configured
            else:
                try:
                    self._value = _read_secret(secrets_dir(self._settings) / INTERNAL_KEY_FILE)
                except (FileNotFoundError, ValueError):
                    return None
        return self._value


process_secret = ProcessSecret()


def secret_matches(presented: str | bytes | None, secret: str) -> bool:
    """Constant-time comparison of a presented header value with the secret."""
    if presented is None:
        return False
    if isinstance(presented, str):
        presented = presented.encode()
    return hmac.compare_digest(presented, secret.encode())


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def presented_secret(scope: Scope) -> bytes | None:
    """The value of the internal-secret header of an ASGI request, if it has one."""
    wanted = INTERNAL_SECRET_HEADER.lower().encode()
    return next((value for name, value in scope.get("headers", []) if name == wanted), None)


class RequireInternalSecret:
    """ASGI middleware: a request without the internal secret gets 401 ``{"detail": ...}`` and never
    reaches the app, but for an anonymous ``GET /health`` (one presenting a wrong secret is refused there
    too, so a misconfigured caller hears why). Plain ASGI: no web framework needed here."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], secret: str):
        self.app = app
        self.secret = secret

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        presented = presented_secret(scope)
        if (scope["type"] not in ("http", "websocket") or secret_matches(presented, self.secret)
                or (presented is None and (scope.get("method"), scope["path"]) in OPEN_ROUTES)):
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            body = json.dumps({"detail": REFUSAL}).encode()
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
