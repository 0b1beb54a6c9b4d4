from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response

from services.gateway import media
from services.gateway.state import Gateway, GatewayDep
from shared.schemas import ErrorBody, MediaDeleted, MediaInfo

router = APIRouter(tags=["media"], responses={404: {"model": ErrorBody}})

_JPEG = {200: {"content": {"image/jpeg": {}}}, 304: {"description": "Not modified (If-None-Match)"}}
_RANGED = {206: {"description": "Partial content (HTTP Range)"}, 416: {"description": "Range not satisfiable"}}


def _private(gateway: Gateway) -> bool:
    """Behind an API key, shared caches must not keep copies."""
    return gateway.settings.api_key is not None


@router.get("/frame/{frame_id}", response_class=Response, responses=_JPEG)
def get_frame(frame_id: int, request: Request, gateway: GatewayDep) -> Response:
    """The normalised JPEG of a frame (a photo, or one moment of a video)."""
    path = media.stored_file(gateway, media.frame_row(gateway, frame_id)["path"])
    return media.immutable_file(request, path, "image/jpeg", _private(gateway))


@router.get("/thumb/{frame_id}", response_class=Response, responses=_JPEG)
def get_thumb(frame_id: int, request: Request, gateway: GatewayDep) -> Response:
    path = media.stored_file(gateway, media.frame_row(gateway, frame_id)["thumb_path"])
    return media.immutable_file(request, path, "image/jpeg", _private(gateway))


@router.get("/media/{media_id}", response_model=MediaInfo)
def get_media_info(media_id: int, gateway: GatewayDep) -> MediaInfo:
    return media.media_info(gateway, media_id)


def _original(media_id: int, request: Request, gateway: Gateway, videos_only: bool) -> Response:
    row = media.media_row(gateway, media_id)
    if videos_only and row["kind"] != "video":
        raise HTTPException(404, f"media {media_id} is not a video; its file is at /media/{media_id}/original")
    path = media.stored_file(gateway, row["path"])
    return media.immutable_file(request, path, media.original_media_type(row), _private(gateway),
                                filename=media.original_filename(row))


@router.get("/media/{media_id}/original", response_class=Response, responses=_RANGED)
def get_original(media_id: int, request: Request, gateway: GatewayDep) -> Response:
    """The file as it was uploaded (HTTP Range supported)."""
    return _original(media_id, request, gateway, videos_only=False)


@router.get("/video/{media_id}", response_class=Response, responses=_RANGED)
def get_video(media_id: int, request: Request, gateway: GatewayDep) -> Response:
    """The original video, streamed with HTTP Range so players can seek to a moment."""
    return _original(media_id, request, gateway, videos_only=True)


@router.delete("/media/{media_id}", response_model=MediaDeleted)
async def delete_media(media_id: int, gateway: GatewayDep) -> MediaDeleted:
    """Remove a photo or video: from the catalog, from every index shard (tombstones) and from disk."""
    return await media.delete_media(gateway, media_id)
