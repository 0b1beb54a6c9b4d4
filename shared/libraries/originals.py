"""A library media item's original (or a Live Photo's motion clip), for serving: one of its files, opened
beneath its library's folder (read-only; the gateway serves it with the same Range support as a stored file)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from shared.catalog import libraries as catalog_libraries
from shared.catalog.libraries import LibraryRow, LocationRow
from shared.errors import NotFound, Unavailable
from shared.libraries.scan import unavailable_reason
from shared.safe_open import OpenedFile, RefusedFile, open_beneath
from shared.settings import Settings


def open_original(conn: sqlite3.Connection, media_id: int, settings: Settings) -> OpenedFile:
    """The first of the media's files that opens. Unavailable (with the reason) when its libraries' folders
    are missing; NotFound when it has no file in a library, or its files are gone (the next scan says so)."""
    return _first_that_opens(catalog_libraries.original_locations(conn, media_id), settings,
                             f"the original of media {media_id}")


def open_motion_clip(conn: sqlite3.Connection, media_id: int, settings: Settings) -> OpenedFile:
    """A library Live Photo's motion clip, beside its photo (as open_original)."""
    return _first_that_opens(catalog_libraries.motion_clip_locations(conn, media_id), settings,
                             f"the motion clip of media {media_id}")


def _first_that_opens(candidates: list[tuple[LocationRow, LibraryRow]], settings: Settings, what: str) -> OpenedFile:
    unavailable = []
    for location, library in candidates:
        root = Path(library["path"])
        reason = unavailable_reason(root, settings)
        if reason is not None:
            unavailable.append(f"the library {library['name']!r} is unavailable: {reason}")
            continue
        try:
            return open_beneath(root / location["path"], [root])
        except RefusedFile:
            continue
    if unavailable:
        raise Unavailable("; ".join(unavailable))
    raise NotFound(f"{what} is not available: its file is gone from its library")
