"""The embedder's HTTP shell: FastAPI routes over ``EmbedderService``.

The model is loaded once at start-up and kept warm. Image decoding and preprocessing run in a thread
pool, the model runs in the batcher's own thread, vector-store commits in worker threads: the event
loop only moves bytes and futures.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated

import numpy as np
import redis.asyncio as aioredis
from fastapi import Depends, FastAPI, File, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse
from PIL import Image

from services.embedder.batching import DynamicBatcher
from services.embedder.model import BadImage, ClipEmbedder, ModelUnavailable
from services.embedder.pooling import attention_pool
from shared.media_store import MediaStore, UnsafeNameError
from shared.schemas import (
    VECTORS_STREAM,
    EmbedderHealth,
    EmbedderMetrics,
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
        self.unavailable = "starting"
        # Decoding is a small share of the work: leave the other cores to inference, whose threads
        # stall at every barrier when a decoder preempts one of them.
        self.decode_pool = ThreadPoolExecutor(max_workers=max(1, min(8, (os.cpu_count() or 2) - 1)),
                                              thread_name_prefix="embedder-decode")
        self.redis = aioredis.Redis.from_url(settings.effective_redis_url, socket_connect_timeout=2,
                                             socket_timeout=5)
        self.rows_appended = 0
        self.stream_announcements = 0
        self.stream_errors = 0
        self._redis_was_down = False

    # -- life cycle --------------------------------------------------------------------------------
    def load(self) -> None:
        """Load model and store; on failure record one line for /health instead of raising."""
        s = self.settings
        Image.MAX_IMAGE_PIXELS = s.max_image_pixels
        try:
            model = ClipEmbedder(s.clip_model, random_weights=s.clip_random_weights, device=s.device,
                                 threads=s.torch_threads, int8=s.clip_int8)
            model.warm_up()
            self.store = VectorStore(s.vectors_dir, dim=model.dim, model_id=model.model_id, writable=True)
        except (ModelUnavailable, VectorStoreError) as exc:
            self.unavailable = str(exc)
            log.error("%s", self.unavailable)
            return
        self.model = model
        self.batcher = DynamicBatcher(model, s.embed_max_batch, s.embed_max_wait_ms / 1000)
        self.unavailable = ""
        log.info("embedder ready: model %s, %d-d, %s, %d committed rows in %s", model.model_id, model.dim,
                 model.device_name, self.store.committed(), s.vectors_dir)

    async def close(self) -> None:
        if self.batcher is not None:
            await asyncio.to_thread(self.batcher.close)
        if self.store is not None:
            self.store.close()
        self.decode_pool.shutdown(wait=False, cancel_futures=True)
        await self.redis.aclose()

    def require_ready(self) -> EmbedderService:
        if self.unavailable:
            raise HTTPException(503, detail=self.unavailable)
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
        self.rows_appended += len(rows)
        await self.announce(rows)
        return rows

    async def announce(self, rows: range) -> None:
        """Tell readers about new rows. A lost announcement loses nothing: the index polls the header."""
        try:
            await self.redis.xadd(VECTORS_STREAM, {"start": rows.start, "end": rows.stop},
                                  maxlen=STREAM_MAX_ENTRIES, approximate=True)
        except (aioredis.RedisError, OSError) as exc:
            self.stream_errors += 1
            if not self._redis_was_down:
                log.warning("cannot announce rows %d..%d on Redis stream %s (%s); committed anyway, "
                            "readers will find them by polling the store", rows.start, rows.stop - 1,
                            VECTORS_STREAM, exc)
            self._redis_was_down = True
            return
        if self._redis_was_down:
            log.info("Redis reachable again; announcing on %s", VECTORS_STREAM)
            self._redis_was_down = False
        self.stream_announcements += 1

    # -- reports -----------------------------------------------------------------------------------
    def model_id(self) -> str:
        return self.model.model_id if self.model else self.settings.clip_model

    def health(self) -> EmbedderHealth:
        return EmbedderHealth(
            ready=not self.unavailable, model_id=self.model_id(), dim=self.model.dim if self.model else None,
            real_weights=not self.settings.clip_random_weights,
            device=self.model.device_name if self.model else self.settings.device,
            committed_rows=self.store.committed() if self.store else 0, detail=self.unavailable)

    def metrics(self) -> EmbedderMetrics:
        stats = self.batcher.stats if self.batcher else None
        sizes = dict(stats.batch_sizes) if stats else {}
        images, texts = (stats.images_embedded, stats.texts_embedded) if stats else (0, 0)
        return EmbedderMetrics(
            ready=not self.unavailable, model_id=self.model_id(),
            device=self.model.device_name if self.model else self.settings.device,
            batches_run=stats.batches_run if stats else 0, items_embedded=images + texts,
            images_embedded=images, texts_embedded=texts, batch_size_max=max(sizes, default=0),
            batch_size_histogram=sizes, inference_seconds=stats.inference_seconds if stats else 0.0,
            queue_depth=self.batcher.queue_depth() if self.batcher else 0,
            text_cache_hits=self.text_cache.hits, text_cache_misses=self.text_cache.misses,
            text_cache_entries=len(self.text_cache.entries), rows_appended=self.rows_appended,
            committed_rows=self.store.committed() if self.store else 0,
            stream_announcements=self.stream_announcements, stream_errors=self.stream_errors)


def ready_service(request: Request) -> EmbedderService:
    return request.app.state.service.require_ready()


Ready = Annotated[EmbedderService, Depends(ready_service)]


def create_app(settings: Settings) -> FastAPI:
    service = EmbedderService(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await asyncio.to_thread(service.load)
        yield
        await service.close()

    app = FastAPI(title="mediasearch embedder", lifespan=lifespan)
    app.state.service = service

    @app.exception_handler(BadImage)
    @app.exception_handler(UnsafeNameError)
    async def bad_input(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.get("/health", response_model=EmbedderHealth)
    def health() -> JSONResponse:
        report = service.health()
        return JSONResponse(status_code=200 if report.ready else 503, content=report.model_dump())

    @app.get("/metrics", response_model=EmbedderMetrics)
    def metrics() -> EmbedderMetrics:
        return service.metrics()

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


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

