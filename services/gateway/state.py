"""What every gateway request needs: settings, a catalog connection, the internal clients, the queue."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import anyio
import redis

from services.gateway.tasks import TaskQueue
from shared import catalog
from shared.clients import AsyncEmbedderClient, AsyncIndexShards
from shared.internal_auth import internal_secret
from shared.media_store import MediaStore
from shared.settings import Settings
from shared.vectors import LazyReader, VectorStore


class Gateway:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.store = MediaStore(settings.data_path)
        secret = internal_secret(settings)  # the embedder and the index answer only callers presenting it
        self.embedder = AsyncEmbedderClient(settings.embedder_url, secret=secret)
        self.shards = AsyncIndexShards(settings.index_urls, secret=secret)
        self.queue = TaskQueue(settings)
        # For health probes; a pool, so one client serves every request thread.
        self.redis = redis.Redis.from_url(settings.effective_redis_url, socket_timeout=3, socket_connect_timeout=3)
        self._local = threading.local()
        # A search's catalog look-up runs on one thread at a time: 56 rows took 0.5 ms of CPU on one thread
        # and 7.5 ms each with 32 threads at once (the GIL handed back and forth around every SQLite step).
        self.search_reads = anyio.CapacityLimiter(1)
        self._vectors = LazyReader(settings.vectors_dir)

    def catalog(self) -> sqlite3.Connection:
        """This thread's catalog connection (sqlite3 connections must not be shared across threads)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = catalog.connect(self.settings.catalog_path)
        return conn

    def vectors_or_none(self) -> VectorStore | None:
        """The vectors store, or None while nothing has been embedded."""
        return self._vectors.get_or_none()

    def upload_dir(self, job_id: str) -> Path:
        return self.settings.uploads_dir / job_id

    async def aclose(self) -> None:
        await self.embedder.aclose()
        await self.shards.aclose()
        self._vectors.close()
        self.redis.close()
