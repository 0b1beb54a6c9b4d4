"""Search by words, by an example image (and words), and "more like this" (services/gateway/search.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile

from services.gateway import search
from services.gateway.routers.deps import GatewayDep
from services.gateway.search import MAX_EF, Filters, SearchOptions
from shared.schemas import ErrorBody, SearchResponse

router = APIRouter(prefix="/search", tags=["search"],
                   responses={422: {"model": ErrorBody}, 503: {"model": ErrorBody}})


def _epoch(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def search_options(
    gateway: GatewayDep,
    k: Annotated[int, Query(ge=1, description="Results per page (at most MEDIASEARCH_SEARCH_MAX_K)")] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000, description="Results to skip (pagination)")] = 0,
    min_similarity: Annotated[float | None, Query(ge=-1, le=1, description="Drop results below this cosine")] = None,
    media_type: Annotated[Literal["image", "video"] | None,
                          Query(alias="type", description="Only images or only videos")] = None,
    folder: Annotated[str | None, Query(min_length=1, max_length=4096,
                                        description="Only media from this upload / server folder (and below)")] = None,
    created_after: Annotated[datetime | None, Query(description="Only media added at or after (ISO 8601, UTC)")] = None,
    created_before: Annotated[datetime | None,
                              Query(description="Only media added at or before (ISO 8601, UTC)")] = None,
    group: Annotated[Literal["video"] | None,
                     Query(description="`video`: one result per video, with its matching moments")] = None,
    collection: Annotated[int | None, Query(description="Only media in this collection (GET /collections)")] = None,
    ef: Annotated[int | None, Query(ge=1, le=MAX_EF, description="Index search breadth: higher finds more of the "
                                                                  "true nearest, slower (default: the index's)")] = None,
) -> SearchOptions:
    filters = Filters(media_type, folder, _epoch(created_after), _epoch(created_before), collection)
    return search.search_options(gateway, k=k, offset=offset, min_similarity=min_similarity, filters=filters,
                                 group_videos=group == "video", ef=ef)


Options = Annotated[SearchOptions, Depends(search_options)]


@router.get("", response_model=SearchResponse)
async def search_text(q: Annotated[str, Query(description="What to look for, in words")], options: Options,
                      gateway: GatewayDep) -> SearchResponse:
    """Text search over every indexed photo and video frame, best match first."""
    return await search.search_text(gateway, search.query_text(q), options)


@router.post("/image", response_model=SearchResponse, responses={400: {"model": ErrorBody}, 413: {"model": ErrorBody}})
async def search_image(file: Annotated[UploadFile, File(description="The query image")], options: Options,
                       gateway: GatewayDep,
                       q: Annotated[str | None, Form(description="Optional words to combine with the image")] = None,
                       ) -> SearchResponse:
    """Search by an example image; with `q`, by the image and the words together."""
    text = search.query_text(q) if q and q.strip() else None  # a form's empty text box means "no words"
    search.check_query_image_size(gateway, file.size)
    data = await file.read()
    return await search.search_image(gateway, data, file.filename or "query image", text, options)


@router.get("/similar/{frame_id}", response_model=SearchResponse,
            responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}})
async def search_similar(frame_id: int, options: Options, gateway: GatewayDep) -> SearchResponse:
    """More like this: the frame's own stored vector as the query (the frame itself is left out)."""
    return await search.search_similar(gateway, frame_id, options)
