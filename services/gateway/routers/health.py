from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from services.gateway import security
from services.gateway.health import gather_health
from services.gateway.routers.deps import GatewayDep
from shared.schemas import ErrorBody, Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
async def health(gateway: GatewayDep) -> Health:
    """Always 200 while the gateway runs; `status` is "degraded" when a dependency is down."""
    return await gather_health(gateway)


@router.post("/session", status_code=204, response_class=Response, responses={401: {"model": ErrorBody}},
             dependencies=[Depends(security.require_api_key)])
def start_session(request: Request) -> Response:
    """Exchange the X-API-Key header for a cookie that lets `<img>`/`<video>`/EventSource GETs through.

    Without a configured key this is a no-op (no cookie is needed).
    """
    response = Response(status_code=204)
    key = security.configured_key(request)
    if key is not None:
        response.set_cookie(security.SESSION_COOKIE, security.session_token(key), max_age=security.SESSION_MAX_AGE,
                            httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return response
