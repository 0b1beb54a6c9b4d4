"""``GET /metrics``: Prometheus text of the whole product (services/gateway/metrics.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from services.gateway.metrics import scrape
from services.gateway.routers.deps import GatewayDep
from shared.metrics import CONTENT_TYPE

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text exposition format"}})
async def prometheus_metrics(request: Request, gateway: GatewayDep) -> Response:
    """The gateway's metrics with the embedder's and every index shard's, each series labelled with its
    `service` (and `shard`); `mediasearch_up` says which answered. Point Prometheus here (with the key)."""
    return Response(await scrape(gateway, request.app.state.metrics_registry), media_type=CONTENT_TYPE)
