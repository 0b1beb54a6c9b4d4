"""The vector that stands for each media item: a photo's frame vector, a video's pooled vector."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from shared import catalog
from shared.vectors import LazyReader, OnZero, VectorStore, unit

_readers: dict[Path, LazyReader] = {}


def reader(vectors_dir: Path) -> VectorStore:
    """The process's read-only view of the vectors store (FileNotFoundError until the first embedding)."""
    return _readers.setdefault(Path(vectors_dir), LazyReader(vectors_dir)).get()


def media_vectors(conn: sqlite3.Connection, store: VectorStore,
                  media_ids: list[int] | None = None) -> tuple[list[int], np.ndarray]:
    """``(media ids, unit vectors (n, dim))`` of the indexed media whose vector is committed."""
    rows = catalog.media_vector_rows(conn, media_ids)
    vectors, _ = store.view()
    ids = sorted(media_id for media_id, row in rows.items() if row < len(vectors))
    if not ids:
        return [], np.zeros((0, store.dim), dtype=np.float32)
    return ids, unit(vectors[[rows[media_id] for media_id in ids]], OnZero.KEEP)  # a zero row matches nothing


def media_vector(conn: sqlite3.Connection, store: VectorStore, media_id: int) -> np.ndarray | None:
    ids, matrix = media_vectors(conn, store, [media_id])
    return matrix[0] if ids else None
