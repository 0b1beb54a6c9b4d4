"""Auto-albums (shared.organise: clustering, labels, views)."""

from __future__ import annotations

from fastapi import APIRouter

from services.gateway import organise
from services.gateway.routers.deps import GatewayDep
from services.gateway.routers.paging import Limit, Offset
from shared.organise import views
from shared.schemas import ClusterDetail, ClusterList, ClusterRename, ClusterSummary, ErrorBody

router = APIRouter(prefix="/clusters", tags=["clusters"],
                   responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}})


@router.get("", response_model=ClusterList)
def list_clusters(gateway: GatewayDep) -> ClusterList:
    """Auto-albums, largest first. When the library changed since they were last organised, this also
    queues a re-clustering (merging albums that drifted together, labelling new ones): `pending` says
    so, and asking again later shows the result."""
    return organise.albums(gateway)


@router.post("/recluster", status_code=202, response_model=ClusterList, responses={503: {"model": ErrorBody}})
def recluster_now(gateway: GatewayDep) -> ClusterList:
    """Queue a re-clustering and labelling now (it runs on an ingest worker)."""
    return organise.recluster_now(gateway)


@router.get("/{cluster_id}", response_model=ClusterDetail)
def get_cluster(cluster_id: int, gateway: GatewayDep, limit: Limit = 500, offset: Offset = 0) -> ClusterDetail:
    """An album and its members (most typical first), with thumbnails."""
    return views.cluster_detail(gateway.catalog(), cluster_id, limit, offset)


@router.patch("/{cluster_id}", response_model=ClusterSummary)
def rename_cluster(cluster_id: int, body: ClusterRename, gateway: GatewayDep) -> ClusterSummary:
    """Name an album; the name sticks (labelling never overwrites it). `null` or "" brings back the label."""
    return views.rename_cluster(gateway.catalog(), cluster_id, body.name)
