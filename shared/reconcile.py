"""Repair what a crash leaves between the vectors store and the catalog.

The embedder commits a frame's vector (the row records the frame id as its owner) before the ingest
worker records the row in the catalog. A process killed between the two leaves a committed row that
no catalog entry points at:

- its frame (or video) still exists without a row: the row is adopted, so the frame is not embedded a
  second time (catalog ids are never reused, so the owner id cannot name another item).
- its owner no longer exists (the item was deleted; the index may have missed the delete while it was
  down): the row is tombstoned in every index shard, so it stops taking places in search results.

The ingest worker runs ``reconcile`` before it takes tasks, and adopts a media item's rows whenever it
resumes one (a redelivered task after a worker, embedder or index crash).
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shared import catalog
from shared.clients import IndexShards
from shared.settings import Settings
from shared.vectors import LazyReader, VectorStore, encode_video_owner, video_of_owner

log = logging.getLogger("mediasearch.reconcile")

TOMBSTONE_BATCH = 10_000  # rows per /delete request
INDEX_TIMEOUT_S = 10.0


@dataclass
class Reconciled:
    adopted_frames: int = 0
    adopted_videos: int = 0
    tombstoned: int = 0  # rows sent to every shard that answered
    index_errors: list[str] = field(default_factory=list)  # shards that could not be told (tried next start)


def _last_row_of(owners: np.ndarray, wanted: list[int]) -> dict[int, int]:
    """``{owner: row}`` for the wanted owners that own a committed row (the last, if several)."""
    if not wanted or not len(owners):
        return {}
    hits = np.flatnonzero(np.isin(owners, np.asarray(wanted, dtype=np.int64)))
    return {int(owners[row]): int(row) for row in hits}


def adopt_committed_rows(conn: sqlite3.Connection, vectors_dir: Path, media_id: int | None = None) -> tuple[int, int]:
    """Give frames and videos without a row (of one media item, or all) the committed row they own.
    Returns how many frames and videos were adopted."""
    frame_ids, video_ids = catalog.unembedded(conn, media_id)
    if not frame_ids and not video_ids:
        return 0, 0
    reader = LazyReader(vectors_dir)
    store = reader.get_or_none()
    if store is None:
        return 0, 0  # nothing embedded yet
    try:
        _, owners = store.view()
        frames = _last_row_of(owners, frame_ids)
        videos = _last_row_of(owners, [encode_video_owner(v) for v in video_ids])
    finally:
        reader.close()
    return catalog.adopt_rows(conn, frames, {video_of_owner(owner): row for owner, row in videos.items()})


def orphan_rows(conn: sqlite3.Connection, store: VectorStore) -> list[int]:
    """Committed rows whose owner is not in the catalog."""
    # The store first: a row committed by then was committed after its owner's catalog rows, so an owner
    # missing from the catalog read that follows is really gone, not yet to come.
    _, owners = store.view()
    owners = np.array(owners)
    frame_ids, media_ids = catalog.existing_ids(conn)
    frame_gone = (owners >= 0) & ~np.isin(owners, np.asarray(frame_ids, dtype=np.int64))
    video_gone = (owners < 0) & ~np.isin(video_of_owner(owners), np.asarray(media_ids, dtype=np.int64))
    return np.flatnonzero(frame_gone | video_gone).tolist()


def tombstone(rows: list[int], index_urls: list[str]) -> list[str]:
    """Delete ``rows`` from every shard (each keeps the ones it owns); returns ``"<url>: <reason>"`` for
    each shard that failed (tried again at the next start)."""
    shards = IndexShards(index_urls, timeout=INDEX_TIMEOUT_S)
    try:
        return shards.delete(rows, batch=TOMBSTONE_BATCH).failed()
    finally:
        shards.close()


def reconcile(settings: Settings) -> Reconciled:
    """Adopt every recoverable row, then tombstone the rows whose owner is gone."""
    reader = LazyReader(settings.vectors_dir)
    store = reader.get_or_none()
    if store is None:
        return Reconciled()  # nothing embedded yet
    conn = catalog.connect(settings.catalog_path)
    try:
        frames, videos = adopt_committed_rows(conn, settings.vectors_dir)
        orphans = orphan_rows(conn, store)
    finally:
        conn.close()
        reader.close()
    errors = tombstone(orphans, settings.index_urls) if orphans else []
    report = Reconciled(frames, videos, len(orphans), errors)
    if frames or videos or orphans:
        log.info("reconciled the vectors store with the catalog: adopted the committed rows of %d frames and "
                 "%d videos; %d rows without an owner tombstoned", frames, videos, len(orphans))
    for error in errors:
        log.warning("could not tombstone rows without an owner in index shard %s; retried at the next start", error)
    return report
