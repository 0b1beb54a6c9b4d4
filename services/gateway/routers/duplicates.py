"""Duplicate review (shared.organise.duplicates)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.gateway import organise
from services.gateway.routers.deps import GatewayDep
from shared.schemas import DuplicateReport, ErrorBody

router = APIRouter(tags=["duplicates"], responses={422: {"model": ErrorBody}})


@router.get("/duplicates", response_model=DuplicateReport)
def list_duplicates(gateway: GatewayDep, threshold: Annotated[float | None, Query(ge=0.8, le=1, description=(
        "Cosine at or above which two items are visual duplicates (default "
        "MEDIASEARCH_DUPLICATE_VISUAL_THRESHOLD)"))] = None) -> DuplicateReport:
    """Groups of exact (same file uploaded again), near (perceptual hash) and visual (embedding) duplicates,
    each with the copy to keep first and how every other member matches it."""
    return organise.duplicate_report(gateway, threshold)
