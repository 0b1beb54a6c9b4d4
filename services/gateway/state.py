"""What every gateway request needs: settings, a catalog connection, the internal clients, the queue."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Annotated

import redis
from celery import Celery
from fastapi import Depends, Request

from shared import catalog
from shared.clients import AsyncEmbedderClient, AsyncIndexClient
from shared.media_store import MediaStore
from shared.queue import make_celery
from shared.settings import Settings
from shared.vectors import VectorStore


class Gateway:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.store = MediaStore(settings.data_path)
        self.embedder = AsyncEmbedderClient(settings.embedder_url)
        self.shards = [AsyncIndexClient(url) for url in settings.index_urls]
        self.celery: Celery = make_celery(settings)
        # For health probes; a pool, so one client serves every request thread.
        self.redis = redis.Redis.from_url(settings.effective_redis_url, socket_timeout=3, socket_connect_timeout=3)
        self._local = threading.local()
        self._vectors: VectorStore | None = None
        self._vectors_lock = threading.Lock()

    def catalog(self) -> sqlite3.Connection:
        """This thread's catalog connection (sqlite3 connections must not be shared across threads)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = catalog.connect(self.settings.catalog_path)
        return conn

    def vectors(self) -> VectorStore:
        """The vectors store, read-only; opened on first use because it appears with the first embedding."""
        with self._vectors_lock:
            if self._vectors is None:
                self._vectors = VectorStore(self.settings.vectors_dir)
            return self._vectors

    def upload_dir(self, job_id: str) -> Path:
        return self.settings.uploads_dir / job_id

    async def aclose(self) -> None:
        await self.embedder.aclose()
        for shard in self.shards:
            await shard.aclose()
        if self._vectors is not None:
            self._vectors.close()
        self.redis.close()


def get_gateway(request: Request) -> Gateway:
    return request.app.state.gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
