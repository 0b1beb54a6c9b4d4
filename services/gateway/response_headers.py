"""Adding headers to responses from pure ASGI middleware (streaming responses stay streaming)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

Headers = Iterable[tuple[bytes, bytes]]


def send_adding_headers(send: Send, headers: Callable[[], Headers]) -> Send:
    """``send``, with ``headers()`` (computed as the response starts) added where the response lacks them."""

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            existing = list(message.get("headers", []))
            present = {name.lower() for name, _ in existing}
            message = {**message, "headers": existing + [(n, v) for n, v in headers() if n not in present]}
        await send(message)

    return send_with_headers


class HttpMiddleware:
    """Pure ASGI middleware that handles HTTP requests (``http``) and passes anything else through."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError
