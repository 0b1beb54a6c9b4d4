"""Adding headers to responses from pure ASGI middleware (streaming responses stay streaming)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from starlette.types import Message, Send

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
