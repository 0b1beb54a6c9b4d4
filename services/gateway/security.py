"""API key, the media cookie, and the security headers of every response.

With ``MEDIASEARCH_API_KEY`` set, every endpoint except ``/health``, the docs and the static UI
shell needs the header ``X-API-Key``. Browsers cannot add headers to ``<img>``, ``<video>`` or
``EventSource`` requests, so ``POST /session`` (with the header) sets an HttpOnly, SameSite=Strict
cookie that stands in for the key on GET/HEAD requests only: it can read, never change anything,
and never leaks into URLs, logs or Referer headers the way a ``?api_key=`` parameter would.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader
from starlette.types import Receive, Scope, Send

from services.gateway.response_headers import HttpMiddleware, send_adding_headers
from shared.schemas import ErrorBody

API_KEY_HEADER = "X-API-Key"
SESSION_COOKIE = "mediasearch_session"
SESSION_MAX_AGE = 30 * 24 * 3600
READ_METHODS = ("GET", "HEAD")

RESPONSES = {401: {"model": ErrorBody, "description": "Missing or wrong API key (when the server sets one)"}}

api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False,
                              description="Needed when the server sets MEDIASEARCH_API_KEY")


def session_token(api_key: str) -> str:
    """The cookie's value: derived from the key so the key itself is never stored in the browser."""
    return hmac.new(api_key.encode(), b"mediasearch media session", hashlib.sha256).hexdigest()


def configured_key(request: Request) -> str | None:
    secret = request.app.state.gateway.settings.api_key
    return secret.get_secret_value() if secret is not None else None


def require_api_key(request: Request, api_key: str | None = Security(api_key_header)) -> None:
    """Dependency of every protected route (a security scheme, so /docs offers to send the key)."""
    expected = configured_key(request)
    if expected is None:
        return
    if api_key is not None and hmac.compare_digest(api_key.encode(), expected.encode()):
        return
    cookie = request.cookies.get(SESSION_COOKIE)
    if (request.method in READ_METHODS and cookie is not None
            and hmac.compare_digest(cookie.encode(), session_token(expected).encode())):
        return
    raise HTTPException(401, f"missing or wrong API key: send it in the {API_KEY_HEADER} header",
                        headers={"WWW-Authenticate": API_KEY_HEADER})


CSP = ("default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self' 'unsafe-inline'; "
       "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
       "frame-ancestors 'none'")
# Swagger UI (served locally) starts with an inline bootstrap script.
DOCS_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
DOCS_PATHS = ("/docs",)


class SecurityHeaders(HttpMiddleware):
    """Pure ASGI middleware (keeps streaming responses streaming) adding the headers to every response."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        csp = (DOCS_CSP if scope["path"].startswith(DOCS_PATHS) else CSP).encode()
        headers = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                   (b"referrer-policy", b"no-referrer"), (b"content-security-policy", csp))
        await self.app(scope, receive, send_adding_headers(send, lambda: headers))
