"""Query parameters of the routes that list an album's or a collection's members page by page."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

Limit = Annotated[int, Query(ge=1, le=5000, description="Members per page")]
Offset = Annotated[int, Query(ge=0, description="Members to skip")]
