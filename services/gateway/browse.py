"""Browsing the library without a query (GET /media): newest (or oldest) first by when each item was taken
or added, a page at a time with an opaque cursor, with the filters search takes; and the capture details
of one item (GET /media/{id}).

Capture times read back as ISO 8601: with their UTC offset when the file gave one (or when the time is an
instant, such as a video's UTC creation time: +00:00), else as the local wall-clock time without offset
(see services/ingest_worker/metadata.py for what the catalog holds). ``created_at`` always means *added*.

The cursor is the last item's (sort key, id) in base64: keyset pagination (shared/catalog/timeline.py), so
a page never repeats or skips an item when others are added or deleted meanwhile.
"""

from __future__ import annotations

import base64
import binascii
import math
from datetime import UTC, datetime, timedelta, timezone

from services.gateway.search import Filters, check_filters
from services.gateway.state import Gateway
from shared import catalog
from shared.errors import InvalidParameter
from shared.schemas import (
    BrowseItem,
    BrowsePage,
    CameraCount,
    CameraList,
    GpsPoint,
    MonthCount,
    MonthList,
    frame_url,
    media_url,
    thumb_url,
)

BAD_CURSOR = "the cursor is not one this listing gave (pass next_cursor as it came, with the same sort)"


def taken_at_text(taken_at: float | None, offset: int | None) -> str | None:
    """ISO 8601: at its offset when known, else the wall clock (stored read as UTC) without offset."""
    if taken_at is None:
        return None
    if offset is None:
        return datetime.fromtimestamp(taken_at, UTC).replace(tzinfo=None).isoformat(timespec="seconds")
    return datetime.fromtimestamp(taken_at, timezone(timedelta(minutes=offset))).isoformat(timespec="seconds")


def capture_details(media: catalog.MediaRow) -> dict:
    """MediaInfo's fields on when, where and with what the item was taken."""
    has_gps = media["gps_lat"] is not None and media["gps_lon"] is not None
    return {"taken_at": taken_at_text(media["taken_at"], media["taken_offset"]),
            "taken_at_source": media["taken_at_source"], "camera": media["camera"], "lens": media["lens"],
            "gps": GpsPoint(lat=media["gps_lat"], lon=media["gps_lon"]) if has_gps else None}


def browse(gateway: Gateway, filters: Filters, sort: str = catalog.TimelineSort.TAKEN, descending: bool = True,
           limit: int = 100, cursor: str | None = None) -> BrowsePage:
    """A page of the library in ``sort`` order (``taken``: capture time, else when added; ``added``)."""
    filters = check_filters(gateway, filters)
    after = None if cursor is None else decode_cursor(cursor, sort)
    rows = catalog.timeline_page(gateway.catalog(), sort, descending, limit + 1, after, **filters.conditions())
    more = len(rows) > limit
    rows = rows[:limit]
    return BrowsePage(items=[_item(row) for row in rows],
                      next_cursor=encode_cursor(sort, rows[-1]["sort_key"], rows[-1]["id"]) if more else None)


def _item(row: catalog.TimelineRow) -> BrowseItem:
    frame = row["cover_frame"]
    return BrowseItem(
        id=row["id"], name=row["name"], kind=row["kind"], taken_at=taken_at_text(row["taken_at"], row["taken_offset"]),
        camera=row["camera"], created_at=row["created_at"], width=row["width"], height=row["height"],
        duration=row["duration"], frame_id=frame, thumb_url=thumb_url(frame) if frame is not None else None,
        frame_url=frame_url(frame) if frame is not None else None, media_url=media_url(row["id"], row["kind"]))


def encode_cursor(sort: str, key: float, media_id: int) -> str:
    return base64.urlsafe_b64encode(f"{sort}|{key!r}|{media_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[float, int]:
    """(sort key, id) from a cursor of this ``sort``; InvalidParameter for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        cursor_sort, key, media_id = text.split("|")
        position = float(key), int(media_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidParameter(BAD_CURSOR) from None
    if cursor_sort != sort or not math.isfinite(position[0]) or not 0 <= position[1] < 2**63:
        raise InvalidParameter(BAD_CURSOR)
    return position


def cameras(gateway: Gateway) -> CameraList:
    return CameraList(cameras=[CameraCount(**row) for row in catalog.cameras(gateway.catalog())])


def months(gateway: Gateway, filters: Filters) -> MonthList:
    filters = check_filters(gateway, filters)
    return MonthList(months=[MonthCount(**row) for row in catalog.months(gateway.catalog(), **filters.conditions())])
