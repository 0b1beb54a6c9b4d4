"""Collections: named sets of media (shared.organise.views)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from services.gateway import auth
from services.gateway.routers.deps import GatewayDep
from services.gateway.routers.paging import Limit, Offset
from shared.organise import views
from shared.schemas import (
    CollectionChanged,
    CollectionCreate,
    CollectionDetail,
    CollectionList,
    CollectionRename,
    CollectionSummary,
    ErrorBody,
    MediaIds,
)

router = APIRouter(prefix="/collections", tags=["collections"],
                   responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}})


@router.get("", response_model=CollectionList)
def list_collections(gateway: GatewayDep) -> CollectionList:
    """Named sets of media, newest first; each uploaded folder is one."""
    return CollectionList(collections=views.list_collections(gateway.catalog()))


@router.post("", status_code=201, response_model=CollectionSummary)
def create_collection(body: CollectionCreate, gateway: GatewayDep) -> CollectionSummary:
    return views.create_collection(gateway.catalog(), body.name, body.media_ids)


@router.get("/{collection_id}", response_model=CollectionDetail)
def get_collection(collection_id: int, gateway: GatewayDep, limit: Limit = 500, offset: Offset = 0) -> CollectionDetail:
    """A collection and its media. Search inside it with `GET /search?q=...&collection={id}`."""
    return views.collection_detail(gateway.catalog(), collection_id, limit, offset)


@router.patch("/{collection_id}", response_model=CollectionSummary)
def rename_collection(collection_id: int, body: CollectionRename, gateway: GatewayDep) -> CollectionSummary:
    return views.rename_collection(gateway.catalog(), collection_id, body.name)


@router.delete("/{collection_id}", status_code=204, response_class=Response)
def delete_collection(collection_id: int, request: Request, gateway: GatewayDep) -> Response:
    """Forget the collection; its media stay in the library."""
    views.delete_collection(gateway.catalog(), collection_id)
    auth.record(request, "collection deleted", f"collection {collection_id}")
    return Response(status_code=204)


@router.post("/{collection_id}/media", response_model=CollectionChanged)
def add_collection_media(collection_id: int, body: MediaIds, gateway: GatewayDep) -> CollectionChanged:
    return views.change_collection(gateway.catalog(), collection_id, body.media_ids, True)


@router.delete("/{collection_id}/media", response_model=CollectionChanged)
def remove_collection_media(collection_id: int, body: MediaIds, gateway: GatewayDep) -> CollectionChanged:
    """Take media out of the collection (they stay in the library)."""
    return views.change_collection(gateway.catalog(), collection_id, body.media_ids, False)
