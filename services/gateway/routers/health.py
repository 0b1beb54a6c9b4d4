from __future__ import annotations

from fastapi import APIRouter

from services.gateway.auth import OptionalPrincipalDep
from services.gateway.health import gather_health
from services.gateway.routers.deps import GatewayDep
from shared.schemas import Health, HealthBrief

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health | HealthBrief)
async def health(gateway: GatewayDep, principal: OptionalPrincipalDep) -> Health | HealthBrief:
    """Always 200 while the gateway runs. Signed in: every service's state, and `status` "degraded" when a
    dependency is down. Not signed in (a container healthcheck): `{"status": "ok"}`, nothing more."""
    if principal is None:
        return HealthBrief(status="ok")
    return await gather_health(gateway)
