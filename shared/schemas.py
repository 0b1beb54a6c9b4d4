"""Wire schemas shared by every service and by the tests: one definition for each message."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

JobState = Literal["queued", "running", "done", "failed", "cancelled"]


# -- gateway: jobs ---------------------------------------------------------------------------------
class JobCreated(BaseModel):
    job_id: str


class FileError(BaseModel):
    file: str
    reason: str


class JobStatus(BaseModel):
    id: str
    status: JobState
    source: str
    folder: str
    created_at: float
    total: int
    processed: int
    indexed: int
    duplicates: int
    failed: int
    errors: list[FileError]
    error: str | None = None


class JobList(BaseModel):
    jobs: list[JobStatus]


class FolderIngest(BaseModel):
    path: str = Field(min_length=1, max_length=4096, description="A folder under one of the configured ingest roots")


# -- gateway: search -------------------------------------------------------------------------------
class Moment(BaseModel):
    frame_id: int
    timestamp: float | None
    similarity: float


class SearchResult(BaseModel):
    frame_id: int
    media_id: int
    video_id: int | None = Field(None, description="The media id when the frame is from a video")
    timestamp: float | None = Field(None, description="Seconds into the video; null for photos")
    similarity: float = Field(description="Cosine similarity, higher is better")
    kind: Literal["image", "video"]
    name: str
    frame_url: str
    thumb_url: str
    media_url: str
    moments: list[Moment] | None = Field(
        None, description="With group=video: every matching frame of this video, best first")


class SearchResponse(BaseModel):
    query: str
    k: int
    offset: int = 0
    results: list[SearchResult]
    partial: bool = Field(False, description="True when an index shard did not answer")


# -- gateway: media --------------------------------------------------------------------------------
class FrameInfo(BaseModel):
    frame_id: int
    timestamp: float | None
    width: int
    height: int
    indexed: bool
    frame_url: str
    thumb_url: str


class MediaInfo(BaseModel):
    id: int
    kind: Literal["image", "video"]
    mime: str
    name: str
    folder: str
    size: int
    width: int | None
    height: int | None
    duration: float | None
    fps: float | None
    status: str
    created_at: float
    near_duplicate_of: int | None
    original_url: str
    media_url: str
    frames: list[FrameInfo]


class MediaDeleted(BaseModel):
    id: int
    rows: int = Field(description="Vector rows tombstoned in the index")
    partial: bool = Field(False, description="True when an index shard could not be told (its rows are "
                                             "still hidden from results: they are no longer in the catalog)")


class ServiceState(BaseModel):
    name: str
    url: str
    ok: bool
    detail: str = ""


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    media: int
    frames: int
    index_nodes: int
    dim: int | None
    model_id: str | None
    real_weights: bool | None
    services: list[ServiceState]


class ErrorBody(BaseModel):
    detail: str


# -- embedder --------------------------------------------------------------------------------------
class EmbedTextRequest(BaseModel):
    texts: list[str] = Field(min_length=1, max_length=256)


class EmbedTextResponse(BaseModel):
    model_id: str
    vectors: list[list[float]]


class ImageItem(BaseModel):
    owner: int = Field(description="Frame id the vector belongs to (recorded beside its row)")
    path: str = Field(description="Frame JPEG, relative to the shared data dir")


class EmbedImagesRequest(BaseModel):
    items: list[ImageItem] = Field(min_length=1, max_length=1024)


class EmbedImagesResponse(BaseModel):
    rows: list[int]


class QueryVector(BaseModel):
    model_id: str
    vector: list[float]


class EmbedderHealth(BaseModel):
    ready: bool
    model_id: str
    dim: int | None
    real_weights: bool
    device: str
    committed_rows: int
    detail: str = ""


class EmbedVideoRequest(BaseModel):
    media_id: int = Field(ge=0, description="The video the pooled vector stands for")
    rows: list[int] = Field(min_length=1, max_length=100_000, description="Committed rows of its frame vectors")


class EmbedVideoResponse(BaseModel):
    row: int = Field(description="Row of the pooled video vector (owner encode_video_owner(media_id))")


class EmbedderMetrics(BaseModel):
    ready: bool
    model_id: str
    device: str
    batches_run: int
    items_embedded: int
    images_embedded: int
    texts_embedded: int
    batch_size_max: int
    batch_size_histogram: dict[int, int] = Field(description="Forward passes by number of items in them")
    inference_seconds: float
    queue_depth: int
    text_cache_hits: int
    text_cache_misses: int
    text_cache_entries: int
    rows_appended: int = Field(description="Rows this process appended since it started")
    committed_rows: int
    stream_announcements: int
    stream_errors: int


# Redis stream on which the embedder announces committed rows: fields start (first new row) and end
# (one past the last new row), as in range(start, end).
VECTORS_STREAM = "mediasearch:vectors"

# -- index -----------------------------------------------------------------------------------------
class IndexSearchRequest(BaseModel):
    vector: list[float]
    k: int = Field(10, ge=1, le=10_000)
    ef: int | None = Field(None, ge=1, le=100_000)
    allow_rows: list[int] | None = Field(None, description="Only these rows may be returned")


class IndexSearchResponse(BaseModel):
    rows: list[int]
    similarities: list[float]


class IndexDeleteRequest(BaseModel):
    rows: list[int]


class IndexHealth(BaseModel):
    ready: bool
    nodes: int
    indexed_through: int = Field(description="Committed rows this shard has caught up with")
    shard_id: int
    shard_count: int
