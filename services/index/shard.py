"""One index shard: follows the committed rows of the shared vectors store and answers k-NN queries.

A shard owns the rows with ``row % shard_count == shard_id``. The search backend is our HNSW graph
(``services.index.hnsw``); the shard only decides which rows go in, when, and keeps it persisted.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from shared.vectors import VectorStore

log = logging.getLogger("mediasearch.index")


class ExactBackend:
    """Brute-force cosine search over the owned rows. The reference the HNSW graph is measured against."""

    def __init__(self, dim: int):
        self.dim = dim
        self.rows = np.empty(0, dtype=np.int64)
        self.vectors = np.empty((0, dim), dtype=np.float32)
        self.deleted: set[int] = set()

    def add(self, vectors: np.ndarray, rows: np.ndarray) -> None:
        self.rows = np.concatenate([self.rows, rows])
        self.vectors = np.concatenate([self.vectors, vectors])

    def delete(self, rows: list[int]) -> None:
        self.deleted.update(int(r) for r in rows)

    def __len__(self) -> int:
        return len(self.rows) - len(self.deleted.intersection(self.rows.tolist()))

    def search(self, query: np.ndarray, k: int, ef: int | None = None,
               allow: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        mask = np.ones(len(self.rows), dtype=bool)
        if self.deleted:
            mask &= ~np.isin(self.rows, np.fromiter(self.deleted, dtype=np.int64))
        if allow is not None:
            mask &= np.isin(self.rows, allow)
        candidates = np.flatnonzero(mask)
        scores = self.vectors[candidates] @ query
        top = np.argsort(-scores, kind="stable")[:k]
        return self.rows[candidates[top]], scores[top]


class Shard:
    def __init__(self, vectors_dir: Path, state_dir: Path, shard_id: int = 0, shard_count: int = 1):
        self.vectors_dir = vectors_dir
        self.state_dir = state_dir
        self.shard_id = shard_id
        self.shard_count = shard_count
        self.store: VectorStore | None = None
        self.backend: ExactBackend | None = None
        self.indexed_through = 0  # every committed row below this has been considered
        self.lock = threading.RLock()

    def owns(self, row: int) -> bool:
        return row % self.shard_count == self.shard_id

    def catch_up(self) -> int:
        """Add committed rows not yet indexed; returns how many were added to this shard."""
        if self.store is None:
            try:
                self.store = VectorStore(self.vectors_dir)
            except FileNotFoundError:
                return 0  # nothing embedded yet
            self.backend = ExactBackend(self.store.dim)
        vectors, _owners = self.store.view()
        committed = len(vectors)
        if committed <= self.indexed_through:
            return 0
        rows = np.arange(self.indexed_through, committed, dtype=np.int64)
        rows = rows[rows % self.shard_count == self.shard_id]
        with self.lock:
            if len(rows):
                self.backend.add(np.asarray(vectors[rows], dtype=np.float32), rows)
            self.indexed_through = committed
        return len(rows)

    def search(self, query: np.ndarray, k: int, ef: int | None = None,
               allow_rows: list[int] | None = None) -> tuple[list[int], list[float]]:
        if self.backend is None:
            return [], []
        query = np.asarray(query, dtype=np.float32)
        if query.shape != (self.backend.dim,):
            raise ValueError(f"query has {query.size} dimensions, the index holds {self.backend.dim}")
        norm = float(np.linalg.norm(query))
        if not np.isfinite(norm) or norm == 0:
            raise ValueError("query vector must be finite and non-zero")
        allow = None if allow_rows is None else np.asarray(
            [r for r in allow_rows if self.owns(r)], dtype=np.int64)
        with self.lock:
            rows, sims = self.backend.search(query / norm, k, ef, allow)
        return [int(r) for r in rows], [float(s) for s in sims]

    def delete(self, rows: list[int]) -> int:
        owned = [int(r) for r in rows if self.owns(int(r))]
        if self.backend is not None and owned:
            with self.lock:
                self.backend.delete(owned)
        return len(owned)

    def __len__(self) -> int:
        return 0 if self.backend is None else len(self.backend)
