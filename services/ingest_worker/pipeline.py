"""One job item end to end: check the file, dedupe by content, decode, store frames and thumbnails, record
media and frames in the catalog, have the frames embedded, and settle the item's status.

Every step can be repeated: a redelivered task for a finished item does nothing, and a media row whose
frames are not all embedded yet is finished by the next attempt instead of being created twice. The
order matters for that, and for a power cut: frame files are written and synced first, then the media and
frame rows (with the item pointing at them) in one transaction, then the original is linked (an upload)
or copied (a server-folder item an earlier release queued) into place and fsynced with its folder, then the
frames are embedded, and only then is the media marked indexed. A library file (an item with a location,
shared/libraries/items.py) is never copied: it is opened beneath its library's folder, and its location
records the outcome as the item settles.

The item's file is opened once, beneath the uploads folder or an ingest root (shared/safe_open.py), and
sniffed, hashed, decoded (the child gets the descriptor) and copied from that one descriptor: a symlink
swapped in meanwhile cannot bring in a file from outside.

A delete of media with the same content may race an item (the files are named by content). The gateway
removes files only under the catalog's write lock and only if no media holds their content again; the
item checks under that lock that its staged files are still there as it records them, and records a match
with stored media only while that media still exists; otherwise it is tried again (TransientFault) and
its copy stored anew.

An item starts only through its claim (catalog.claim_item): a task delivered while a live worker runs the
item does nothing, and each start counts an attempt. Decoding runs in a decoder process (one file at a time) with a
hard time limit (isolation.py, staging.py); a child that crashes, is killed or times out costs one
attempt (AttemptDied: retried), and the attempt that reaches ingest_max_attempts fails the item with
"gave up: ...". So does the next start of an item whose worker died in its last attempt.

A full data volume (ENOSPC, EDQUOT, a full SQLite, or less room than disk_reserve_bytes before a file's
outputs are written) is no fault of the file: DiskFull, the item waits with the reason "disk full: ..."
without spending an attempt or a retry, and resumes by itself once there is room again.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import random
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

from services.ingest_worker import metadata, plugins, preview, staging
from services.ingest_worker.isolation import ChildDied, Descriptor, run_isolated
from services.ingest_worker.sniff import SNIFF_BYTES, BadInput, MediaType, sniff
from services.ingest_worker.staging import StagedMedia
from shared import catalog, logs
from shared.catalog import libraries as catalog_libraries
from shared.clients import EmbedderClient, IndexShards, UpstreamError
from shared.durable import DISK_FULL, ensure_room, is_disk_full, sync_filesystem
from shared.errors import InsufficientStorage
from shared.libraries import items as library_items
from shared.live_photos import stored_motion_path
from shared.media_store import MediaStore, UnsafeNameError
from shared.organise.upkeep import file_ingested
from shared.reconcile import adopt_committed_rows
from shared.safe_open import OpenedFile, OutsideRoots, RefusedFile, open_beneath
from shared.settings import Settings

log = logging.getLogger("mediasearch.ingest")

T = TypeVar("T")
INDEX_CATCH_UP_WAIT_S = 10.0
OUTSIDE_INGEST_ROOTS = "the file is outside the configured ingest roots"
MATCH_DELETED = "the stored media with the same content was deleted meanwhile: storing this copy anew"


class TransientFault(Exception):
    """A fault outside the file (embedder unreachable or failing, database busy): try again later."""


class AttemptDied(TransientFault):
    """This attempt's decoder crashed, was killed or timed out, and the item has attempts left: try again
    later, with this attempt counted."""


class DiskFull(TransientFault):
    """The data volume has no room for this item's outputs: wait (capped backoff, no attempt and no retry
    spent) until there is room again. Its text starts with "disk full"."""


def _direct_worker_id() -> str:
    return f"direct@{socket.gethostname()}/{os.getpid()}-{uuid.uuid4().hex[:8]}"


@dataclass
class WorkerResources:
    """What the threads of one worker process share: the HTTP clients of the embedder and the index shards
    (httpx clients are thread-safe; making one costs tens of milliseconds of CPU, as it loads the system's
    CA certificates), and the slots of the files decoded at once. Many files are in flight so that the
    embedder's batches fill (worker_concurrency); decoding more of them at once than there are cores would
    only add memory (a video's decoder can hold hundreds of MB)."""

    embedder: EmbedderClient
    index_http: httpx.Client  # the connection the index shards are asked over (how far they have caught up)
    decode_slots: threading.BoundedSemaphore

    @classmethod
    def open(cls, settings: Settings, threads: int = 1) -> WorkerResources:
        """Resources for ``threads`` threads working at once."""
        slots = settings.worker_decode_slots or len(os.sched_getaffinity(0))
        return cls(EmbedderClient(settings.embedder_url, connections=threads),
                   httpx.Client(timeout=2, limits=httpx.Limits(max_connections=threads,
                                                               max_keepalive_connections=threads)),
                   threading.BoundedSemaphore(slots))

    def close(self) -> None:
        self.embedder.close()
        self.index_http.close()


@dataclass
class IngestContext:
    """What processing an item needs; one per worker thread (a SQLite connection is not shared)."""

    settings: Settings
    conn: sqlite3.Connection
    store: MediaStore
    embedder: EmbedderClient
    index_http: httpx.Client  # the connection the index shards are asked over (how far they have caught up)
    index: IndexShards = field(init=False)
    # Who claims items (catalog.claim_item), and which other workers are alive. A Celery worker passes its
    # heartbeat's (liveness.py); by default only this context counts as alive, so an item another context
    # left running is taken over.
    worker_id: str = field(default_factory=_direct_worker_id)
    alive: Callable[[str], bool] | None = None
    owns_clients: bool = True  # close() closes the embedder and index clients (not when a worker shares them)
    # How many files of this process decode at once (WorkerResources); by default this context's alone.
    decode_slots: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(1))

    def __post_init__(self) -> None:
        self.index = IndexShards(self.settings.index_urls, http=self.index_http)

    @classmethod
    def open(cls, settings: Settings, worker_id: str | None = None, alive: Callable[[str], bool] | None = None,
             shared: WorkerResources | None = None) -> IngestContext:
        """A context of its own, or one of the threads of a worker sharing ``shared`` (left open by close)."""
        resources = shared or WorkerResources.open(settings)
        context = cls(settings, catalog.connect(settings.catalog_path), MediaStore(settings.data_path),
                      resources.embedder, resources.index_http, alive=alive, owns_clients=shared is None,
                      decode_slots=resources.decode_slots)
        if worker_id is not None:
            context.worker_id = worker_id
        return context

    def is_alive(self, worker: str) -> bool:
        return worker == self.worker_id or (self.alive is not None and self.alive(worker))

    def close(self) -> None:
        if self.owns_clients:
            self.embedder.close()
            self.index_http.close()
        self.conn.close()


@dataclass(frozen=True)
class ItemOutcome:
    status: str  # a terminal item state
    reason: str | None = None
    media_id: int | None = None
    matched: bool = False  # media_id names media stored before this item (a duplicate, or one it finished)
    file_stat: tuple[int, int] | None = None  # a library file's (size, mtime_ns) as read (libraries.items.settle)


def ingest_item(item_id: int, ctx: IngestContext) -> ItemOutcome | None:
    """Process one job item; returns its outcome (None for an unknown item).

    Returns None as well when a live worker runs the item already (it is not started twice). Raises
    TransientFault when it should be tried again later (AttemptDied when its decoder died, DiskFull when
    the data volume is full); the item is
    then left running, held by ``ctx.worker_id``, until wait_for_retry releases it.
    """
    conn = ctx.conn
    with contextlib.ExitStack() as bound:
        try:
            claim, item = catalog.claim_item(conn, item_id, ctx.worker_id, ctx.settings.ingest_max_attempts,
                                             ctx.is_alive)
            if item is not None:  # the job id, in this item's log lines and its calls' headers
                bound.enter_context(logs.bind(job_id=item["job_id"]))
            if claim == catalog.Claim.MISSING:
                log.warning("job item %s does not exist (its job was deleted?); nothing to do", item_id)
                return None
            if claim == catalog.Claim.FINISHED:
                _discard_upload(item, ctx)
                return ItemOutcome(item["status"], item["reason"], item["media_id"])
            if claim == catalog.Claim.BUSY:
                log.info("item %s (%s) is running in worker %s: not started a second time", item_id, item["file"],
                         item["claimed_by"])
                return None
            if claim == catalog.Claim.GAVE_UP:
                outcome = ItemOutcome("failed", item["reason"])
            elif item["cancelled"]:
                outcome = ItemOutcome("cancelled", "job cancelled")
            else:
                try:
                    outcome = _process(item, ctx)
                except BadInput as exc:
                    outcome = ItemOutcome("failed", str(exc))
                except ChildDied as death:
                    outcome = _after_death(item, ctx, death)  # or AttemptDied, raised
            outcome = _settle(item_id, outcome, ctx)
            # its collection and album; a library's files join no folder collection (the library is their folder)
            file_ingested(conn, {**item, "folder": ""} if library_items.in_library(item) else item, outcome.status,
                          outcome.media_id, ctx.settings)
            _discard_upload(item, ctx)
            log.info("item %s (%s): %s%s", item_id, item["file"], outcome.status,
                     f" ({outcome.reason})" if outcome.reason else "")
            return outcome
        except TransientFault:
            raise
        except InsufficientStorage as exc:  # ensure_room: its text starts with "disk full: "
            raise DiskFull(str(exc)) from exc
        except Exception as exc:  # noqa: BLE001 (a bug must cost one file, not the job or the worker)
            if is_disk_full(exc):  # ENOSPC, EDQUOT or a full SQLite: wait for room, whatever wrote it
                detail = getattr(exc, "strerror", None) or str(exc)
                raise DiskFull(f"{DISK_FULL}: {detail}; waiting for space on the data volume") from exc
            if _is_transient(exc):
                raise TransientFault(f"{type(exc).__name__}: {exc}") from exc
            return _fail_unexpectedly(item_id, ctx, exc)


def _settle(item_id: int, outcome: ItemOutcome, ctx: IngestContext) -> ItemOutcome:
    """Record an item's outcome. One that names media stored before this item is recorded only while that
    media is still there (in the same transaction): had it been deleted since it was matched, this copy of
    the same bytes would be stored nowhere, so the item is tried again and stored anew. A library file's
    outcome is recorded on its location too; one whose location went meanwhile fails (returned)."""
    with catalog.transaction(ctx.conn):
        if outcome.matched and catalog.get_media(ctx.conn, outcome.media_id) is None:
            raise TransientFault(MATCH_DELETED)
        settled = library_items.settle(ctx.conn, item_id, outcome.status, outcome.reason, outcome.media_id,
                                       outcome.file_stat)
        if settled.refused is not None:
            outcome = ItemOutcome("failed", settled.refused)
        catalog.set_item(ctx.conn, item_id, outcome.status, outcome.reason, outcome.media_id)
    library_items.after_settle(settled, ctx.conn, ctx.store, ctx.settings)
    return outcome


def wait_for_retry(item_id: int, ctx: IngestContext, reason: str, counted: bool = False) -> None:
    """Put an item back in the queue while a transient fault passes (a cancelled job then skips it). The
    attempt is given back, unless ``counted`` (its decoder died: AttemptDied). A DiskFull reason is kept
    as it is ("disk full: ...")."""
    text = reason if reason.startswith(DISK_FULL) else f"waiting to retry: {reason}"
    catalog.release_item(ctx.conn, item_id, ctx.worker_id, text, counted)


def give_up(item_id: int, ctx: IngestContext, reason: str) -> None:
    catalog.set_item(ctx.conn, item_id, "failed", reason)


def retry_delay(retries_so_far: int, settings: Settings) -> float:
    """Exponential backoff with jitter, so that workers do not all come back at the same moment."""
    delay = min(settings.ingest_retry_base_s * 2**retries_so_far, settings.ingest_retry_max_s)
    return delay * random.uniform(0.8, 1.2)


def _after_death(item: catalog.ItemRow, ctx: IngestContext, death: ChildDied) -> ItemOutcome:
    """The decoder of this attempt died: fail the item if that was its last attempt, else AttemptDied."""
    attempts, most = item["attempts"], ctx.settings.ingest_max_attempts
    log.warning("item %s (%s): attempt %d of %d died: %s", item["id"], item["file"], attempts, most, death)
    if attempts >= most:
        return ItemOutcome("failed", catalog.gave_up_reason(attempts, str(death)))
    raise AttemptDied(f"attempt {attempts} of {most} died: {death}")


# -- the steps -------------------------------------------------------------------------------------
def _process(item: sqlite3.Row, ctx: IngestContext) -> ItemOutcome:
    conn = ctx.conn
    if item["media_id"] is not None:
        media = catalog.get_media(conn, item["media_id"])
        if media is not None:  # an earlier attempt of this item created or claimed it: finish it
            _keep_original(media, item, ctx)
            _keep_motion(media, item, ctx)
            _finish(media, ctx, resumed=True)
            return ItemOutcome("indexed", None, media["id"])
    with _open_source(item, ctx) as source:
        media_type = _inspect(source, ctx.settings)
        sha256 = source.sha256()
        stat = library_items.file_stat(source) if library_items.in_library(item) else None
        if stat is not None and library_items.exclude_if_excluded(conn, item["location_id"], sha256, stat):
            return ItemOutcome("cancelled", library_items.EXCLUDED)
        existing = catalog.media_by_sha(conn, sha256)
        if existing is None:
            try:
                media_id = _create_media(item, source, media_type, sha256, ctx)
            except sqlite3.IntegrityError:
                existing = catalog.media_by_sha(conn, sha256)  # another worker recorded the same content first
                if existing is None:
                    raise
        if existing is not None:
            if _is_upload(item) and not existing["path"]:  # known from a library only: this upload is its copy
                _keep_upload_copy(existing, source, media_type, ctx)
            if existing["status"] == "indexed" or not catalog.claim_media(conn, item["id"], existing["id"]):
                return ItemOutcome("duplicate", f"same content as {existing['name']!r}", existing["id"],
                                   matched=True, file_stat=stat)
            media_id = existing["id"]  # left unfinished by an earlier job: finish it instead of duplicating it
        media = existing if existing is not None else catalog.get_media(conn, media_id)
        if media is None:  # its owner deleted it the moment it was recorded
            raise BadInput("deleted while it was being ingested")
        _keep_original(media, item, ctx, source)
        _keep_motion(media, item, ctx)
    _finish(media, ctx, resumed=existing is not None)
    return ItemOutcome("indexed", None, media_id, matched=existing is not None, file_stat=stat)


def _is_upload(item: sqlite3.Row) -> bool:
    return not os.path.isabs(item["stored_path"])


def _open_source(item: sqlite3.Row, ctx: IngestContext) -> OpenedFile:
    """The item's bytes, opened once beneath where they wait: an upload under the uploads folder, or a
    file under an ingest root (a symlink swapped in since the folder was listed is refused)."""
    stored = item["stored_path"]
    if not stored:
        raise BadInput("the file was not received")
    if library_items.in_library(item):  # beneath its library's folder, at its location's path now
        try:
            return library_items.open_library_file(ctx.conn, item["location_id"], ctx.settings)
        except RefusedFile as exc:
            raise BadInput(str(exc)) from None
    settings = ctx.settings
    if _is_upload(item):
        try:
            path = ctx.store.resolve(stored)
        except UnsafeNameError as exc:
            raise BadInput(str(exc)) from None
        roots, outside = [settings.uploads_dir], "the stored upload is outside the uploads folder"
    else:
        path, roots, outside = Path(stored), settings.ingest_roots, OUTSIDE_INGEST_ROOTS
    try:
        return open_beneath(path, roots)
    except OutsideRoots:
        raise BadInput(outside) from None
    except RefusedFile as exc:
        raise BadInput(str(exc)) from None


def _inspect(source: OpenedFile, settings: Settings) -> MediaType:
    """The file's real media type; BadInput for anything that is not a readable media file."""
    if source.size == 0:
        raise BadInput("empty file")
    if source.size > settings.max_file_bytes:
        raise BadInput(f"file too large: {source.size} bytes, over the limit of {settings.max_file_bytes}")
    try:
        head = source.read_at(0, SNIFF_BYTES)
    except OSError as exc:
        raise BadInput(f"unreadable: {exc.strerror or exc}") from None
    return plugins.sniff_plugin(head, plugins.load(settings.decoder_plugins)) or sniff(head)


def _create_media(item: sqlite3.Row, source: OpenedFile, media_type: MediaType, sha256: str,
                  ctx: IngestContext) -> int:
    settings, size = ctx.settings, source.size
    path, name, folder = _original_and_names(item, sha256, media_type, ctx)
    # room for the copied original (an upload is linked, a library file not copied) and its frames, over the reserve
    ensure_room(settings.data_path, 0 if _is_upload(item) or not path else size, settings.disk_reserve_bytes,
                repr(item["file"]))
    # A first attempt reads the capture metadata in the decoding child; after an attempt died, a child of its
    # own reads it, so that metadata which kills its reader costs only itself (the file time stands in).
    metadata_too = item["attempts"] <= 1
    with ctx.decode_slots:  # the file's decoders (its frames, a video's browser copy) run while it holds a slot
        try:
            staged: StagedMedia = run_isolated(
                staging.stage, (Descriptor(source.fd), media_type, sha256, settings, metadata_too),
                lambda duration: staging.time_limit(settings, size, duration))
        except ChildDied:
            staging.discard_partial(ctx.store, sha256)
            raise
        except OSError as exc:
            if is_disk_full(exc):
                staging.discard_partial(ctx.store, sha256)
            raise
        preview_path = _stage_preview(item, source, media_type, sha256, ctx)  # a copy browsers play, if needed
    capture = staged.capture or metadata.read_isolated(source, media_type.kind, settings)  # when, where, with what
    sync_filesystem(ctx.store.root)  # the frames and thumbnails outlive a power cut before rows name them
    conn = ctx.conn
    with catalog.transaction(conn):
        # Under the catalog's write lock, as a delete removes files (gateway/media.py): one of the same
        # content deleted while these were staged took their names with it. Staged again next time.
        if not all(ctx.store.resolve(path).is_file() for frame in staged.frames
                   for path in (frame.path, frame.thumb_path)):
            raise TransientFault("the same content was being deleted while this copy was decoded")
        near = (catalog.find_near_duplicate(conn, staged.phash, ctx.settings.phash_max_distance, media_type.kind)
                if staged.phash else None)
        media_id = catalog.insert_media(
            conn, sha256=sha256, kind=media_type.kind, mime=media_type.mime,
            path=path, name=name, folder=folder,
            size=size, width=staged.width, height=staged.height, duration=staged.duration, fps=staged.fps,
            phash=staged.phash, near_duplicate_of=near, job_id=item["job_id"], status="pending",
            preview_path=preview_path, **capture.columns())
        for frame in staged.frames:
            catalog.insert_frame(conn, media_id, frame.path, frame.thumb_path, frame.width, frame.height,
                                 frame.timestamp)
        catalog.set_item(conn, item["id"], "running", media_id=media_id)
    return media_id


def _original_and_names(item: sqlite3.Row, sha256: str, media_type: MediaType,
                        ctx: IngestContext) -> tuple[str, str, str]:
    """Where the original of new media goes, and its name and folder. A library file is not copied (its
    locations are its original: path '') and is named after its library and its path there."""
    if not library_items.in_library(item):
        return ctx.store.original_path(sha256, media_type.extension), item["file"], item["folder"]
    try:
        return "", *library_items.media_names(ctx.conn, item["location_id"])
    except RefusedFile as exc:
        raise BadInput(str(exc)) from None


def _keep_upload_copy(media: sqlite3.Row, source: OpenedFile, media_type: MediaType, ctx: IngestContext) -> None:
    """Content known from a library only, uploaded: the upload is kept as its copy, so it outlives the library."""
    path = ctx.store.original_path(media["sha256"], media_type.extension)
    ctx.store.adopt(source, path, link=True)
    catalog_libraries.keep_upload_copy(ctx.conn, media["id"], path)


def _keep_original(media: sqlite3.Row, item: sqlite3.Row, ctx: IngestContext,
                   source: OpenedFile | None = None) -> None:
    """Put the original in the media store, durably: an upload is linked there, a user's file is copied (a
    library's never is: its location is recorded as the item settles). A resumed attempt (no ``source``) opens
    the item's file again if it is still there."""
    if library_items.in_library(item):
        return
    if source is not None:
        ctx.store.adopt(source, media["path"], link=_is_upload(item))
        return
    try:
        with _open_source(item, ctx) as reopened:
            ctx.store.adopt(reopened, media["path"], link=_is_upload(item))
    except BadInput:
        if not ctx.store.resolve(media["path"]).exists():
            raise BadInput("the original file is gone (it was removed while being ingested)") from None


# -- formats: a video's browser preview, a Live Photo's motion clip ----------------------------------------
def _stage_preview(item: sqlite3.Row, source: OpenedFile, media_type: MediaType, sha256: str,
                   ctx: IngestContext) -> str | None:
    """A browser-playable copy of a video browsers cannot play (preview.py), made in a child process of its
    own; None when the original plays, or when no copy could be made: the video is indexed all the same and
    its original is served."""
    if media_type.kind != "video":
        return None
    settings, size = ctx.settings, source.size
    try:
        return run_isolated(preview.stage_preview, (Descriptor(source.fd), sha256, settings),
                            lambda duration: preview.time_limit(settings, size, duration))
    except (BadInput, ChildDied) as exc:
        preview.discard_partial(ctx.store, sha256)
        log.warning("item %s (%s): no browser preview: %s", item["id"], item["file"], exc)
        return None


def _keep_motion(media: sqlite3.Row, item: sqlite3.Row, ctx: IngestContext) -> None:
    """A Live Photo's clip (job_items.motion_path, paired with its photo by shared/live_photos.py) kept with
    the photo (media.motion_path) as an original is: linked (an upload) or copied. A clip that is gone or is
    not a video costs the photo nothing: it is indexed without its motion."""
    motion = item["motion_path"]
    if not motion or media["kind"] != "image" or media["motion_path"] or library_items.in_library(item):
        return
    stored = stored_motion_path(media["sha256"])
    try:
        with _open_source({**item, "stored_path": motion}, ctx) as clip:
            if _inspect(clip, ctx.settings).kind != "video":
                raise BadInput("its motion clip is not a video")
            ctx.store.adopt(clip, stored, link=_is_upload(item))
    except BadInput as exc:
        log.warning("item %s (%s): kept without its Live Photo motion: %s", item["id"], item["file"], exc)
        return
    catalog.set_motion_path(ctx.conn, media["id"], stored)


def _finish(media: sqlite3.Row, ctx: IngestContext, resumed: bool = False) -> None:
    """Embed the frames that have no vector yet, then the pooled vector of a video; mark it indexed."""
    conn, embedder = ctx.conn, ctx.embedder
    media_id = media["id"]
    if resumed:  # vectors committed by an attempt that crashed before recording them are used, not redone
        adopt_committed_rows(conn, ctx.settings.vectors_dir, media_id)
    missing = [frame for frame in catalog.frames_of_media(conn, media_id) if frame["vector_row"] is None]
    for start in range(0, len(missing), ctx.settings.embed_batch_size):
        batch = missing[start:start + ctx.settings.embed_batch_size]
        items = [(frame["id"], frame["path"]) for frame in batch]
        rows = _call_embedder(lambda items=items: embedder.embed_frames(items))
        with catalog.transaction(conn):
            catalog.set_frame_rows(conn, {frame["id"]: row for frame, row in zip(batch, rows, strict=True)})
    if media["kind"] == "video" and catalog.video_row(conn, media_id) is None:
        frame_rows = [frame["vector_row"] for frame in catalog.frames_of_media(conn, media_id)]
        catalog.set_video_row(conn, media_id, _call_embedder(lambda: embedder.embed_video(media_id, frame_rows)))
    rows = [frame["vector_row"] for frame in catalog.frames_of_media(conn, media_id)]
    rows.append(catalog.video_row(conn, media_id) or -1)
    _wait_until_searchable(max(rows), ctx)
    catalog.mark_media_indexed(conn, media_id)


def _wait_until_searchable(last_row: int, ctx: IngestContext) -> None:
    """A job that says done should be searchable: give the index shards a moment to take the rows in.
    The index follows the vectors store on its own, so a shard that is down or slow holds nothing up
    for long."""
    deadline = time.monotonic() + INDEX_CATCH_UP_WAIT_S
    for shard in ctx.index.shards:
        while time.monotonic() < deadline:
            try:
                if shard.health().indexed_through > last_row:
                    break
            except (UpstreamError, ValueError):  # down, or not answering health: not waited for
                break
            time.sleep(0.02)


def _call_embedder(call: Callable[[], T]) -> T:
    """The embedder's faults: unreachable, 5xx, 408 and 429 pass (TransientFault); any other refusal is
    about these frames (BadInput)."""
    try:
        return call()
    except UpstreamError as exc:
        detail = exc.detail[:300]
        if exc.status is None:
            raise TransientFault(f"embedder {detail}") from exc  # "embedder unreachable at ..."
        if exc.status >= 500 or exc.status in (408, 429):
            raise TransientFault(f"embedder answered HTTP {exc.status}: {detail}") from exc
        raise BadInput(f"the embedder refused the frames (HTTP {exc.status}: {detail})") from exc


def _is_transient(exc: Exception) -> bool:
    if isinstance(exc, sqlite3.OperationalError):
        return "locked" in str(exc) or "busy" in str(exc)
    return isinstance(exc, OSError) and exc.errno == errno.EAGAIN  # a full disk: DiskFull


def _fail_unexpectedly(item_id: int, ctx: IngestContext, exc: Exception) -> ItemOutcome:
    log.exception("job item %s failed unexpectedly", item_id)
    outcome = ItemOutcome("failed", f"internal error while ingesting: {type(exc).__name__}: {exc}"[:500])
    catalog.set_item(ctx.conn, item_id, outcome.status, outcome.reason)
    return outcome


def _discard_upload(item: sqlite3.Row, ctx: IngestContext) -> None:
    """Remove what is left of a finished upload: the file itself unless it was moved into the media
    store (failed, duplicate, cancelled), then the job's upload folder once empty. The user's own files stay."""
    if not _is_upload(item) or not item["stored_path"]:
        return
    for stored in filter(None, (item["motion_path"], item["stored_path"])):  # a Live Photo's clip waits beside it
        try:
            path = ctx.store.resolve(stored)
        except UnsafeNameError:
            continue
        if not path.is_relative_to(ctx.settings.uploads_dir.resolve()):
            continue
        try:
            path.unlink(missing_ok=True)
            path.parent.rmdir()  # fails while other files of the job still wait there
        except OSError:
            pass
