"""Forgetting media: catalog rows first (so they leave results at once), then their vector rows (frames and
pooled video vectors) in every index shard (tombstones), then their files in the data volume (frames,
thumbnails, an upload's copy). The gateway's DELETE /media runs the same steps from its event loop
(services/gateway/media.py); a library scan runs them here when a file's media lost its last original.
Never a user's file: only what the data volume holds.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from shared import catalog
from shared.clients import IndexShards
from shared.media_store import MediaStore

log = logging.getLogger("mediasearch.libraries")

TOMBSTONE_BATCH = 10_000  # rows per /delete request
INDEX_TIMEOUT_S = 30.0  # a shard's delete waits for the insert batch it is taking in


@dataclass(frozen=True)
class Forgotten:
    media: list[int]
    rows: int
    partial: bool  # a shard could not be told (the next worker start tombstones the rows there)


def remove_files(conn: sqlite3.Connection, store: MediaStore, deleted: list[catalog.DeletedMedia]) -> None:
    """Remove the files of deleted media, except those that belong to media of the same content ingested
    again since (names are content addressed): decided and done under the catalog's write lock, which the
    ingest worker holds while it checks that its staged files are there and records them (pipeline.py), so
    a re-upload of the same bytes racing a delete never loses its files."""
    with catalog.transaction(conn):
        again = catalog.stored_shas(conn, (media.sha256 for media in deleted))
        store.remove([path for media in deleted if media.sha256 not in again for path in media.paths])


def forget_media(conn: sqlite3.Connection, store: MediaStore, shards: IndexShards,
                 media_ids: Iterable[int]) -> Forgotten:
    """Take media out of the catalog, the index and the data volume (unknown ids are skipped)."""
    removed = [(media_id, deleted) for media_id in dict.fromkeys(media_ids)
               if (deleted := catalog.delete_media(conn, media_id)) is not None]
    rows = [row for _, deleted in removed for row in deleted.rows]
    partial = False
    if rows:
        told = shards.delete(rows, batch=TOMBSTONE_BATCH)
        partial = told.partial
        if partial:
            log.warning("could not tombstone %d rows in every index shard (%s); the next worker start does",
                        len(rows), "; ".join(told.failed()))
    remove_files(conn, store, [deleted for _, deleted in removed])
    return Forgotten([media_id for media_id, _ in removed], len(rows), partial)


def forget_everywhere(conn: sqlite3.Connection, store: MediaStore, index_urls: list[str], media_ids: Iterable[int],
                      secret: str | None = None) -> Forgotten:
    """forget_media over a connection of its own to the index shards (``secret``: the internal secret, when
    this process's own settings do not know it)."""
    shards = IndexShards(index_urls, timeout=INDEX_TIMEOUT_S, secret=secret)
    try:
        return forget_media(conn, store, shards, media_ids)
    finally:
        shards.close()
