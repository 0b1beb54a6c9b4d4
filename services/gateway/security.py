"""The security headers of every response (the Content-Security-Policy allows this origin's files only)."""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from services.gateway.response_headers import HttpMiddleware, send_adding_headers

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
