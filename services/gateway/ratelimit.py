"""Per-client rate limits on the expensive endpoints: search (a model call and an index walk each) and
uploads (disk and ingest work).

A token bucket per client IP address: it holds one minute's worth of requests and refills
continuously, so a client may burst up to the per-minute figure and then keep the per-minute pace.
An empty bucket answers 429 with ``Retry-After`` (seconds until the next token).

The buckets live in this process's memory: right for the single gateway this product runs. Several
gateway processes would each allow the full rate. Clients are told apart by address: behind a reverse
proxy listed in MEDIASEARCH_TRUSTED_PROXIES that is the address it forwards (X-Forwarded-For), else the
peer's (anyone can send X-Forwarded-For). Strangers are refused before they reach a limit (auth.RequireSignIn);
failed sign-ins have their own backoff (shared/accounts.py).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from fastapi import HTTPException, Request

from services.gateway.auth import client_address
from shared.schemas import ErrorBody

MAX_CLIENTS = 10_000  # buckets kept in memory
RESPONSES = {429: {"model": ErrorBody, "description": "Too many requests from this client; wait Retry-After seconds"}}


class TokenBuckets:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # tokens per second
        self.clock = clock
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)

    def take(self, client: str) -> float:
        """Spend a token of ``client``'s bucket; returns 0 when allowed, else the seconds to wait."""
        now = self.clock()
        tokens, at = self.buckets.pop(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.rate)
        allowed = tokens >= 1
        self.buckets[client] = (tokens - 1 if allowed else tokens, now)
        if len(self.buckets) > MAX_CLIENTS:
            self._forget_some(now)
        return 0.0 if allowed else (1 - tokens) / self.rate

    def _forget_some(self, now: float) -> None:
        """A bucket that has refilled is the same as no bucket: drop those, then the least recently used
        down to 90% (so the scan runs once per thousand new clients, not on every request)."""
        for client in [client for client, (tokens, at) in self.buckets.items()
                       if tokens + (now - at) * self.rate >= self.capacity]:
            del self.buckets[client]
        while len(self.buckets) > MAX_CLIENTS * 0.9:
            self.buckets.popitem(last=False)


class RateLimit:
    """A route dependency: at most ``per_minute`` requests a minute per client (0: no limit).

    Async, so it runs on the event loop and the buckets need no lock.
    """

    def __init__(self, what: str, per_minute: int):
        self.what = what
        self.buckets = TokenBuckets(per_minute) if per_minute else None

    async def __call__(self, request: Request) -> None:
        if self.buckets is None:
            return
        wait = self.buckets.take(client_address(request))
        if wait:
            seconds = max(1, math.ceil(wait))
            raise HTTPException(429, f"too many {self.what} requests: at most {int(self.buckets.capacity)} a "
                                     f"minute per client; try again in {seconds} s",
                                headers={"Retry-After": str(seconds)})
