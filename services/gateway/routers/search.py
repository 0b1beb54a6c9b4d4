"""Search by words, by an example image (and words), and "more like this" (services/gateway/search.py)."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from starlette.concurrency import run_in_threadpool

from services.gateway import search
from services.gateway.routers.deps import GatewayDep
from services.gateway.search import MAX_EF, Filters, SearchMode, SearchOptions
from shared.schemas import ErrorBody, SearchCompareRequest, SearchCompareResponse, SearchResponse

router = APIRouter(prefix="/search", tags=["search"],
                   responses={422: {"model": ErrorBody}, 503: {"model": ErrorBody}})


async def media_filters(
    media_type: Annotated[Literal["image", "video"] | None,
                          Query(alias="type", description="Only images or only videos")] = None,
    folder: Annotated[str | None, Query(min_length=1, max_length=4096,
                                        description="Only media from this upload / server folder (and below)")] = None,
    created_after: Annotated[str | None, Query(
        max_length=64, description="Only media added at or after (ISO 8601 date-time, UTC without an offset)")] = None,
    created_before: Annotated[str | None, Query(
        max_length=64, description="Only media added at or before (ISO 8601 date-time, UTC without an offset)")] = None,
    collection: Annotated[int | None, Query(description="Only media in this collection (GET /collections)")] = None,
    taken_after: Annotated[str | None, Query(
        max_length=64, description="Only media taken at or after: an ISO 8601 date (the whole day) or date-time. "
                                   "Without an offset it is the wall clock where each was taken; with one, an "
                                   "instant")] = None,
    taken_before: Annotated[str | None, Query(
        max_length=64, description="Only media taken before this date-time, or up to the end of this date "
                                   "(ISO 8601, as taken_after)")] = None,
    camera: Annotated[str | None, Query(min_length=1, max_length=200,
                                        description="Only media from this camera, \"Make Model\" as GET /cameras "
                                                    "lists them (exact, ignoring case)")] = None,
    near: Annotated[str | None, Query(max_length=100, description="Only media taken within km of a point: "
                                                                 "lat,lon,km (decimal degrees, kilometres)")] = None,
    library: Annotated[int | None, Query(description="Only media with a file in this library (GET /libraries)")] = None,
) -> Filters:
    """The filters search and browsing (GET /media) share; InvalidParameter (422) for a malformed one."""
    return Filters(kind=media_type, folder=folder, created_from=search.instant(created_after, "created_after"),
                   created_to=search.instant(created_before, "created_before"), collection=collection,
                   taken_from=search.taken_bound(taken_after, "taken_after"),
                   taken_to=search.taken_bound(taken_before, "taken_before", end=True),
                   camera=camera, near=search.near_point(near), library=library)


FiltersDep = Annotated[Filters, Depends(media_filters)]


async def search_options(
    gateway: GatewayDep,
    filters: FiltersDep,
    k: Annotated[int, Query(ge=1, description="Results per page (at most MEDIASEARCH_SEARCH_MAX_K)")] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000, description="Results to skip (pagination)")] = 0,
    min_similarity: Annotated[float | None, Query(ge=-1, le=1, description="Drop results below this cosine")] = None,
    group: Annotated[Literal["video"] | None,
                     Query(description="`video`: one result per video, with its matching moments")] = None,
    ef: Annotated[int | None, Query(ge=1, le=MAX_EF, description="Index search breadth: higher finds more of the "
                                                                  "true nearest, slower (default: the index's)")] = None,
    mode: Annotated[SearchMode, Query(description="GET /search only (a search by an image or a frame is visual): "
                                                  "`visual` (CLIP only), `text` (only frames whose text, read by "
                                                  "OCR, holds the words) or `both`, fused")] = "both",
) -> SearchOptions:
    options = partial(search.search_options, gateway, k=k, offset=offset, min_similarity=min_similarity,
                      filters=filters, group_videos=group == "video", ef=ef, mode=mode)
    # A collection filter is checked in the catalog: a thread; otherwise nothing blocks the event loop.
    return options() if filters.collection is None else await run_in_threadpool(options)


Options = Annotated[SearchOptions, Depends(search_options)]


@router.get("", response_model=SearchResponse)
async def search_text(q: Annotated[str, Query(description="What to look for, in words; `-word` or `-\"a phrase\"` "
                                                       "subtracts a concept (`beach -people`), quotes keep text "
                                                       "literal")], options: Options,
                      gateway: GatewayDep) -> SearchResponse:
    """Search by words over every indexed photo and video frame, best match first: CLIP's similarity fused with
    the text read in the frames (`mode`); a result found by its text says so in `matched_text`."""
    return await search.search_text(gateway, search.query_text(q), options)


@router.post("/image", response_model=SearchResponse, responses={400: {"model": ErrorBody}, 413: {"model": ErrorBody}})
async def search_image(file: Annotated[UploadFile, File(description="The query image")], options: Options,
                       gateway: GatewayDep,
                       q: Annotated[str | None, Form(description="Optional words to combine with the image "
                                                                  "(minus terms subtract, as in GET /search)")] = None,
                       text_weight: Annotated[float, Form(ge=0, le=1, description="With `q`: the words' share of the "
                                                          "query, the image having the rest")] = 0.5,
                       ) -> SearchResponse:
    """Search by an example image; with `q`, by the image and the words together."""
    text = search.query_text(q) if q and q.strip() else None  # a form's empty text box means "no words"
    search.check_query_image_size(gateway, file.size)
    data = await file.read()
    return await search.search_image(gateway, data, file.filename or "query image", text, options, text_weight)


@router.get("/similar/{frame_id}", response_model=SearchResponse,
            responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}})
async def search_similar(frame_id: int, options: Options, gateway: GatewayDep) -> SearchResponse:
    """More like this: the frame's own stored vector as the query (the frame itself is left out)."""
    return await search.search_similar(gateway, frame_id, options)


@router.post("/compare", response_model=SearchCompareResponse)
async def compare_with_exact(request: SearchCompareRequest, gateway: GatewayDep) -> SearchCompareResponse:
    """Validation, not search: the index's graph answer for the words beside an exact scan of every vector,
    at each ef_search, with recall and the time of each inside the index (`mediasearch bench` uses it)."""
    return await search.compare_with_exact(gateway, request)
