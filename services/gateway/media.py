"""Media files and metadata: which stored file serves a frame, thumbnail or original, and deletion.

Stored files are content addressed (their names are the SHA-256 of the original), so a file served
for an id never changes (the media router sends it with a year of immutable caching). Only regular files
under the media folder are served, checked on the opened file (stored_path). A library's originals are not
copied: they are served from the library's folder, opened beneath it (shared/libraries/originals.py); a
deleted library item is excluded there, its file untouched.
"""

from __future__ import annotations

import mimetypes
import sqlite3
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import anyio

from services.gateway.browse import capture_details
from services.gateway.state import Gateway
from shared import catalog
from shared.catalog import libraries as catalog_libraries
from shared.errors import NotFound, missing_ids_message
from shared.libraries.forget import remove_files
from shared.libraries.originals import open_motion_clip, open_original
from shared.media_store import UnsafeNameError
from shared.safe_open import OutsideRoots, RefusedFile, open_beneath
from shared.schemas import (
    FrameInfo,
    FrameText,
    MediaBulkDeleted,
    MediaDeleted,
    MediaInfo,
    MediaLocation,
    TextLine,
    frame_url,
    media_url,
    motion_url,
    original_url,
    thumb_url,
)

JPEG = "image/jpeg"


@dataclass(frozen=True)
class StoredFile:
    path: Path
    media_type: str
    filename: str | None = None  # the name to offer for saving (originals)
    etag: str | None = None  # its content's name when its file name is not one (a library file: its SHA-256)


def frame_row(gateway: Gateway, frame_id: int) -> sqlite3.Row:
    frame = catalog.get_frame(gateway.catalog(), frame_id)
    if frame is None:
        raise NotFound(f"no frame with id {frame_id}")
    return frame


def media_row(gateway: Gateway, media_id: int) -> sqlite3.Row:
    media = catalog.get_media(gateway.catalog(), media_id)
    if media is None:
        raise NotFound(f"no media with id {media_id}")
    return media


def stored_path(gateway: Gateway, relative: str) -> Path:
    """The real path of a stored file, checked on the file itself (open, then its descriptor's real path):
    a regular file under the media folder, so that no symlink leads a client to the catalog, the secrets
    or anything outside the data volume."""
    try:
        with open_beneath(gateway.store.resolve(relative), [gateway.settings.media_dir]) as stored:
            return Path(stored.real_path)
    except (UnsafeNameError, OutsideRoots) as exc:
        raise NotFound("file not available") from exc
    except RefusedFile as exc:
        raise NotFound("the file is missing from the data volume") from exc


def frame_file(gateway: Gateway, frame_id: int) -> StoredFile:
    """The normalised JPEG of a frame."""
    return StoredFile(stored_path(gateway, frame_row(gateway, frame_id)["path"]), JPEG)


def frame_text(gateway: Gateway, frame_id: int) -> FrameText:
    """The lines read in a frame and its reading's state."""
    found = catalog.frame_text(gateway.catalog(), frame_id)
    if found is None:
        raise NotFound(f"no frame with id {frame_id}")
    status, lines = found
    if status is None:
        status = "unread" if gateway.settings.ocr else "off"
    return FrameText(frame_id=frame_id, status=status, lines=[TextLine(**line) for line in lines])


def thumb_file(gateway: Gateway, frame_id: int) -> StoredFile:
    return StoredFile(stored_path(gateway, frame_row(gateway, frame_id)["thumb_path"]), JPEG)


def original_file(gateway: Gateway, media_id: int, videos_only: bool = False) -> StoredFile:
    """The file as it was uploaded; with ``videos_only`` a photo's id names nothing."""
    media = media_row(gateway, media_id)
    if videos_only and media["kind"] != "video":
        raise NotFound(f"media {media_id} is not a video; its file is at {original_url(media_id)}")
    if not media["path"]:  # a library file, not copied: served from its library (503 while its folder is missing)
        with open_original(gateway.catalog(), media_id, gateway.settings) as opened:
            return StoredFile(Path(opened.real_path), original_media_type(media), original_filename(media),
                              media["sha256"])
    return StoredFile(stored_path(gateway, media["path"]), original_media_type(media), original_filename(media))


def playable_video(gateway: Gateway, media_id: int) -> StoredFile:
    """What a browser's player gets for a video: the H.264 copy made at ingest for one browsers cannot play
    (same timeline: a moment's timestamp seeks to the same picture), else the original."""
    media = media_row(gateway, media_id)
    if media["kind"] != "video" or not media["preview_path"]:
        return original_file(gateway, media_id, videos_only=True)
    name = PurePosixPath(original_filename(media)).stem or f"media-{media_id}"
    return StoredFile(stored_path(gateway, media["preview_path"]), "video/mp4", f"{name}.mp4")


def motion_file(gateway: Gateway, media_id: int) -> StoredFile:
    """A Live Photo's motion clip, as it was taken."""
    media = media_row(gateway, media_id)
    name = PurePosixPath(original_filename(media)).stem or f"media-{media_id}"
    if not media["motion_path"] and catalog_libraries.motion_clip_locations(gateway.catalog(), media_id):
        with open_motion_clip(gateway.catalog(), media_id, gateway.settings) as opened:  # beside it in its library
            return StoredFile(Path(opened.real_path), "video/quicktime", f"{name}.mov", f"{media['sha256']}-motion")
    if not media["motion_path"]:
        raise NotFound(f"media {media_id} has no motion clip (it is not a Live Photo)")
    return StoredFile(stored_path(gateway, media["motion_path"]), "video/quicktime", f"{name}.mov")


def original_media_type(media: sqlite3.Row) -> str:
    return media["mime"] or mimetypes.guess_type(media["path"])[0] or "application/octet-stream"


def original_filename(media: sqlite3.Row) -> str:
    return PurePosixPath(media["name"]).name or f"media-{media['id']}"


def media_info(gateway: Gateway, media_id: int) -> MediaInfo:
    media = media_row(gateway, media_id)
    frames = catalog.frames_of_media(gateway.catalog(), media_id)
    return MediaInfo(
        id=media["id"], kind=media["kind"], mime=media["mime"], name=media["name"], folder=media["folder"],
        size=media["size"], width=media["width"], height=media["height"], duration=media["duration"],
        fps=media["fps"], status=media["status"], created_at=media["created_at"],
        near_duplicate_of=media["near_duplicate_of"], original_url=original_url(media_id),
        media_url=media_url(media["id"], media["kind"]), **capture_details(media),
        motion_url=motion_url(media_id) if media["motion_path"] or catalog_libraries.motion_clip_locations(
            gateway.catalog(), media_id) else None,
        frames=[FrameInfo(frame_id=f["id"], timestamp=f["timestamp"], width=f["width"], height=f["height"],
                          indexed=f["vector_row"] is not None, frame_url=frame_url(f["id"]),
                          thumb_url=thumb_url(f["id"])) for f in frames],
        locations=[MediaLocation(**found) for found in catalog_libraries.media_locations(gateway.catalog(), media_id)])


async def delete_media(gateway: Gateway, media_id: int) -> MediaDeleted:
    """Forget one media item (see delete_media_items)."""
    deleted = (await delete_media_items(gateway, [media_id])).deleted
    if not deleted:  # another request deleted it first
        raise NotFound(f"no media with id {media_id}")
    return deleted[0]


async def delete_media_items(gateway: Gateway, media_ids: list[int]) -> MediaBulkDeleted:
    """Forget media items: catalog rows first (so they leave results at once), then their vector rows
    (frames and pooled video vectors) in every index shard, then their files (remove_files). An unknown id
    is NotFound and nothing is deleted. A shard that cannot be told makes the answer ``partial`` (the next
    worker start tombstones the rows there)."""
    media_ids = list(dict.fromkeys(media_ids))

    def remove_from_catalog() -> tuple[list[int], list[tuple[int, catalog.DeletedMedia]]]:
        conn = gateway.catalog()
        missing = catalog.missing_media(conn, media_ids)
        if missing:
            return missing, []
        with catalog.transaction(conn):
            catalog_libraries.exclude_media(conn, media_ids)  # a library's files stay, out of search for good
            removed = [(media_id, catalog.delete_media(conn, media_id)) for media_id in media_ids]
        return [], [(media_id, found) for media_id, found in removed if found is not None]  # None: deleted meanwhile

    missing, removed = await anyio.to_thread.run_sync(remove_from_catalog)
    if missing:
        raise NotFound(f"{missing_ids_message('media', missing)}; nothing was deleted")
    rows = [row for _, deleted in removed for row in deleted.rows]
    partial = bool(rows) and (await gateway.shards.delete(rows)).partial
    await anyio.to_thread.run_sync(lambda: remove_files(gateway.catalog(), gateway.store,
                                                        [deleted for _, deleted in removed]))
    return MediaBulkDeleted(
        deleted=[MediaDeleted(id=media_id, rows=len(deleted.rows), partial=partial) for media_id, deleted in removed],
        rows=len(rows), partial=partial)
