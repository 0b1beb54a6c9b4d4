"""Bounded request heads (the request line and headers), for the HTTP server the gateway runs in.

uvicorn's httptools protocol keeps a request's head in memory until it is complete, however long it
grows: a client sending one endless header would grow the gateway without limit. This protocol counts
the bytes of a head still incomplete and, past MAX_HEAD_BYTES, answers 431 and drops the connection.
Without httptools uvicorn falls back to h11, whose own limit on an incomplete head (16 KB) applies.
Bodies are bounded by the app (body_limits.py).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

MAX_HEAD_BYTES = 64 * 1024  # nginx allows 32 KB by default; browsers send a few KB

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover (no httptools: uvicorn runs h11, bounded already)
    HttpToolsProtocol = None


def head_too_large_response() -> bytes:
    body = json.dumps({"detail": f"the request's headers are larger than the limit of {MAX_HEAD_BYTES} bytes"})
    return (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body.encode()))


if HttpToolsProtocol is not None:
    class BoundedHeadProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self._in_head = True  # between requests too: the next byte begins a head
            self._head_bytes = 0

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head, self._head_bytes = True, 0

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

        def data_received(self, data: bytes) -> None:
            if self.transport.is_closing():
                return
            super().data_received(data)
            if self._in_head and not self.transport.is_closing():  # all of ``data`` went into a head
                self._head_bytes += len(data)
                if self._head_bytes > MAX_HEAD_BYTES:
                    self.transport.write(head_too_large_response())
                    self.transport.close()


def http_protocol() -> type[asyncio.Protocol] | str:
    """What ``uvicorn.run(http=...)`` should use."""
    return "h11" if HttpToolsProtocol is None else BoundedHeadProtocol
