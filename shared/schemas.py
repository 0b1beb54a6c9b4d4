"""Wire schemas shared by every service and by the tests: one definition for each message."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

JobState = Literal["queued", "running", "done", "failed", "cancelled"]


# -- gateway: jobs ---------------------------------------------------------------------------------
class JobCreated(BaseModel):
    job_id: str
    library_id: int | None = Field(None, description="POST /ingest: the library the folder is scanned as")


class FileError(BaseModel):
    file: str
    reason: str


class JobTextProgress(BaseModel):
    read: int = Field(description="Indexed media whose text has been read (OCR), words found or not")
    waiting: int = Field(description="Indexed media whose text is not read yet: searchable by CLIP meanwhile")
    failed: int


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
    errors: list[FileError] = Field(description="The first 200 failed files with their reasons; `failed` counts all")
    error: str | None = None
    text: JobTextProgress | None = Field(None, description="The reading of the text in its media, in the background "
                                                           "once they are indexed; null when OCR is off")


class JobList(BaseModel):
    jobs: list[JobStatus]


class FolderIngest(BaseModel):
    path: str = Field(min_length=1, max_length=4096, description="A folder under one of the configured ingest roots")


# -- gateway: libraries (server folders indexed in place) ---------------------------------------------------
LibraryState = Literal["scanning", "ready", "unavailable"]


class LibraryCreate(BaseModel):
    path: str = Field(min_length=1, max_length=4096, description="A folder under one of the configured ingest roots")
    name: str | None = Field(None, min_length=1, max_length=200,
                             description="What its media's folder starts with (default: the folder's name); "
                                         "no slashes")


class LibraryInfo(BaseModel):
    id: int
    name: str
    path: str = Field(description="The folder, resolved (symlinks followed)")
    status: LibraryState = Field(description="scanning: a scan runs or its files are being ingested; unavailable: "
                                             "its folder is missing (status_reason says why); nothing is removed")
    status_reason: str | None = None
    one_off: bool = Field(description="Made by POST /ingest: scanned when asked, neither watched nor rescanned")
    watching: bool = Field(description="The watcher follows its changes (inotify); else it is rescanned periodically")
    watch_note: str | None = Field(None, description="Why it is not watched")
    media: int = Field(description="Media items with a file in it")
    failed: int = Field(description="Files that could not be ingested (all of them)")
    last_scan_at: float | None = Field(description="When its last scan ended (epoch seconds)")
    created_at: float
    errors: list[FileError] = Field(description="The first 200 files that could not be ingested, with the reasons")


class LibraryList(BaseModel):
    libraries: list[LibraryInfo]


class LibraryDeleted(BaseModel):
    id: int
    media: int = Field(description="Media items removed (those with no file elsewhere and no upload)")
    rows: int = Field(description="Vector rows tombstoned in the index")
    partial: bool = Field(description="True when an index shard could not be told (it is told at the next worker start)")


class MediaLocation(BaseModel):
    library_id: int
    library: str
    path: str = Field(description="The file, relative to the library's folder")


# -- gateway: search -------------------------------------------------------------------------------
class Moment(BaseModel):
    frame_id: int
    timestamp: float | None
    similarity: float


# -- where the gateway serves things: the one place each URL is spelt -------------------------------
def frame_url(frame_id: int) -> str:
    """The normalised JPEG of a frame (a photo, or one moment of a video)."""
    return f"/frame/{frame_id}"


def thumb_url(frame_id: int) -> str:
    return f"/thumb/{frame_id}"


def original_url(media_id: int) -> str:
    """The file as it was uploaded (HTTP Range supported)."""
    return f"/media/{media_id}/original"


def media_url(media_id: int, kind: str) -> str:
    """Where the gateway serves a media item's original: videos with HTTP Range for seeking (a copy browsers
    play, for a video they cannot)."""
    return f"/video/{media_id}" if kind == "video" else original_url(media_id)


def motion_url(media_id: int) -> str:
    """A Live Photo's motion clip (HTTP Range supported)."""
    return f"/media/{media_id}/motion"


class TextLine(BaseModel):
    text: str
    confidence: float = Field(description="The OCR's confidence, 0 to 1")
    box: list[list[float]] = Field(description="Four corners [x, y] as fractions of the frame's width and height "
                                               "(the frame as served, upright)")


class MatchedText(BaseModel):
    words: list[str] = Field(description="The query's words found in the frame's text (normalised: lower case, "
                                         "no accents)")
    lines: list[TextLine] = Field(description="The lines they were found in")
    quality: float = Field(description="How well the query's words were found, 0 to 1 (OCR mistakes and partial "
                                       "words count less)")


class FrameText(BaseModel):
    frame_id: int
    status: Literal["unread", "running", "read", "failed", "off"] = Field(
        description="unread: not read yet (read in the background once indexed); off: OCR is switched off "
                    "(MEDIASEARCH_OCR) and this frame was never read")
    lines: list[TextLine]


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
    matched_text: MatchedText | None = Field(
        None, description="Present when the frame was found (also) by the text read in it: the words and lines")


class SearchResponse(BaseModel):
    query: str
    k: int
    offset: int = 0
    results: list[SearchResult]
    partial: bool = Field(False, description="True when an index shard did not answer")


MAX_COMPARE_EF_VALUES = 16


class SearchCompareRequest(BaseModel):
    q: str = Field(min_length=1, max_length=1000, description="The words to look for")
    k: int = Field(10, ge=1, le=100)
    ef_search: list[Annotated[int, Field(ge=1, le=100_000)]] = Field(
        min_length=1, max_length=MAX_COMPARE_EF_VALUES, description="Graph search breadths to try, each at least k")
    repeat: int = Field(1, ge=1, le=20, description="Times each search is run (timings per run)")


class CompareHit(BaseModel):
    row: int = Field(description="The vector's row in the store")
    similarity: float
    frame_id: int | None = Field(None, description="null for a row the catalog no longer knows")
    media_id: int | None = None
    name: str | None = None


class CompareRun(BaseModel):
    ef_search: int
    recall: float = Field(description="Share of the exact top k the graph found")
    hnsw_ms: list[float] = Field(description="Each run's graph search, inside the index (slowest shard)")
    brute_ms: list[float] = Field(description="Each run's exact scan, inside the index (slowest shard)")
    hnsw_results: list[CompareHit]
    brute_results: list[CompareHit]


class SearchCompareResponse(BaseModel):
    query: str
    k: int
    encode_ms: float = Field(description="Encoding the words into a vector, through the embedder")
    shards: int
    runs: list[CompareRun]


# -- gateway: media --------------------------------------------------------------------------------
class FrameInfo(BaseModel):
    frame_id: int
    timestamp: float | None
    width: int
    height: int
    indexed: bool
    frame_url: str
    thumb_url: str


TAKEN_AT = ("When it was taken, ISO 8601: with its UTC offset when the file says (2024-03-10T15:22:05+01:00), "
            "else the local wall-clock time without offset (2024-03-10T15:22:05); null when unknown")


class GpsPoint(BaseModel):
    lat: float
    lon: float


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
    created_at: float = Field(description="When it was added (epoch seconds); taken_at is when it was taken")
    # when, where and with what it was taken (services/ingest_worker/metadata.py)
    taken_at: str | None = Field(description=TAKEN_AT)
    taken_at_source: Literal["exif", "video", "file"] | None = Field(
        description="exif: the photo's EXIF; video: the container's creation date; file: the file's modification "
                    "time, a fallback; null: unknown")
    camera: str | None = Field(description='"Make Model"')
    lens: str | None
    gps: GpsPoint | None = Field(description="Where it was taken, in decimal degrees (south and west negative)")
    near_duplicate_of: int | None
    original_url: str
    media_url: str
    motion_url: str | None = Field(None, description="A Live Photo's motion clip (QuickTime, HTTP Range); "
                                                     "null for media without one")
    frames: list[FrameInfo]
    locations: list[MediaLocation] = Field(default_factory=list, description="Its files in libraries (one media "
                                                                             "item for identical content)")


class BrowseItem(BaseModel):
    """One media item in GET /media: what a grid cell needs (no frame list)."""
    id: int
    name: str
    kind: Literal["image", "video"]
    taken_at: str | None = Field(description=TAKEN_AT)
    camera: str | None
    created_at: float = Field(description="When it was added (epoch seconds)")
    width: int | None
    height: int | None
    duration: float | None
    frame_id: int | None = Field(description="The frame shown as its thumbnail (a video's first)")
    thumb_url: str | None
    frame_url: str | None
    media_url: str


class BrowsePage(BaseModel):
    items: list[BrowseItem]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null after the last")


class CameraCount(BaseModel):
    camera: str
    media: int


class CameraList(BaseModel):
    cameras: list[CameraCount] = Field(description="Most used first")


class MonthCount(BaseModel):
    month: str = Field(description="YYYY-MM: the local month where it was taken (else the UTC month it was added)")
    media: int


class MonthList(BaseModel):
    months: list[MonthCount] = Field(description="Newest first; only months that hold media")


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


class DiskSpace(BaseModel):
    free_bytes: int
    total_bytes: int
    reserve_bytes: int = Field(description="Uploads that would leave less free are refused (507)")
    low: bool = Field(description="Free space is below twice the reserve")
    full: bool = Field(description="Free space is below the reserve: uploads are refused")
    warning: str | None = Field(None, description="What a low or full data volume means; null while there is room")


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    media: int
    frames: int
    index_nodes: int
    dim: int | None
    model_id: str | None
    real_weights: bool | None
    model_family: str | None = Field(None, description="clip, siglip (null while the embedder is down)")
    text_match: float | None = Field(None, description="The cosine where a text starts to match an image with this "
                                                       "model: a sensible min_similarity for a search by words")
    services: list[ServiceState]
    disk: DiskSpace | None = Field(None, description="The data volume (null when it cannot be measured); "
                                                     "below the reserve the status is degraded")


class HealthBrief(BaseModel):
    """What /health tells a caller who is not signed in: the gateway is up, nothing more."""
    status: Literal["ok"]


# -- gateway: accounts (shared/accounts.py) -----------------------------------------------------------
Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._@-]{1,64}$"),
                     Field(description="1 to 64 letters, digits, '.', '_', '-' or '@'")]
Password = Annotated[str, StringConstraints(min_length=8, max_length=256), Field(description="8 to 256 characters")]
Token = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Role = Literal["owner", "member"]


class SetupState(BaseModel):
    needed: bool = Field(description="true until the owner account exists")


class OwnerSetup(BaseModel):
    token: Token = Field(description="The setup token from the gateway's log (or secrets/setup.token in the data volume)")
    username: Username
    password: Password


class SignIn(BaseModel):
    username: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class InvitationAccept(BaseModel):
    token: Token
    username: Username
    password: Password


class Me(BaseModel):
    id: int | None = Field(description="null for the static key (MEDIASEARCH_API_KEY)")
    username: str
    role: Role
    via: Literal["session", "api_key", "static_key"]


class PasswordChange(BaseModel):
    current_password: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    new_password: Password


class ApiKeyCreate(BaseModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class ApiKeyInfo(BaseModel):
    id: int
    name: str
    prefix: str = Field(description="The key's first characters, to tell keys apart")
    created_at: float
    last_used_at: float | None


class ApiKeyCreated(ApiKeyInfo):
    key: str = Field(description="The whole key: shown this once, stored only hashed")


class UserInfo(BaseModel):
    id: int
    username: str
    role: Role
    created_at: float


class InvitationCreate(BaseModel):
    expires_in_hours: float = Field(72.0, ge=1, le=720)


class InvitationInfo(BaseModel):
    id: int
    created_at: float
    expires_at: float


class InvitationCreated(InvitationInfo):
    token: str = Field(description="Shown this once: the invitee opens <the UI>#invite=<token>")


class AuditEvent(BaseModel):
    id: int
    at: float
    actor: str
    action: str
    target: str
    detail: str
    client: str


class AuditLog(BaseModel):
    events: list[AuditEvent]
    next_before: int | None = Field(description="Pass as `before` for older events; null at the oldest")


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


# The embedder's /health detail while it loads its model, before it knows whether it can (a download says
# its progress instead).
EMBEDDER_STARTING = "starting: loading the model"


class EmbedderHealth(BaseModel):
    ready: bool
    model_id: str
    dim: int | None
    real_weights: bool
    device: str
    committed_rows: int
    detail: str = ""
    family: str | None = Field(None, description="The model's family (shared/model_families.py): clip, siglip")
    text_match: float | None = Field(None, description="The cosine where a text starts to match an image, for "
                                                       "this model (its family's calibration)")


class EmbedVideoRequest(BaseModel):
    media_id: int = Field(ge=0, description="The video the pooled vector stands for")
    rows: list[int] = Field(min_length=1, max_length=100_000, description="Committed rows of its frame vectors")


class EmbedVideoResponse(BaseModel):
    row: int = Field(description="Row of the pooled video vector (owner encode_video_owner(media_id))")


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


class IndexCompareRequest(BaseModel):
    """One query answered by the graph and by an exact scan, ``repeat`` times each (for validation)."""
    vector: list[float]
    k: int = Field(10, ge=1, le=1_000)
    ef: int = Field(ge=1, le=100_000)
    repeat: int = Field(1, ge=1, le=20)


class IndexCompareResponse(BaseModel):
    hnsw: IndexSearchResponse
    exact: IndexSearchResponse
    hnsw_ms: list[float] = Field(description="Milliseconds of each graph search, inside the shard")
    exact_ms: list[float] = Field(description="Milliseconds of each exact scan, inside the shard")


class IndexDeleteRequest(BaseModel):
    rows: list[int]


class IndexHealth(BaseModel):
    ready: bool
    nodes: int
    indexed_through: int = Field(description="Committed rows this shard has caught up with")
    shard_id: int
    shard_count: int


# -- gateway: library (duplicates, auto-albums, collections, bulk delete) ---------------------------
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
MAX_BULK_MEDIA = 10_000


class LibraryItem(BaseModel):
    media_id: int
    kind: Literal["image", "video"]
    name: str
    folder: str
    width: int | None
    height: int | None
    size: int
    duration: float | None
    created_at: float
    frame_id: int | None = Field(description="The frame shown as its thumbnail (a video's first)")
    thumb_url: str | None
    frame_url: str | None
    media_url: str


class ClusterSummary(BaseModel):
    id: int
    title: str = Field(description="What to show: the user's name, else the automatic label")
    name: str | None = Field(description="Given by the user; re-labelling never overwrites it")
    label: str | None = Field(description="Best vocabulary concepts for the album; null until labelled")
    size: int
    cover_urls: list[str]
    updated_at: float


class ClusterList(BaseModel):
    clusters: list[ClusterSummary]
    pending: bool = Field(description="True while re-clustering or labelling is due; ask again later")


class ClusterDetail(ClusterSummary):
    members: list[LibraryItem]


class ClusterRename(BaseModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = Field(
        description="The album's name; null or empty gives it back its automatic label")


class MediaIds(BaseModel):
    media_ids: list[int] = Field(min_length=1, max_length=MAX_BULK_MEDIA)


class CollectionSummary(BaseModel):
    id: int
    name: str
    size: int
    job_id: str | None = Field(description="The upload whose folder made this collection; null if made by hand")
    created_at: float
    cover_urls: list[str]


class CollectionList(BaseModel):
    collections: list[CollectionSummary]


class CollectionDetail(CollectionSummary):
    members: list[LibraryItem]


class CollectionCreate(BaseModel):
    name: Title
    media_ids: list[int] = Field(default_factory=list, max_length=MAX_BULK_MEDIA)


class CollectionRename(BaseModel):
    name: Title


class CollectionChanged(BaseModel):
    id: int
    size: int
    changed: int = Field(description="Media added or removed by this request (already members are skipped)")


class MediaBulkDeleted(BaseModel):
    deleted: list[MediaDeleted]
    rows: int = Field(description="Vector rows tombstoned in the index, all items together")
    partial: bool = Field(False, description="True when an index shard could not be told")


DuplicateKind = Literal["exact", "near", "visual"]


class DuplicateMember(LibraryItem):
    match: Literal["original", "exact", "near", "visual"] = Field(
        description="original: the copy to keep; exact: the same file uploaded again under this name (nothing "
                    "extra stored); near: perceptual-hash match; visual: embedding similarity")
    score: float = Field(description="Similarity to the original: 1 for exact, 1 - hash bits/64 for near, "
                                     "cosine for visual")
    item_id: int | None = Field(None, description="For exact: the job item of that upload")


class DuplicateGroup(BaseModel):
    id: int = Field(description="The media id of the copy to keep")
    kind: DuplicateKind = Field(description="The loosest kind of match in the group")
    kinds: list[DuplicateKind]
    score: float = Field(description="The lowest member score in the group")
    keep: int
    members: list[DuplicateMember] = Field(description="The original first")


class DuplicateReport(BaseModel):
    groups: list[DuplicateGroup]
    visual_threshold: float
    near_max_distance: int
    visual_pending: int = Field(0, description="Media whose look-alikes are still being looked up in the "
                                               "background (their visual groups may be missing for now)")
