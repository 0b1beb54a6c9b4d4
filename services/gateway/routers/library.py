"""Organising the library: duplicate review, auto-albums, collections, bulk delete.

Thin HTTP shell over shared.organise (plain functions over the catalog and the vectors store).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, HTTPException, Query, Response

from services.gateway import media
from services.gateway.state import Gateway, GatewayDep
from shared import catalog
from shared.errors import NotFound
from shared.organise import views as library
from shared.organise.clustering import recluster_due
from shared.organise.duplicates import find_duplicates
from shared.queue import RECLUSTER_TASK
from shared.schemas import (
    ClusterDetail,
    ClusterList,
    ClusterRename,
    ClusterSummary,
    CollectionChanged,
    CollectionCreate,
    CollectionDetail,
    CollectionList,
    CollectionRename,
    CollectionSummary,
    DuplicateReport,
    ErrorBody,
    MediaBulkDeleted,
    MediaIds,
)

log = logging.getLogger("mediasearch.gateway")
router = APIRouter(tags=["library"], responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}})

T = TypeVar("T")
Limit = Annotated[int, Query(ge=1, le=5000, description="Members per page")]
Offset = Annotated[int, Query(ge=0, description="Members to skip")]


def found(call: Callable[..., T], *args) -> T:
    try:
        return call(*args)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None


# -- duplicates -------------------------------------------------------------------------------------
@router.get("/duplicates", response_model=DuplicateReport)
def list_duplicates(gateway: GatewayDep, threshold: Annotated[float | None, Query(ge=0.8, le=1, description=(
        "Cosine at or above which two items are visual duplicates (default "
        "MEDIASEARCH_DUPLICATE_VISUAL_THRESHOLD)"))] = None) -> DuplicateReport:
    """Groups of exact (same file uploaded again), near (perceptual hash) and visual (embedding) duplicates,
    each with the copy to keep first and how every other member matches it."""
    settings = gateway.settings
    try:
        store = gateway.vectors()
    except FileNotFoundError:
        store = None  # nothing embedded yet: no visual duplicates
    return find_duplicates(gateway.catalog(), store,
                           settings.duplicate_visual_threshold if threshold is None else threshold,
                           settings.phash_max_distance)


@router.post("/media/delete", response_model=MediaBulkDeleted)
async def delete_media_items(body: MediaIds, gateway: GatewayDep) -> MediaBulkDeleted:
    """Remove several photos or videos: files, frames, vectors (tombstoned in every shard) and catalog rows.
    An unknown id fails the whole request with 404 before anything is deleted."""
    return await media.delete_media_items(gateway, body.media_ids)


# -- clusters (auto-albums) -------------------------------------------------------------------------
def queue_reclustering(gateway: Gateway) -> bool:
    try:
        gateway.celery.send_task(RECLUSTER_TASK)
    except Exception as exc:  # noqa: BLE001 (the broker is down: albums are shown as they are)
        log.warning("could not queue re-clustering: %s", exc)
        return False
    return True


@router.get("/clusters", response_model=ClusterList)
def list_clusters(gateway: GatewayDep) -> ClusterList:
    """Auto-albums, largest first. When the library changed since they were last organised, this also
    queues a re-clustering (merging albums that drifted together, labelling new ones): `pending` says
    so, and asking again later shows the result."""
    conn = gateway.catalog()
    pending = catalog.clusters_need_work(conn)
    if pending and recluster_due(conn, gateway.settings):
        queue_reclustering(gateway)
    return ClusterList(clusters=library.list_clusters(conn), pending=pending)


@router.post("/clusters/recluster", status_code=202, response_model=ClusterList,
             responses={503: {"model": ErrorBody}})
def recluster_now(gateway: GatewayDep) -> ClusterList:
    """Queue a re-clustering and labelling now (it runs on an ingest worker)."""
    if not queue_reclustering(gateway):
        raise HTTPException(503, "the task queue (Redis) is unavailable; try again later")
    conn = gateway.catalog()
    return ClusterList(clusters=library.list_clusters(conn), pending=True)


@router.get("/clusters/{cluster_id}", response_model=ClusterDetail)
def get_cluster(cluster_id: int, gateway: GatewayDep, limit: Limit = 500,
                offset: Offset = 0) -> ClusterDetail:
    """An album and its members (most typical first), with thumbnails."""
    return found(library.cluster_detail, gateway.catalog(), cluster_id, limit, offset)


@router.patch("/clusters/{cluster_id}", response_model=ClusterSummary)
def rename_cluster(cluster_id: int, body: ClusterRename, gateway: GatewayDep) -> ClusterSummary:
    """Name an album; the name sticks (labelling never overwrites it). `null` or "" brings back the label."""
    return found(library.rename_cluster, gateway.catalog(), cluster_id, body.name)


# -- collections ------------------------------------------------------------------------------------
@router.get("/collections", response_model=CollectionList)
def list_collections(gateway: GatewayDep) -> CollectionList:
    """Named sets of media, newest first; each uploaded folder is one."""
    return CollectionList(collections=library.list_collections(gateway.catalog()))


@router.post("/collections", status_code=201, response_model=CollectionSummary)
def create_collection(body: CollectionCreate, gateway: GatewayDep) -> CollectionSummary:
    return found(library.create_collection, gateway.catalog(), body.name, body.media_ids)


@router.get("/collections/{collection_id}", response_model=CollectionDetail)
def get_collection(collection_id: int, gateway: GatewayDep, limit: Limit = 500,
                   offset: Offset = 0) -> CollectionDetail:
    """A collection and its media. Search inside it with `GET /search?q=...&collection={id}`."""
    return found(library.collection_detail, gateway.catalog(), collection_id, limit, offset)


@router.patch("/collections/{collection_id}", response_model=CollectionSummary)
def rename_collection(collection_id: int, body: CollectionRename,
                      gateway: GatewayDep) -> CollectionSummary:
    return found(library.rename_collection, gateway.catalog(), collection_id, body.name)


@router.delete("/collections/{collection_id}", status_code=204, response_class=Response)
def delete_collection(collection_id: int, gateway: GatewayDep) -> Response:
    """Forget the collection; its media stay in the library."""
    found(library.delete_collection, gateway.catalog(), collection_id)
    return Response(status_code=204)


@router.post("/collections/{collection_id}/media", response_model=CollectionChanged)
def add_collection_media(collection_id: int, body: MediaIds,
                         gateway: GatewayDep) -> CollectionChanged:
    return found(library.change_collection, gateway.catalog(), collection_id, body.media_ids, True)


@router.delete("/collections/{collection_id}/media", response_model=CollectionChanged)
def remove_collection_media(collection_id: int, body: MediaIds,
                            gateway: GatewayDep) -> CollectionChanged:
    """Take media out of the collection (they stay in the library)."""
    return found(library.change_collection, gateway.catalog(), collection_id, body.media_ids, False)
