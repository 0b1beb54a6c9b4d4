"""What a route asks FastAPI for: the app's Gateway (services/gateway/state.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.gateway.state import Gateway


def get_gateway(request: Request) -> Gateway:
    return request.app.state.gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
