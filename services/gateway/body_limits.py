"""Bounded request bodies: counted as they stream in, before anything parses, spools or authenticates them.

A pure ASGI middleware. Each request's body gets the limit of its route (``route_limits``; every other
route, and any body sent to a route that takes none, gets the small JSON limit). A Content-Length over
the limit is answered 413 at once, without reading a byte; a body without one (chunked) is counted as
it arrives and answered 413 as soon as the count passes the limit. The rest is never read: the answer
says ``Connection: close`` and the server drops the connection, so the gateway's memory stays flat
whatever a client sends.

A body that turns out too large while the app is reading it is cut short there: ``receive`` raises
``BodyTooLarge`` inside the app (an upload removes what it had written on the way out), whatever the app
then answers is dropped, and the 413 goes out instead. Any other answer given before the body was read
to its end (an upload refused for its 10,001st file, a missing API key) says ``Connection: close`` too,
or the server would read and discard the rest of a body nobody wants.

Limits inside a body (files, form fields, part headers) are the multipart parser's (uploads.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.response_headers import HttpMiddleware
from shared.errors import TooLarge, too_large_message
from shared.settings import Settings

# An image query is multipart: besides the image, its boundaries, part headers and the optional words.
FORM_FRAMING_BYTES = 64 * 1024


@dataclass(frozen=True)
class BodyLimit:
    limit: int  # the figure the client is told (the setting's value)
    what: str
    setting: str  # the MEDIASEARCH_* variable that sets it
    framing: int = 0  # bytes allowed on top of ``limit`` for the body's wrapping

    @property
    def allowed(self) -> int:
        return self.limit + self.framing

    @property
    def message(self) -> str:
        return too_large_message(self.what, self.limit, self.setting)


def route_limits(settings: Settings) -> dict[tuple[str, str], BodyLimit]:
    """``(method, path) -> limit`` of the routes that take more than a JSON body."""
    return {
        ("POST", "/uploads"): BodyLimit(settings.max_upload_bytes, "the upload", "MEDIASEARCH_MAX_UPLOAD_BYTES"),
        ("POST", "/search/image"): BodyLimit(settings.max_query_image_bytes, "the query image",
                                             "MEDIASEARCH_MAX_QUERY_IMAGE_BYTES", framing=FORM_FRAMING_BYTES),
    }


def default_limit(settings: Settings) -> BodyLimit:
    return BodyLimit(settings.max_json_bytes, "the request body", "MEDIASEARCH_MAX_JSON_BYTES")


class BodyTooLarge(TooLarge):
    """Raised inside the app by ``receive`` once the body passed its limit; the middleware answers 413."""


CLOSE = (b"connection", b"close")


def declared_length(scope: Scope) -> int | None:
    """The request's Content-Length, when it sends a valid one (the HTTP server refuses the invalid)."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            return int(value) if value.strip().isdigit() else None
    return None


def is_chunked(scope: Scope) -> bool:
    return any(name.lower() == b"transfer-encoding" for name, _ in scope.get("headers", ()))


def closing(message: Message) -> Message:
    """A response start that ends the connection (the server then stops reading the request)."""
    headers = list(message.get("headers", []))
    if not any(name.lower() == b"connection" for name, _ in headers):
        headers.append(CLOSE)
    return {**message, "headers": headers}


async def refuse(scope: Scope, receive: Receive, send: Send, limit: BodyLimit) -> None:
    await JSONResponse({"detail": limit.message}, status_code=413, headers={"Connection": "close"})(
        scope, receive, send)


class BodyLimits(HttpMiddleware):
    def __init__(self, app: ASGIApp, settings: Settings):
        super().__init__(app)
        self.routes = route_limits(settings)
        self.default = default_limit(settings)

    def limit_for(self, method: str, path: str) -> BodyLimit:
        return self.routes.get((method, path.rstrip("/") or "/"), self.default)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limit_for(scope["method"], scope["path"])
        declared = declared_length(scope)
        if declared is not None and declared > limit.allowed:
            await refuse(scope, receive, send, limit)
            return

        received = 0
        exceeded = started = False
        finished = not (declared or is_chunked(scope))  # the body was read to its end (or there is none)

        async def counted_receive() -> Message:
            nonlocal received, exceeded, finished
            if exceeded:
                raise BodyTooLarge(limit.message)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.allowed:
                    exceeded = True
                    raise BodyTooLarge(limit.message)
                finished = not message.get("more_body", False)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:  # the app's answer to a body it could not finish reading: the 413 replaces it
                return
            if message["type"] == "http.response.start":
                started = True
                if not finished:
                    message = closing(message)
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await refuse(scope, receive, send, limit)
