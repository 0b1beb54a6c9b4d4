"""Where a request's time goes, reported in the standard ``Server-Timing`` response header.

Search uses it to report text/image encoding (``embed``) and index search (``index``) separately,
which is how `make bench-search` splits latency into its parts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from starlette.types import Receive, Scope, Send

from services.gateway.response_headers import HttpMiddleware, send_adding_headers

_spans: ContextVar[dict[str, float] | None] = ContextVar("server_timing_spans", default=None)


@contextmanager
def timed(name: str) -> Iterator[None]:
    """Add the time spent in the block to this request's span ``name``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        spans = _spans.get()
        if spans is not None:
            spans[name] = spans.get(name, 0.0) + time.perf_counter() - start


class ServerTimingMiddleware(HttpMiddleware):
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        spans: dict[str, float] = {}
        token = _spans.set(spans)
        start = time.perf_counter()

        def timing() -> list[tuple[bytes, bytes]]:
            if not spans:
                return []
            entries = [f"{name};dur={seconds * 1000:.2f}" for name, seconds in spans.items()]
            entries.append(f"total;dur={(time.perf_counter() - start) * 1000:.2f}")
            return [(b"server-timing", ", ".join(entries).encode())]

        try:
            await self.app(scope, receive, send_adding_headers(send, timing))
        finally:
            _spans.reset(token)
