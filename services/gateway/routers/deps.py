"""What a route asks FastAPI for: the app's Gateway (services/gateway/state.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.gateway.state import Gateway


async def get_gateway(request: Request) -> Gateway:  # async: a sync dependency costs a worker thread hop
    return request.app.state.gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
