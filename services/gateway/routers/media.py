"""Media files (frames, thumbnails, originals with HTTP Range), metadata and deletion."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from services.gateway import auth, browse, media
from services.gateway.media import StoredFile
from services.gateway.routers.deps import GatewayDep
from services.gateway.routers.search import FiltersDep
from services.gateway.state import Gateway
from shared.schemas import (
    BrowsePage,
    CameraList,
    ErrorBody,
    FrameText,
    MediaBulkDeleted,
    MediaDeleted,
    MediaIds,
    MediaInfo,
    MonthList,
)

router = APIRouter(tags=["media"], responses={404: {"model": ErrorBody}})

IMMUTABLE = "private, max-age=31536000, immutable"  # private: only for signed-in users, so no shared cache
_JPEG = {200: {"content": {"image/jpeg": {}}}, 304: {"description": "Not modified (If-None-Match)"}}
_RANGED = {206: {"description": "Partial content (HTTP Range)"}, 416: {"description": "Range not satisfiable"}}


def immutable_file(request: Request, gateway: Gateway, file: StoredFile) -> Response:
    """A content-addressed file with long caching; 304 when the client already has it; Range honoured."""
    etag = f'"{file.etag or file.path.name}"'
    headers = {"Cache-Control": IMMUTABLE, "ETag": etag}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return FileResponse(file.path, media_type=file.media_type, headers=headers, filename=file.filename,
                        content_disposition_type="inline")


@router.get("/frame/{frame_id}", response_class=Response, responses=_JPEG)
def get_frame(frame_id: int, request: Request, gateway: GatewayDep) -> Response:
    """The normalised JPEG of a frame (a photo, or one moment of a video)."""
    return immutable_file(request, gateway, media.frame_file(gateway, frame_id))


@router.get("/frame/{frame_id}/text", response_model=FrameText)
def get_frame_text(frame_id: int, gateway: GatewayDep) -> FrameText:
    """The text read in a frame (OCR), line by line with boxes, and whether it has been read yet."""
    return media.frame_text(gateway, frame_id)


@router.get("/thumb/{frame_id}", response_class=Response, responses=_JPEG)
def get_thumb(frame_id: int, request: Request, gateway: GatewayDep) -> Response:
    return immutable_file(request, gateway, media.thumb_file(gateway, frame_id))


@router.get("/media", response_model=BrowsePage, responses={422: {"model": ErrorBody}})
def browse_media(
    gateway: GatewayDep,
    filters: FiltersDep,
    sort: Annotated[Literal["taken", "added"], Query(
        description="taken: when it was taken (media without a capture time: when added); added")] = "taken",
    order: Annotated[Literal["desc", "asc"], Query(description="desc: newest first")] = "desc",
    limit: Annotated[int, Query(ge=1, le=500, description="Items per page")] = 100,
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")] = None,
) -> BrowsePage:
    """The whole library without a query, a page at a time, with the same filters as search."""
    return browse.browse(gateway, filters, sort, order == "desc", limit, cursor)


@router.get("/media/months", response_model=MonthList, responses={422: {"model": ErrorBody}})
def media_months(gateway: GatewayDep, filters: FiltersDep) -> MonthList:
    """How many media each month holds (where they were taken, local time), newest first: for a date scrubber."""
    return browse.months(gateway, filters)


@router.get("/cameras", response_model=CameraList)
def list_cameras(gateway: GatewayDep) -> CameraList:
    """The cameras that took the library's media (the `camera` filter's values), most used first."""
    return browse.cameras(gateway)


@router.get("/media/{media_id}", response_model=MediaInfo)
def get_media_info(media_id: int, gateway: GatewayDep) -> MediaInfo:
    return media.media_info(gateway, media_id)


@router.get("/media/{media_id}/original", response_class=Response, responses=_RANGED)
def get_original(media_id: int, request: Request, gateway: GatewayDep) -> Response:
    """The file as it was uploaded (HTTP Range supported)."""
    return immutable_file(request, gateway, media.original_file(gateway, media_id))


@router.get("/video/{media_id}", response_class=Response, responses=_RANGED)
def get_video(media_id: int, request: Request, gateway: GatewayDep) -> Response:
    """The video, streamed with HTTP Range so players can seek to a moment: the original, or for one browsers
    cannot play (HEVC, AVI, ...) the H.264 copy made at ingest, on the same timeline."""
    return immutable_file(request, gateway, media.playable_video(gateway, media_id))


@router.get("/media/{media_id}/motion", response_class=Response, responses=_RANGED)
def get_motion(media_id: int, request: Request, gateway: GatewayDep) -> Response:
    """A Live Photo's motion clip (QuickTime; HTTP Range supported); 404 for media without one."""
    return immutable_file(request, gateway, media.motion_file(gateway, media_id))


@router.delete("/media/{media_id}", response_model=MediaDeleted)
async def delete_media(media_id: int, request: Request, gateway: GatewayDep) -> MediaDeleted:
    """Remove a photo or video: from the catalog, from every index shard (tombstones) and from disk."""
    deleted = await media.delete_media(gateway, media_id)
    await run_in_threadpool(auth.record, request, "media deleted", f"media {media_id}")
    return deleted


@router.post("/media/delete", response_model=MediaBulkDeleted, responses={422: {"model": ErrorBody}})
async def delete_media_items(body: MediaIds, request: Request, gateway: GatewayDep) -> MediaBulkDeleted:
    """Remove several photos or videos: files, frames, vectors (tombstoned in every shard) and catalog rows.
    An unknown id fails the whole request with 404 before anything is deleted."""
    deleted = await media.delete_media_items(gateway, body.media_ids)
    await run_in_threadpool(auth.record, request, "media deleted", media_list(body.media_ids),
                            f"{len(body.media_ids)} items")
    return deleted


def media_list(ids: list[int], shown: int = 50) -> str:
    return "media " + ", ".join(map(str, ids[:shown])) + (" ..." if len(ids) > shown else "")
