"""Small HTTP clients for the internal services, used by the gateway and the ingest workers."""

from __future__ import annotations

import httpx
import numpy as np

from shared.schemas import (
    EmbedderHealth,
    EmbedImagesRequest,
    EmbedImagesResponse,
    EmbedTextResponse,
    EmbedVideoRequest,
    EmbedVideoResponse,
    ImageItem,
    IndexHealth,
    IndexSearchRequest,
    IndexSearchResponse,
    QueryVector,
)


class EmbedderClient:
    def __init__(self, base_url: str, timeout: float = 120):
        self.http = httpx.Client(base_url=base_url, timeout=timeout)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        reply = self.http.post("/embed/text", json={"texts": texts})
        reply.raise_for_status()
        return np.asarray(EmbedTextResponse.model_validate(reply.json()).vectors, dtype=np.float32)

    def embed_query_image(self, data: bytes) -> np.ndarray:
        reply = self.http.post("/embed/query-image", files={"file": ("query", data)})
        reply.raise_for_status()
        return np.asarray(QueryVector.model_validate(reply.json()).vector, dtype=np.float32)

    def embed_frames(self, items: list[tuple[int, str]]) -> list[int]:
        """Embed stored frames ``(owner frame id, path relative to the data dir)``; returns their rows."""
        body = EmbedImagesRequest(items=[ImageItem(owner=o, path=p) for o, p in items])
        reply = self.http.post("/embed/images", json=body.model_dump())
        reply.raise_for_status()
        return EmbedImagesResponse.model_validate(reply.json()).rows

    def embed_video(self, media_id: int, rows: list[int]) -> int:
        """Pool a video's committed frame rows into one stored video vector; returns its row."""
        body = EmbedVideoRequest(media_id=media_id, rows=rows)
        reply = self.http.post("/embed/video", json=body.model_dump())
        reply.raise_for_status()
        return EmbedVideoResponse.model_validate(reply.json()).row

    def close(self) -> None:
        self.http.close()


class IndexClient:
    def __init__(self, base_url: str, timeout: float = 30):
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=timeout)

    def search(self, vector: np.ndarray, k: int, ef: int | None = None,
               allow_rows: list[int] | None = None) -> IndexSearchResponse:
        body = IndexSearchRequest(vector=[float(x) for x in vector], k=k, ef=ef, allow_rows=allow_rows)
        reply = self.http.post("/search", json=body.model_dump())
        reply.raise_for_status()
        return IndexSearchResponse.model_validate(reply.json())

    def delete(self, rows: list[int]) -> None:
        self.http.post("/delete", json={"rows": rows}).raise_for_status()

    def close(self) -> None:
        self.http.close()


# -- async clients (the gateway fans out from its event loop) -----------------------------------------
class UpstreamError(RuntimeError):
    """An internal service could not answer (``status`` None: unreachable or timed out) or refused."""

    def __init__(self, service: str, detail: str, status: int | None = None):
        super().__init__(f"{service}: {detail}")
        self.service = service
        self.detail = detail
        self.status = status

    @property
    def caller_fault(self) -> bool:
        """The service answered 4xx: the input was bad, the service is fine."""
        return self.status is not None and 400 <= self.status < 500


async def _call(http: httpx.AsyncClient, service: str, method: str, path: str, **kwargs) -> httpx.Response:
    try:
        reply = await http.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise UpstreamError(service, f"unreachable at {http.base_url} ({type(exc).__name__}: {exc})") from exc
    if reply.status_code >= 400:
        try:
            detail = str(reply.json().get("detail", reply.text))
        except ValueError:
            detail = reply.text
        raise UpstreamError(service, detail[:500] or f"HTTP {reply.status_code}", reply.status_code)
    return reply


class AsyncEmbedderClient:
    def __init__(self, base_url: str, timeout: float = 60):
        self.http = httpx.AsyncClient(base_url=base_url, timeout=timeout)

    async def embed_text(self, text: str) -> np.ndarray:
        reply = await _call(self.http, "embedder", "POST", "/embed/text", json={"texts": [text]})
        return np.asarray(EmbedTextResponse.model_validate(reply.json()).vectors[0], dtype=np.float32)

    async def embed_query_image(self, data: bytes, filename: str = "query") -> np.ndarray:
        reply = await _call(self.http, "embedder", "POST", "/embed/query-image", files={"file": (filename, data)})
        return np.asarray(QueryVector.model_validate(reply.json()).vector, dtype=np.float32)

    async def health(self, timeout: float = 3) -> EmbedderHealth:
        reply = await _call(self.http, "embedder", "GET", "/health", timeout=timeout)
        return EmbedderHealth.model_validate(reply.json())

    async def aclose(self) -> None:
        await self.http.aclose()


class AsyncIndexClient:
    def __init__(self, base_url: str, timeout: float = 30):
        self.base_url = base_url
        self.http = httpx.AsyncClient(base_url=base_url, timeout=timeout)

    async def search(self, vector: np.ndarray, k: int, ef: int | None = None,
                     allow_rows: list[int] | None = None) -> IndexSearchResponse:
        body = IndexSearchRequest(vector=vector.tolist(), k=k, ef=ef, allow_rows=allow_rows)
        reply = await _call(self.http, f"index {self.base_url}", "POST", "/search", json=body.model_dump())
        return IndexSearchResponse.model_validate(reply.json())

    async def delete(self, rows: list[int]) -> None:
        await _call(self.http, f"index {self.base_url}", "POST", "/delete", json={"rows": rows})

    async def health(self, timeout: float = 3) -> IndexHealth:
        reply = await _call(self.http, f"index {self.base_url}", "GET", "/health", timeout=timeout)
        return IndexHealth.model_validate(reply.json())

    async def aclose(self) -> None:
        await self.http.aclose()
