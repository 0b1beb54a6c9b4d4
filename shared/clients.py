"""Small HTTP clients for the internal services, used by the gateway and the ingest workers."""

from __future__ import annotations

import httpx
import numpy as np

from shared.schemas import (EmbedImagesRequest, EmbedImagesResponse, EmbedTextResponse, ImageItem,
                            IndexSearchRequest, IndexSearchResponse, QueryVector)


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
