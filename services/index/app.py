"""HTTP shell of an index shard: search, delete, health; a background thread follows new rows.

Every route but an anonymous GET /health needs the internal secret (``shared/internal_auth.py``).
``GET /metrics`` is Prometheus text: the shard's nodes, deleted and indexed rows, the latency of its
searches (``mediasearch_index_search_seconds``) and of every route (shared/metrics.py)."""

from __future__ import annotations

import logging
import threading
import time
from contextlib import asynccontextmanager

import numpy as np
import redis
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import Histogram
from prometheus_client.core import GaugeMetricFamily

from services.index.shard import Shard, warm_up_kernels
from shared import metrics
from shared.errors import BadInput
from shared.internal_auth import (
    INTERNAL_SECRET_HEADER,
    RequireInternalSecret,
    internal_secret,
    secret_matches,
)
from shared.schemas import (
    VECTORS_STREAM,
    IndexCompareRequest,
    IndexCompareResponse,
    IndexDeleteRequest,
    IndexHealth,
    IndexSearchRequest,
    IndexSearchResponse,
)
from shared.settings import Settings

log = logging.getLogger("mediasearch.index")
SEARCH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ShardCollector:
    """What the shard's /metrics reads at scrape time."""

    def __init__(self, shard: Shard):
        self.shard = shard

    def collect(self):
        shard = self.shard
        yield GaugeMetricFamily("mediasearch_index_nodes", "Rows in this shard's graph", value=len(shard))
        yield GaugeMetricFamily("mediasearch_index_deleted_rows", "Rows this shard deleted for good",
                                value=len(shard.deleted))
        yield GaugeMetricFamily("mediasearch_index_indexed_through",
                                "Every committed row below this has been considered", value=shard.indexed_through)
        yield GaugeMetricFamily("mediasearch_index_committed_rows", "Rows committed in the vectors store",
                                value=shard.committed())


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
    secret = internal_secret(settings)
    shard = Shard(settings.vectors_dir, settings.index_dir, settings.index_shard_id, settings.index_shard_count,
                  m=settings.index_m, ef_construction=settings.index_ef_construction,
                  ef_search=settings.index_ef_search, insert_threads=settings.index_insert_threads)

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
    app.add_middleware(RequireInternalSecret, secret=secret)
    registry = metrics.new_registry()  # this instance's (GET /metrics)
    registry.register(ShardCollector(shard))
    search_seconds = Histogram("mediasearch_index_search_seconds", "Seconds of one search of the graph",
                               buckets=SEARCH_BUCKETS, registry=registry)
    metrics.instrument(app, registry)  # outside the secret check: refusals are counted and logged

    def timed_search(*args) -> tuple[list[int], list[float]]:
        with search_seconds.time():
            return shard.search(*args)

    @app.get("/health", response_model=None, responses={200: {"model": IndexHealth}})
    def health(request: Request) -> dict:
        """Anonymous callers (healthchecks) learn only that the shard is up; with the internal secret,
        its counts."""
        if not secret_matches(request.headers.get(INTERNAL_SECRET_HEADER), secret):
            return {"ready": True}
        return IndexHealth(ready=True, nodes=len(shard), indexed_through=shard.indexed_through,
                           shard_id=shard.shard_id, shard_count=shard.shard_count).model_dump()

    @app.post("/search", response_model=IndexSearchResponse)
    async def search(request: IndexSearchRequest) -> IndexSearchResponse:
        try:
            rows, sims = await run_in_threadpool(timed_search, np.asarray(request.vector, dtype=np.float32),
                                                 request.k, request.ef, request.allow_rows)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        return IndexSearchResponse(rows=rows, similarities=sims)

    def compare(request: IndexCompareRequest) -> IndexCompareResponse:
        query = np.asarray(request.vector, dtype=np.float32)
        hnsw_ms, exact_ms = [], []
        for _ in range(request.repeat):
            start = time.perf_counter()
            hnsw = shard.search(query, request.k, request.ef)
            middle = time.perf_counter()
            exact = shard.exact_search(query, request.k)
            hnsw_ms.append((middle - start) * 1000)
            exact_ms.append((time.perf_counter() - middle) * 1000)
        return IndexCompareResponse(hnsw=IndexSearchResponse(rows=hnsw[0], similarities=hnsw[1]),
                                    exact=IndexSearchResponse(rows=exact[0], similarities=exact[1]),
                                    hnsw_ms=hnsw_ms, exact_ms=exact_ms)

    @app.post("/compare", response_model=IndexCompareResponse)
    async def compare_with_exact(request: IndexCompareRequest) -> IndexCompareResponse:
        """The graph's answer and an exact scan's, with the time of each inside the shard (validation)."""
        try:
            return await run_in_threadpool(compare, request)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc

    @app.post("/delete")
    def delete(request: IndexDeleteRequest) -> dict:
        """Delete rows for good; 400 (and nothing deleted) when any is not committed yet."""
        try:
            return {"deleted": shard.delete(request.rows)}
        except BadInput as exc:
            raise HTTPException(400, str(exc)) from None

    @app.get("/metrics", response_class=Response, responses={200: {"content": {metrics.CONTENT_TYPE: {}}}})
    def prometheus_metrics() -> Response:
        """Prometheus text (the gateway's /metrics includes it, labelled service="index" and its shard)."""
        return Response(metrics.exposition(registry), media_type=metrics.CONTENT_TYPE)

    return app
