"""The embedder's HTTP shell: FastAPI routes over ``EmbedderService``.

The model is loaded once at start-up and kept warm. Image decoding and preprocessing run in a thread
pool, the model runs in the batcher's own thread, vector-store commits in worker threads: the event
loop only moves bytes and futures.

``GET /metrics`` (internal secret) is Prometheus text: the size and time of every forward pass by kind
(``mediasearch_embedder_batch_size``, ``mediasearch_embedder_inference_seconds``), the batcher's queue, the
text cache, rows appended and announced, and the request latencies of every route (shared/metrics.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated

import numpy as np
import redis.asyncio as aioredis
from fastapi import Depends, FastAPI, File, HTTPException, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from PIL import Image
from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from services.embedder.batching import DynamicBatcher
from services.embedder.download import DownloadProgress, download, in_cache, is_hub_id
from services.embedder.model import BadImage, ClipEmbedder, ModelUnavailable
from services.embedder.pooling import attention_pool
from shared import metrics
from shared.internal_auth import (
    INTERNAL_SECRET_HEADER,
    RequireInternalSecret,
    internal_secret,
    secret_matches,
)
from shared.media_store import MediaStore, UnsafeNameError
from shared.model_families import record_model
from shared.schemas import (
    EMBEDDER_STARTING,
    VECTORS_STREAM,
    EmbedderHealth,
    EmbedImagesRequest,
    EmbedImagesResponse,
    EmbedTextRequest,
    EmbedTextResponse,
    EmbedVideoRequest,
    EmbedVideoResponse,
    QueryVector,
)
from shared.settings import Settings
from shared.vectors import VectorStore, VectorStoreError, decode_owner, encode_video_owner

log = logging.getLogger("mediasearch.embedder")

STREAM_MAX_ENTRIES = 100_000  # readers also poll the store header, so old announcements may go
_MAX_REASONS = 20
_DECODED_PER_BATCH = 4  # decoded images allowed to wait, in batches: enough to keep inference fed
BATCH_SIZE_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
INFERENCE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class TextCache:
    """LRU of text -> unit vector (the common queries repeat)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.entries: OrderedDict[str, np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, text: str) -> np.ndarray | None:
        vector = self.entries.get(text)
        if vector is None:
            self.misses += 1
            return None
        self.hits += 1
        self.entries.move_to_end(text)
        return vector

    def put(self, text: str, vector: np.ndarray) -> None:
        if self.capacity == 0:
            return
        self.entries[text] = vector
        self.entries.move_to_end(text)
        while len(self.entries) > self.capacity:
            self.entries.popitem(last=False)


class EmbedderService:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.media = MediaStore(settings.data_path)
        self.text_cache = TextCache(settings.text_cache_size)
        self.model: ClipEmbedder | None = None
        self.store: VectorStore | None = None
        self.batcher: DynamicBatcher | None = None
        self.pixel_slots = asyncio.Semaphore(_DECODED_PER_BATCH * settings.embed_max_batch)
        self.unavailable = EMBEDDER_STARTING  # why it cannot serve yet ("" once ready)
        self.download: DownloadProgress | None = None  # while the model downloads
        self.closing = threading.Event()
        # Decoding is a small share of the work: leave the other cores to inference, whose threads
        # stall at every barrier when a decoder preempts one of them.
        self.decode_pool = ThreadPoolExecutor(max_workers=max(1, min(8, (os.cpu_count() or 2) - 1)),
                                              thread_name_prefix="embedder-decode")
        self.redis = aioredis.Redis.from_url(settings.effective_redis_url, socket_connect_timeout=2,
                                             socket_timeout=5)
        self._redis_was_down = False
        # This instance's metrics (GET /metrics); the rest is read when scraped (EmbedderCollector).
        self.registry = metrics.new_registry()
        self.batch_size = Histogram("mediasearch_embedder_batch_size", "Items in one forward pass of the model",
                                    ["kind"], buckets=BATCH_SIZE_BUCKETS, registry=self.registry)
        self.inference_seconds = Histogram("mediasearch_embedder_inference_seconds",
                                           "Seconds of one forward pass of the model", ["kind"],
                                           buckets=INFERENCE_BUCKETS, registry=self.registry)
        for kind in ("image", "text"):  # both series from the start, zero until used
            self.batch_size.labels(kind)
            self.inference_seconds.labels(kind)
        self.rows_appended = Counter("mediasearch_embedder_rows_appended",
                                     "Rows this process appended to the vectors store", registry=self.registry)
        self.stream_announcements = Counter("mediasearch_embedder_stream_announcements",
                                            "Commits announced on the Redis stream", registry=self.registry)
        self.stream_errors = Counter("mediasearch_embedder_stream_errors",
                                     "Commits that could not be announced (Redis down)", registry=self.registry)
        self.registry.register(EmbedderCollector(self))

    # -- life cycle --------------------------------------------------------------------------------
    def load(self) -> None:
        """Download the model when it is missing, then load model and store; on failure record one line
        for /health instead of raising. Runs in the background while /health answers."""
        try:
            self._load()
        except Exception as exc:  # noqa: BLE001 (a bug or an out-of-memory must say so, not leave it "starting")
            self.unavailable = f"the model could not be loaded ({type(exc).__name__}: {' '.join(str(exc).split())[:300]})"
            log.exception("%s", self.unavailable)

    def _load(self) -> None:
        s = self.settings
        Image.MAX_IMAGE_PIXELS = s.max_image_pixels
        not_downloaded = self.fetch()
        def build() -> ClipEmbedder:  # on the batcher's inference thread, which runs every torch call
            model = ClipEmbedder(s.clip_model, random_weights=s.clip_random_weights, device=s.device,
                                 threads=s.torch_threads, int8=s.clip_int8, text_int8=s.clip_text_int8,
                                 text_runtime=s.clip_text_runtime)
            model.warm_up()
            return model

        try:
            batcher = DynamicBatcher(build, s.embed_max_batch, s.embed_max_wait_ms / 1000,
                                     observe=self.observe_forward)
        except ModelUnavailable as exc:
            self.unavailable = f"{not_downloaded}. {exc}" if not_downloaded else str(exc)
            log.error("%s", self.unavailable)
            return
        model = batcher.model
        try:
            self.store = VectorStore(s.vectors_dir, dim=model.dim, model_id=model.model_id, writable=True)
        except VectorStoreError as exc:
            batcher.close()
            self.unavailable = str(exc)
            log.error("%s", self.unavailable)
            return
        if self.closing.is_set():  # shut down while it loaded: nobody would close these
            batcher.close()
            self.store.close()
            return
        record_model(s.vectors_dir, model.model_id, model.family.name, model.calibration)
        self.model, self.batcher = model, batcher
        self.unavailable = ""
        log.info("embedder ready: model %s, %d-d, %s, %d committed rows in %s", model.model_id, model.dim,
                 model.device_name, self.store.committed(), s.vectors_dir)

    def fetch(self) -> str:
        """Download the model into the model cache when it names a hub repository the cache lacks (and
        downloads are allowed); returns why that failed, "" when it did not."""
        from huggingface_hub import constants

        s = self.settings
        if not s.model_download or constants.HF_HUB_OFFLINE or not is_hub_id(s.clip_model) \
                or in_cache(s.clip_model, s.clip_random_weights):
            return ""
        self.download = DownloadProgress(s.clip_model)
        try:
            download(s.clip_model, s.clip_random_weights, self.download)
            return ""
        except Exception as exc:  # noqa: BLE001 (no network, unknown repository, disk full: said in one line)
            reason = (f"could not download {s.clip_model} from {constants.ENDPOINT} "
                      f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})")
            log.error("%s", reason)
            return reason
        finally:
            self.download = None

    def not_ready(self) -> str:
        """Why it cannot serve ("" when it can): the download's progress while it runs."""
        download = self.download
        return download.line() if download is not None else self.unavailable

    async def close(self) -> None:
        self.closing.set()
        if self.batcher is not None:
            await asyncio.to_thread(self.batcher.close)
        if self.store is not None:
            self.store.close()
        self.decode_pool.shutdown(wait=False, cancel_futures=True)
        await self.redis.aclose()

    def observe_forward(self, kind: str, items: int, seconds: float) -> None:
        """The batcher's report of one forward pass (in its inference thread)."""
        self.batch_size.labels(kind).observe(items)
        self.inference_seconds.labels(kind).observe(seconds)

    def require_ready(self) -> EmbedderService:
        if self.unavailable:
            raise HTTPException(503, detail=self.not_ready())
        return self

    # -- embedding ---------------------------------------------------------------------------------
    async def embed_image(self, load: Callable[[], np.ndarray]) -> np.ndarray:
        """Decode and preprocess in the pool, then wait for the batched forward pass.

        Each image is handed to the batcher as soon as it is decoded, so decoding overlaps inference;
        the slots bound how many decoded images wait in memory (600 KB each at 224 px)."""
        async with self.pixel_slots:
            pixels = await asyncio.get_running_loop().run_in_executor(self.decode_pool, load)
            return await asyncio.wrap_future(self.batcher.submit("image", pixels))

    def _read_frame(self, relative: str) -> np.ndarray:
        path = self.media.resolve(relative)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BadImage("no such file in the data directory") from None
        except OSError as exc:
            raise BadImage(f"cannot read it ({exc.strerror or exc})") from None
        return self.model.preprocess(data)

    async def embed_texts(self, texts: list[str]) -> np.ndarray:
        vectors: dict[str, np.ndarray] = {}
        missing: list[str] = []
        for text in dict.fromkeys(texts):
            cached = self.text_cache.get(text)
            if cached is None:
                missing.append(text)
            else:
                vectors[text] = cached
        if missing:
            futures = [asyncio.wrap_future(self.batcher.submit("text", text)) for text in missing]
            for text, vector in zip(missing, await asyncio.gather(*futures)):
                self.text_cache.put(text, vector)
                vectors[text] = vector
        return np.stack([vectors[text] for text in texts])

    async def embed_frames(self, items: list[tuple[int, str]]) -> range:
        """Embed stored frames and commit them; every unreadable item is named in one BadImage."""
        results = await asyncio.gather(
            *(self.embed_image(partial(self._read_frame, path)) for _, path in items), return_exceptions=True)
        reasons = [f"{path}: {result}" for (_, path), result in zip(items, results)
                   if isinstance(result, (BadImage, UnsafeNameError))]
        if reasons:
            raise BadImage(f"{len(reasons)} of {len(items)} images cannot be embedded, nothing was stored: "
                           + "; ".join(reasons[:_MAX_REASONS]))
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return await self.commit(np.stack(results), [owner for owner, _ in items])

    async def pool_video(self, media_id: int, rows: list[int]) -> int:
        frames = await asyncio.to_thread(self._frame_vectors, rows)
        pooled = attention_pool(frames)
        committed = await self.commit(pooled[None, :], [encode_video_owner(media_id)])
        return committed.start

    def _frame_vectors(self, rows: list[int]) -> np.ndarray:
        vectors, owners = self.store.view()
        wanted = np.asarray(rows, dtype=np.int64)
        outside = wanted[(wanted < 0) | (wanted >= len(vectors))]
        if len(outside):
            raise ValueError(f"rows {outside[:10].tolist()} are not committed (the store has {len(vectors)} rows)")
        not_frames = [int(row) for row in wanted if decode_owner(int(owners[row]))[0] != "frame"]
        if not_frames:
            raise ValueError(f"rows {not_frames[:10]} are video vectors, not frame vectors")
        return np.array(vectors[wanted])

    async def commit(self, vectors: np.ndarray, owners: list[int]) -> range:
        rows = await asyncio.to_thread(self.store.append, vectors, owners)
        self.rows_appended.inc(len(rows))
        await self.announce(rows)
        return rows

    async def announce(self, rows: range) -> None:
        """Tell readers about new rows. A lost announcement loses nothing: the index polls the header."""
        try:
            await self.redis.xadd(VECTORS_STREAM, {"start": rows.start, "end": rows.stop},
                                  maxlen=STREAM_MAX_ENTRIES, approximate=True)
        except (aioredis.RedisError, OSError) as exc:
            self.stream_errors.inc()
            if not self._redis_was_down:
                log.warning("cannot announce rows %d..%d on Redis stream %s (%s); committed anyway, "
                            "readers will find them by polling the store", rows.start, rows.stop - 1,
                            VECTORS_STREAM, exc)
            self._redis_was_down = True
            return
        if self._redis_was_down:
            log.info("Redis reachable again; announcing on %s", VECTORS_STREAM)
            self._redis_was_down = False
        self.stream_announcements.inc()

    # -- reports -----------------------------------------------------------------------------------
    def model_id(self) -> str:
        return self.model.model_id if self.model else self.settings.clip_model

    def health(self) -> EmbedderHealth:
        return EmbedderHealth(
            ready=not self.unavailable, model_id=self.model_id(), dim=self.model.dim if self.model else None,
            real_weights=not self.settings.clip_random_weights,
            device=self.model.device_name if self.model else self.settings.device,
            committed_rows=self.store.committed() if self.store else 0, detail=self.not_ready(),
            family=self.model.family.name if self.model else None,
            text_match=self.model.calibration.text_match if self.model else None)


class EmbedderCollector:
    """What the embedder's /metrics reads at scrape time: readiness, model, queue, text cache, store."""

    def __init__(self, service: EmbedderService):
        self.service = service

    def collect(self):
        service = self.service
        yield GaugeMetricFamily("mediasearch_embedder_ready", "1 when the model is loaded and serving",
                                value=0 if service.unavailable else 1)
        model = GaugeMetricFamily("mediasearch_embedder_model_info", "The model served (always 1)",
                                  labels=["model_id", "device"])
        model.add_metric([service.model_id(), service.model.device_name if service.model else
                          service.settings.device], 1)
        yield model
        yield GaugeMetricFamily("mediasearch_embedder_queue_depth", "Items waiting for a forward pass",
                                value=service.batcher.queue_depth() if service.batcher else 0)
        cache = service.text_cache
        yield CounterMetricFamily("mediasearch_embedder_text_cache_hits", "Texts answered from the cache",
                                  value=cache.hits)
        yield CounterMetricFamily("mediasearch_embedder_text_cache_misses", "Texts the model had to embed",
                                  value=cache.misses)
        yield GaugeMetricFamily("mediasearch_embedder_text_cache_entries", "Texts in the cache",
                                value=len(cache.entries))
        yield GaugeMetricFamily("mediasearch_embedder_committed_rows", "Rows committed in the vectors store",
                                value=service.store.committed() if service.store else 0)


def ready_service(request: Request) -> EmbedderService:
    return request.app.state.service.require_ready()


Ready = Annotated[EmbedderService, Depends(ready_service)]


def create_app(settings: Settings) -> FastAPI:
    """The embedder; every route but an anonymous GET /health needs the internal secret."""
    service = EmbedderService(settings)
    secret = internal_secret(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        # In the background: /health answers (with the download's progress) while the model loads.
        threading.Thread(target=service.load, name="embedder-load", daemon=True).start()
        yield
        await service.close()

    app = FastAPI(title="mediasearch embedder", lifespan=lifespan)
    app.state.service = service
    app.add_middleware(RequireInternalSecret, secret=secret)
    metrics.instrument(app, service.registry)  # outside the secret check: refusals are counted and logged

    @app.exception_handler(BadImage)
    @app.exception_handler(UnsafeNameError)
    async def bad_input(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.get("/health", response_model=None, responses={200: {"model": EmbedderHealth}})
    def health(request: Request) -> JSONResponse:
        """200 when ready, else 503. Anonymous callers (healthchecks) learn only that: ``{"ready": ...}``;
        with the internal secret, the whole report (model, device, committed rows, the reason when not)."""
        report = service.health()
        status = 200 if report.ready else 503
        if not secret_matches(request.headers.get(INTERNAL_SECRET_HEADER), secret):
            return JSONResponse(status_code=status, content={"ready": report.ready})
        return JSONResponse(status_code=status, content=report.model_dump())

    @app.get("/metrics", response_class=Response, responses={200: {"content": {metrics.CONTENT_TYPE: {}}}})
    def prometheus_metrics() -> Response:
        """Prometheus text (the gateway's /metrics includes it, labelled service="embedder")."""
        return Response(metrics.exposition(service.registry), media_type=metrics.CONTENT_TYPE)

    @app.post("/embed/text", response_model=EmbedTextResponse)
    async def embed_text(body: EmbedTextRequest, svc: Ready) -> EmbedTextResponse:
        vectors = await svc.embed_texts(body.texts)
        return EmbedTextResponse(model_id=svc.model_id(), vectors=vectors.tolist())

    @app.post("/embed/images", response_model=EmbedImagesResponse)
    async def embed_images(body: EmbedImagesRequest,
                           svc: Ready) -> EmbedImagesResponse:
        rows = await svc.embed_frames([(item.owner, item.path) for item in body.items])
        return EmbedImagesResponse(rows=list(rows))

    @app.post("/embed/query-image", response_model=QueryVector)
    async def embed_query_image(file: Annotated[UploadFile, File()],
                                svc: Ready) -> QueryVector:
        data = await file.read()
        if not data:
            raise HTTPException(422, detail="the uploaded file is empty")
        if len(data) > svc.settings.max_file_bytes:
            raise HTTPException(413, detail=f"the image is larger than {svc.settings.max_file_bytes} bytes")
        vector = await svc.embed_image(partial(svc.model.preprocess, data))
        return QueryVector(model_id=svc.model_id(), vector=vector.tolist())

    @app.post("/embed/video", response_model=EmbedVideoResponse)
    async def embed_video(body: EmbedVideoRequest, svc: Ready) -> EmbedVideoResponse:
        try:
            row = await svc.pool_video(body.media_id, body.rows)
        except ValueError as exc:
            raise HTTPException(422, detail=str(exc)) from None
        return EmbedVideoResponse(row=row)

    return app

