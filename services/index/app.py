"""HTTP shell of an index shard: search, delete, health; a background thread follows new rows."""

from __future__ import annotations

import logging
import threading
import time
from contextlib import asynccontextmanager

import numpy as np
import redis
from fastapi import FastAPI, HTTPException
from fastapi.concurrency import run_in_threadpool

from services.index.shard import Shard, warm_up_kernels
from shared.schemas import (
    VECTORS_STREAM,
    IndexDeleteRequest,
    IndexHealth,
    IndexSearchRequest,
    IndexSearchResponse,
)
from shared.settings import Settings

log = logging.getLogger("mediasearch.index")



def follow_commits(shard: Shard, settings: Settings, stop: threading.Event) -> None:
    """Index rows as the embedder commits them, and snapshot the graph now and then. The Redis stream
    only wakes us up early: the store's header is the truth, so a missed message or a Redis outage
    delays nothing but by the poll period."""
    client = redis.Redis.from_url(settings.effective_redis_url, socket_timeout=5)
    last_id = "$"
    next_snapshot = time.monotonic() + settings.index_snapshot_seconds
    while not stop.is_set():
        try:
            added = shard.catch_up()
            if added:
                log.info("indexed %d new rows (through row %d)", added, shard.indexed_through)
            if time.monotonic() >= next_snapshot:
                next_snapshot = time.monotonic() + settings.index_snapshot_seconds
                if shard.snapshot():
                    log.info("snapshot written (%d nodes)", len(shard))
        except Exception:
            log.exception("catching up with the vectors store failed; retrying")
        try:
            for _stream, entries in client.xread({VECTORS_STREAM: last_id}, block=1000, count=100) or []:
                last_id = entries[-1][0]
        except redis.RedisError:
            stop.wait(0.5)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    shard = Shard(settings.vectors_dir, settings.index_dir, settings.index_shard_id, settings.index_shard_count,
                  m=settings.index_m, ef_construction=settings.index_ef_construction,
                  ef_search=settings.index_ef_search)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        stop = threading.Event()
        warm_up_kernels()
        shard.catch_up()
        follower = threading.Thread(target=follow_commits, args=(shard, settings, stop), daemon=True,
                                    name="follow-commits")
        follower.start()
        yield
        stop.set()
        follower.join(timeout=10)
        shard.close()  # snapshot on shutdown; the log covers an unclean stop

    app = FastAPI(title="mediasearch index shard", lifespan=lifespan)
    app.state.shard = shard

    @app.get("/health", response_model=IndexHealth)
    def health() -> IndexHealth:
        return IndexHealth(ready=True, nodes=len(shard), indexed_through=shard.indexed_through,
                           shard_id=shard.shard_id, shard_count=shard.shard_count)

    @app.post("/search", response_model=IndexSearchResponse)
    async def search(request: IndexSearchRequest) -> IndexSearchResponse:
        try:
            rows, sims = await run_in_threadpool(shard.search, np.asarray(request.vector, dtype=np.float32),
                                                 request.k, request.ef, request.allow_rows)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        return IndexSearchResponse(rows=rows, similarities=sims)

    @app.post("/delete")
    def delete(request: IndexDeleteRequest) -> dict:
        return {"deleted": shard.delete(request.rows)}

    return app
