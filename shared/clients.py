"""Clients of the internal services: one per remote thing, in a sync form (ingest workers, start-up
repairs) and an async form (the gateway's event loop).

Both forms raise the same error: ``UpstreamError``, with the HTTP status when the service refused
(4xx: the caller's fault; 5xx: the service's) and ``status`` None when it could not be reached or
timed out. No httpx or aiohttp error leaves this module.

The sync form is httpx; the async form (the gateway's search path) is aiohttp, whose C HTTP parser costs
about a third of httpx's CPU per call (1.0 against 3.1 ms here, a 512-float JSON body each way), and a
search makes two such calls on the gateway's one event loop.

Every request carries the internal secret (``shared/internal_auth.py``), which the embedder and the index
require: the ``secret`` a client is given, else this process's own (its MEDIASEARCH_INTERNAL_SECRET or the
data volume's key file); and the request id and job id bound where it is made (``X-Request-ID``,
``X-Job-ID``; shared/logs.py), so the service's log lines carry them too.

The index is sharded: ``IndexShards`` / ``AsyncIndexShards`` ask every shard and return a ``FanOut``
(each shard's answer or failure), so each caller decides what a partial answer means.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import aiohttp
import httpx
import numpy as np
import orjson

from shared import logs
from shared.internal_auth import INTERNAL_SECRET_HEADER, process_secret
from shared.schemas import (
    EmbedderHealth,
    EmbedImagesRequest,
    EmbedImagesResponse,
    EmbedTextResponse,
    EmbedVideoRequest,
    EmbedVideoResponse,
    ImageItem,
    IndexCompareResponse,
    IndexHealth,
    IndexSearchRequest,
    IndexSearchResponse,
    QueryVector,
)

T = TypeVar("T")
DETAIL_CHARS = 500  # of a refusal's reason


class UpstreamError(RuntimeError):
    """An internal service could not answer (``status`` None: unreachable or timed out) or refused."""

    def __init__(self, service: str, detail: str, status: int | None = None):
        super().__init__(f"{service}: {detail}")
        self.service = service
        self.detail = detail
        self.status = status

    @classmethod
    def unreachable(cls, service: str, where: str, cause: Exception) -> UpstreamError:
        return cls(service, f"unreachable at {where} ({type(cause).__name__}: {cause})")

    @property
    def caller_fault(self) -> bool:
        """The service answered 4xx: the input was bad, the service is fine."""
        return self.status is not None and 400 <= self.status < 500


# -- one request, either form: what counts as an answer and what as a failure --------------------------
def _refusal(service: str, reply: httpx.Response | AsyncReply) -> UpstreamError | None:
    """None for a 2xx answer, else the refusal with the service's reason (its ``detail`` when JSON)."""
    if reply.is_success:
        return None
    try:
        detail = str(reply.json().get("detail", reply.text))
    except (ValueError, AttributeError):  # not JSON, or JSON without a detail
        detail = reply.text
    return UpstreamError(service, detail[:DETAIL_CHARS] or f"HTTP {reply.status_code}", reply.status_code)


def _send(http: httpx.Client, service: str, method: str, url: str, **kwargs) -> httpx.Response:
    try:
        reply = http.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise UpstreamError.unreachable(service, url, exc) from exc
    if (refused := _refusal(service, reply)) is not None:
        raise refused
    return reply


@dataclass(frozen=True)
class AsyncReply:
    """A whole answer of the async form (read before its connection goes back to the pool)."""

    status_code: int
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return orjson.loads(self.content)


class AsyncHttp:
    """One aiohttp session (a keep-alive pool) per event loop, made on first use inside it: a session
    belongs to the loop it was made in."""

    def __init__(self, timeout: float):
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _session_here(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            # Idle connections are dropped before uvicorn's 5 s keep-alive would close them under a request;
            # no DNS cache: a restarted container may come back at another address.
            connector = aiohttp.TCPConnector(keepalive_timeout=4, use_dns_cache=False)
            self._session, self._loop = aiohttp.ClientSession(timeout=self.timeout, connector=connector), loop
        return self._session

    async def request(self, method: str, url: str, *, headers: dict[str, str], json: Any = None,
                      timeout: float | None = None, **kwargs) -> AsyncReply:
        """``kwargs`` as aiohttp's (``data=``); ``json`` goes out through orjson (a 512-float vector in 20 µs, the
        standard library's json took 0.3 ms here), numpy arrays as lists. Raises aiohttp's errors."""
        limit = None if timeout is None else aiohttp.ClientTimeout(total=timeout)
        if json is not None:
            kwargs["data"] = orjson.dumps(json, option=orjson.OPT_SERIALIZE_NUMPY)
            headers = {**headers, "Content-Type": "application/json"}
        async with self._session_here().request(method, url, headers=headers, timeout=limit or self.timeout,
                                                allow_redirects=False, **kwargs) as reply:
            return AsyncReply(reply.status, await reply.read())

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed and self._loop is asyncio.get_running_loop():
            await session.close()


async def _asend(http: AsyncHttp, service: str, method: str, url: str, **kwargs) -> AsyncReply:
    try:
        reply = await http.request(method, url, **kwargs)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise UpstreamError.unreachable(service, url, exc) from exc
    if (refused := _refusal(service, reply)) is not None:
        raise refused
    return reply


def _timeout(seconds: float | None) -> Any:
    return httpx.USE_CLIENT_DEFAULT if seconds is None else seconds


class _Credentials:
    """The header that proves a request comes from one of the product's own processes, with the ids of the
    request and the job it is made for."""

    def __init__(self, secret: str | None):
        self.secret = secret

    def headers(self) -> dict[str, str]:
        secret = self.secret if self.secret is not None else process_secret.get()
        return {INTERNAL_SECRET_HEADER: secret, **logs.outgoing_headers()} if secret else logs.outgoing_headers()


# -- requests and answers of each service (shared by both forms) ---------------------------------------
def _search_body(vector: np.ndarray, k: int, ef: int | None, allow_rows: list[int] | None) -> dict:
    vector = np.asarray(vector, dtype=np.float32)
    return IndexSearchRequest(vector=vector.tolist(), k=k, ef=ef, allow_rows=allow_rows).model_dump()


def _frames_body(items: list[tuple[int, str]]) -> dict:
    return EmbedImagesRequest(items=[ImageItem(owner=o, path=p) for o, p in items]).model_dump()


def _text_vectors(reply: httpx.Response | AsyncReply) -> np.ndarray:
    return np.asarray(EmbedTextResponse.model_validate_json(reply.content).vectors, dtype=np.float32)


def _query_vector(reply: httpx.Response | AsyncReply) -> np.ndarray:
    return np.asarray(QueryVector.model_validate_json(reply.content).vector, dtype=np.float32)


# -- the embedder ----------------------------------------------------------------------------------------
class EmbedderClient:
    """Thread-safe: the threads of an ingest worker share one, with ``connections`` kept open (one per thread
    that may call at once; httpx's default keeps 20 and reconnects the others every time)."""

    service = "embedder"

    def __init__(self, base_url: str, timeout: float = 120, secret: str | None = None, connections: int | None = None):
        self.base_url = base_url.rstrip("/")
        limits = httpx.Limits() if connections is None else httpx.Limits(max_connections=connections,
                                                                         max_keepalive_connections=connections)
        self.http = httpx.Client(timeout=timeout, limits=limits)
        self.credentials = _Credentials(secret)

    def _post(self, path: str, **kwargs) -> httpx.Response:
        return _send(self.http, self.service, "POST", f"{self.base_url}{path}", headers=self.credentials.headers(),
                     **kwargs)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return _text_vectors(self._post("/embed/text", json={"texts": texts}))

    def embed_query_image(self, data: bytes) -> np.ndarray:
        return _query_vector(self._post("/embed/query-image", files={"file": ("query", data)}))

    def embed_frames(self, items: list[tuple[int, str]]) -> list[int]:
        """Embed stored frames ``(owner frame id, path relative to the data dir)``; returns their rows."""
        return EmbedImagesResponse.model_validate(self._post("/embed/images", json=_frames_body(items)).json()).rows

    def embed_video(self, media_id: int, rows: list[int]) -> int:
        """Pool a video's committed frame rows into one stored video vector; returns its row."""
        body = EmbedVideoRequest(media_id=media_id, rows=rows).model_dump()
        return EmbedVideoResponse.model_validate(self._post("/embed/video", json=body).json()).row

    def metrics(self, timeout: float | None = 10) -> str:
        """The embedder's Prometheus text."""
        return _send(self.http, self.service, "GET", f"{self.base_url}/metrics", headers=self.credentials.headers(),
                     timeout=_timeout(timeout)).text

    def close(self) -> None:
        self.http.close()


class AsyncEmbedderClient:
    service = "embedder"

    def __init__(self, base_url: str, timeout: float = 60, secret: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.http = AsyncHttp(timeout)
        self.credentials = _Credentials(secret)

    async def _call(self, method: str, path: str, **kwargs) -> AsyncReply:
        return await _asend(self.http, self.service, method, f"{self.base_url}{path}",
                            headers=self.credentials.headers(), **kwargs)

    async def embed_text(self, text: str) -> np.ndarray:
        return _text_vectors(await self._call("POST", "/embed/text", json={"texts": [text]}))[0]

    async def embed_texts(self, texts: list[str]) -> np.ndarray:
        return _text_vectors(await self._call("POST", "/embed/text", json={"texts": texts}))

    async def embed_query_image(self, data: bytes, filename: str = "query") -> np.ndarray:
        form = aiohttp.FormData()
        form.add_field("file", data, filename=filename, content_type="application/octet-stream")
        return _query_vector(await self._call("POST", "/embed/query-image", data=form))

    async def health(self, timeout: float | None = 3) -> EmbedderHealth:
        reply = await self._call("GET", "/health", timeout=timeout)
        return EmbedderHealth.model_validate(reply.json())

    async def metrics(self, timeout: float | None = 3) -> str:
        """The embedder's Prometheus text."""
        return (await self._call("GET", "/metrics", timeout=timeout)).text

    async def aclose(self) -> None:
        await self.http.aclose()


# -- one index shard -------------------------------------------------------------------------------------
class IndexClient:
    """One shard. ``http``: a client to share (its owner closes it); by default the shard gets its own."""

    def __init__(self, base_url: str, timeout: float = 30, http: httpx.Client | None = None,
                 secret: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.service = f"index {self.base_url}"
        self._owned = http is None
        self.http = httpx.Client(timeout=timeout) if http is None else http
        self.credentials = _Credentials(secret)

    def _call(self, method: str, path: str, **kwargs) -> httpx.Response:
        return _send(self.http, self.service, method, f"{self.base_url}{path}", headers=self.credentials.headers(),
                     **kwargs)

    def search(self, vector: np.ndarray, k: int, ef: int | None = None,
               allow_rows: list[int] | None = None) -> IndexSearchResponse:
        reply = self._call("POST", "/search", json=_search_body(vector, k, ef, allow_rows))
        return IndexSearchResponse.model_validate_json(reply.content)

    def delete(self, rows: list[int]) -> None:
        self._call("POST", "/delete", json={"rows": rows})

    def health(self, timeout: float | None = None) -> IndexHealth:
        return IndexHealth.model_validate(self._call("GET", "/health", timeout=_timeout(timeout)).json())

    def close(self) -> None:
        if self._owned:
            self.http.close()


class AsyncIndexClient:
    """One shard, from an event loop."""

    def __init__(self, base_url: str, timeout: float = 30, secret: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.service = f"index {self.base_url}"
        self.http = AsyncHttp(timeout)
        self.credentials = _Credentials(secret)

    async def _call(self, method: str, path: str, **kwargs) -> AsyncReply:
        return await _asend(self.http, self.service, method, f"{self.base_url}{path}",
                            headers=self.credentials.headers(), **kwargs)

    async def search(self, vector: np.ndarray, k: int, ef: int | None = None,
                     allow_rows: list[int] | None = None) -> IndexSearchResponse:
        reply = await self._call("POST", "/search", json=_search_body(vector, k, ef, allow_rows))
        return IndexSearchResponse.model_validate_json(reply.content)

    async def compare(self, vector: np.ndarray, k: int, ef: int, repeat: int) -> IndexCompareResponse:
        body = {"vector": np.asarray(vector, dtype=np.float32).tolist(), "k": k, "ef": ef, "repeat": repeat}
        return IndexCompareResponse.model_validate((await self._call("POST", "/compare", json=body)).json())

    async def delete(self, rows: list[int]) -> None:
        await self._call("POST", "/delete", json={"rows": rows})

    async def health(self, timeout: float | None = None) -> IndexHealth:
        return IndexHealth.model_validate((await self._call("GET", "/health", timeout=timeout)).json())

    async def metrics(self, timeout: float | None = None) -> str:
        """The shard's Prometheus text."""
        return (await self._call("GET", "/metrics", timeout=timeout)).text

    async def aclose(self) -> None:
        await self.http.aclose()


# -- every index shard at once -----------------------------------------------------------------------------
@dataclass(frozen=True)
class FanOut(Generic[T]):
    """What each shard said, in shard order: its answer, or the UpstreamError it failed with."""

    urls: list[str]
    results: list[T | UpstreamError]

    @property
    def answers(self) -> list[T]:
        return [result for result in self.results if not isinstance(result, UpstreamError)]

    @property
    def failures(self) -> list[UpstreamError]:
        return [result for result in self.results if isinstance(result, UpstreamError)]

    @property
    def partial(self) -> bool:
        """Some shard did not answer."""
        return any(isinstance(result, UpstreamError) for result in self.results)

    def failed(self) -> list[str]:
        """``"<shard url>: <reason>"`` for each shard that failed."""
        return [f"{url}: {result.detail}" for url, result in zip(self.urls, self.results)
                if isinstance(result, UpstreamError)]


def _each(shards: list[IndexClient], call: Callable[[IndexClient], T]) -> FanOut[T]:
    results: list[T | UpstreamError] = []
    for shard in shards:
        try:
            results.append(call(shard))
        except UpstreamError as exc:
            results.append(exc)
    return FanOut([shard.base_url for shard in shards], results)


async def _aeach(shards: list[AsyncIndexClient], call: Callable[[AsyncIndexClient], Awaitable[T]]) -> FanOut[T]:
    async def one(shard: AsyncIndexClient) -> T | UpstreamError:
        try:
            return await call(shard)
        except UpstreamError as exc:
            return exc

    return FanOut([shard.base_url for shard in shards], list(await asyncio.gather(*(one(s) for s in shards))))


class IndexShards:
    """Every index shard (each keeps the rows it owns), asked one after the other over one connection pool.
    ``http``: a client to share (its owner closes it)."""

    def __init__(self, urls: list[str], timeout: float = 30, http: httpx.Client | None = None,
                 secret: str | None = None):
        self._owned = http is None
        self.http = httpx.Client(timeout=timeout) if http is None else http
        self.shards = [IndexClient(url, http=self.http, secret=secret) for url in urls]

    @property
    def urls(self) -> list[str]:
        return [shard.base_url for shard in self.shards]

    def search(self, vector: np.ndarray, k: int, ef: int | None = None,
               allow_rows: list[int] | None = None) -> FanOut[IndexSearchResponse]:
        return _each(self.shards, lambda shard: shard.search(vector, k, ef, allow_rows))

    def delete(self, rows: list[int], batch: int | None = None) -> FanOut[None]:
        """Delete ``rows`` everywhere, ``batch`` rows a request; a shard fails at its first failed batch."""
        batch = batch or max(1, len(rows))

        def delete_all(shard: IndexClient) -> None:
            for start in range(0, len(rows), batch):
                shard.delete(rows[start:start + batch])

        return _each(self.shards, delete_all)

    def health(self, timeout: float | None = None) -> FanOut[IndexHealth]:
        return _each(self.shards, lambda shard: shard.health(timeout))

    def close(self) -> None:
        if self._owned:
            self.http.close()


class AsyncIndexShards:
    """Every index shard, asked at once (the gateway's form of IndexShards); a connection pool per shard,
    so a busy shard does not hold up the others."""

    def __init__(self, urls: list[str], timeout: float = 30, secret: str | None = None):
        self.shards = [AsyncIndexClient(url, timeout, secret=secret) for url in urls]

    @property
    def urls(self) -> list[str]:
        return [shard.base_url for shard in self.shards]

    async def search(self, vector: np.ndarray, k: int, ef: int | None = None,
                     allow_rows: list[int] | None = None) -> FanOut[IndexSearchResponse]:
        return await _aeach(self.shards, lambda shard: shard.search(vector, k, ef, allow_rows))

    async def compare(self, vector: np.ndarray, k: int, ef: int, repeat: int) -> FanOut[IndexCompareResponse]:
        """Each shard's graph answer beside its exact scan (validation only, never the product's search)."""
        return await _aeach(self.shards, lambda shard: shard.compare(vector, k, ef, repeat))

    async def delete(self, rows: list[int]) -> FanOut[None]:
        return await _aeach(self.shards, lambda shard: shard.delete(rows))

    async def health(self, timeout: float | None = None) -> FanOut[IndexHealth]:
        return await _aeach(self.shards, lambda shard: shard.health(timeout))

    async def metrics(self, timeout: float | None = None) -> FanOut[str]:
        """Each shard's Prometheus text."""
        return await _aeach(self.shards, lambda shard: shard.metrics(timeout))

    async def aclose(self) -> None:
        for shard in self.shards:
            await shard.aclose()
