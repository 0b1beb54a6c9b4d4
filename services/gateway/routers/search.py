from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, UploadFile

from services.gateway.search import MAX_EF, Filters, SearchOptions, combine, frame_vector, run_search
from services.gateway.state import GatewayDep
from services.gateway.timing import timed
from shared import catalog
from shared.schemas import ErrorBody, SearchResponse

router = APIRouter(prefix="/search", tags=["search"],
                   responses={422: {"model": ErrorBody}, 503: {"model": ErrorBody}})

MAX_QUERY_CHARS = 1000
MAX_QUERY_IMAGE_BYTES = 50 * 1024**2


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
    if k > gateway.settings.search_max_k:
        raise HTTPException(422, f"k must be between 1 and {gateway.settings.search_max_k}")
    if collection is not None and catalog.get_collection(gateway.catalog(), collection) is None:
        raise HTTPException(404, f"no collection with id {collection}")
    return SearchOptions(k=k, offset=offset, min_similarity=min_similarity, group_videos=group == "video",
                         filters=Filters(media_type, folder, _epoch(created_after), _epoch(created_before),
                                         collection), ef=ef)


Options = Annotated[SearchOptions, Depends(search_options)]


def _query_text(q: str | None) -> str | None:
    if q is None:
        return None
    text = q.strip()
    if not text:
        raise HTTPException(422, "the query q is empty: type what to look for")
    if len(text) > MAX_QUERY_CHARS:
        raise HTTPException(422, f"the query q is longer than {MAX_QUERY_CHARS} characters")
    return text


@router.get("", response_model=SearchResponse)
async def search_text(q: Annotated[str, Query(description="What to look for, in words")], options: Options,
                      gateway: GatewayDep) -> SearchResponse:
    """Text search over every indexed photo and video frame, best match first."""
    text = _query_text(q)
    with timed("embed"):
        vector = await gateway.embedder.embed_text(text)
    return await run_search(gateway, text, vector, options)


@router.post("/image", response_model=SearchResponse, responses={400: {"model": ErrorBody}, 413: {"model": ErrorBody}})
async def search_image(file: Annotated[UploadFile, File(description="The query image")], options: Options,
                       gateway: GatewayDep,
                       q: Annotated[str | None, Form(description="Optional words to combine with the image")] = None,
                       ) -> SearchResponse:
    """Search by an example image; with `q`, by the image and the words together."""
    text = _query_text(q) if q and q.strip() else None  # a form's empty text box means "no words"
    if file.size is not None and file.size > MAX_QUERY_IMAGE_BYTES:
        raise HTTPException(413, f"the query image is larger than {MAX_QUERY_IMAGE_BYTES} bytes")
    data = await file.read()
    if not data:
        raise HTTPException(400, "the query image is empty (0 bytes)")
    name = file.filename or "query image"
    with timed("embed"):
        vectors = [await gateway.embedder.embed_query_image(data, name)]
        if text is not None:
            vectors.append(await gateway.embedder.embed_text(text))
    label = f"image:{name}" + (f" + {text}" if text else "")
    return await run_search(gateway, label, combine(vectors), options)


@router.get("/similar/{frame_id}", response_model=SearchResponse,
            responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}})
async def search_similar(frame_id: int, options: Options, gateway: GatewayDep) -> SearchResponse:
    """More like this: the frame's own stored vector as the query (the frame itself is left out)."""
    vector = await anyio.to_thread.run_sync(frame_vector, gateway, frame_id)
    return await run_search(gateway, f"similar:{frame_id}", vector, options, exclude_frames=frozenset({frame_id}))
