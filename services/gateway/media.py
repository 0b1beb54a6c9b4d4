"""Media files and metadata: frames, thumbnails, originals (with HTTP Range), and deletion.

Stored files are content addressed (their names are the SHA-256 of the original), so a file served
for an id never changes: it is sent with a year of immutable caching and an ETag from its name.
"""

from __future__ import annotations

import asyncio
import mimetypes
import sqlite3
from pathlib import Path, PurePosixPath

import anyio
from fastapi import HTTPException, Request, Response
from fastapi.responses import FileResponse

from services.gateway.state import Gateway
from shared import catalog
from shared.clients import UpstreamError
from shared.media_store import UnsafeNameError
from shared.schemas import FrameInfo, MediaBulkDeleted, MediaDeleted, MediaInfo, media_url

IMMUTABLE = "max-age=31536000, immutable"


def frame_row(gateway: Gateway, frame_id: int) -> sqlite3.Row:
    frame = catalog.get_frame(gateway.catalog(), frame_id)
    if frame is None:
        raise HTTPException(404, f"no frame with id {frame_id}")
    return frame


def media_row(gateway: Gateway, media_id: int) -> sqlite3.Row:
    media = catalog.get_media(gateway.catalog(), media_id)
    if media is None:
        raise HTTPException(404, f"no media with id {media_id}")
    return media


def stored_file(gateway: Gateway, relative: str) -> Path:
    try:
        path = gateway.store.resolve(relative)
    except UnsafeNameError as exc:
        raise HTTPException(404, "file not available") from exc
    if not path.is_file():
        raise HTTPException(404, "the file is missing from the data volume")
    return path


def media_info(gateway: Gateway, media_id: int) -> MediaInfo:
    media = media_row(gateway, media_id)
    frames = catalog.frames_of_media(gateway.catalog(), media_id)
    return MediaInfo(
        id=media["id"], kind=media["kind"], mime=media["mime"], name=media["name"], folder=media["folder"],
        size=media["size"], width=media["width"], height=media["height"], duration=media["duration"],
        fps=media["fps"], status=media["status"], created_at=media["created_at"],
        near_duplicate_of=media["near_duplicate_of"], original_url=f"/media/{media_id}/original",
        media_url=media_url(media["id"], media["kind"]),
        frames=[FrameInfo(frame_id=f["id"], timestamp=f["timestamp"], width=f["width"], height=f["height"],
                          indexed=f["vector_row"] is not None, frame_url=f"/frame/{f['id']}",
                          thumb_url=f"/thumb/{f['id']}") for f in frames])


def immutable_file(request: Request, path: Path, media_type: str, private: bool,
                   filename: str | None = None) -> Response:
    """A content-addressed file with long caching; 304 when the client already has it; Range honoured."""
    etag = f'"{path.name}"'
    headers = {"Cache-Control": f"{'private' if private else 'public'}, {IMMUTABLE}", "ETag": etag}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type=media_type, headers=headers, filename=filename,
                        content_disposition_type="inline")


def original_media_type(media: sqlite3.Row) -> str:
    return media["mime"] or mimetypes.guess_type(media["path"])[0] or "application/octet-stream"


def original_filename(media: sqlite3.Row) -> str:
    return PurePosixPath(media["name"]).name or f"media-{media['id']}"


async def delete_media(gateway: Gateway, media_id: int) -> MediaDeleted:
    """Forget one media item (see delete_media_items)."""
    deleted = (await delete_media_items(gateway, [media_id])).deleted
    if not deleted:  # another request deleted it first
        raise HTTPException(404, f"no media with id {media_id}")
    return deleted[0]


async def delete_media_items(gateway: Gateway, media_ids: list[int]) -> MediaBulkDeleted:
    """Forget media items: catalog rows first (so they leave results at once), then their vector rows
    (frames and pooled video vectors) in every index shard, then their files. An unknown id is a 404
    and nothing is deleted."""
    media_ids = list(dict.fromkeys(media_ids))

    def remove_from_catalog() -> tuple[list[int], list[tuple[int, tuple[list[int], list[str]]]]]:
        conn = gateway.catalog()
        missing = catalog.missing_media(conn, media_ids)
        if missing:
            return missing, []
        removed = ((media_id, catalog.delete_media(conn, media_id)) for media_id in media_ids)
        return [], [(media_id, found) for media_id, found in removed if found is not None]  # None: deleted meanwhile

    missing, removed = await anyio.to_thread.run_sync(remove_from_catalog)
    if missing:
        shown = ", ".join(str(media_id) for media_id in missing[:20]) + (" ..." if len(missing) > 20 else "")
        raise HTTPException(404, f"no media with id{'s' if len(missing) > 1 else ''} {shown}; nothing was deleted")
    rows = [row for _, (media_rows, _) in removed for row in media_rows]
    partial = False
    if rows:
        answers = await asyncio.gather(*(shard.delete(rows) for shard in gateway.shards), return_exceptions=True)
        for answer in answers:
            if isinstance(answer, BaseException) and not isinstance(answer, UpstreamError):
                raise answer
        partial = any(isinstance(answer, UpstreamError) for answer in answers)
    await anyio.to_thread.run_sync(gateway.store.remove, [path for _, (_, paths) in removed for path in paths])
    return MediaBulkDeleted(
        deleted=[MediaDeleted(id=media_id, rows=len(media_rows), partial=partial)
                 for media_id, (media_rows, _) in removed],
        rows=len(rows), partial=partial)
