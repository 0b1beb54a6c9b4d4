"""One index shard: follows the committed rows of the shared vectors store in our HNSW graph.

A shard owns the rows with ``row % shard_count == shard_id``. Its files, in its state dir:

``graph.hnsw`` + ``graph.hnsw.log``
    The HNSW snapshot and the append log of every insert and delete since (``services.index.hnsw``):
    after a crash the log is replayed, so nothing acknowledged is lost. The graph holds row ids only;
    vectors are read in place from the shared store.
``deleted.rows``
    Every row ever deleted (int64, appended and fsynced before the delete is acknowledged). The graph
    forgets a deleted row once its slot is purged, and a row that is in the store but not the graph
    is otherwise taken as not yet indexed; this file keeps it from coming back.

If the graph files are missing the shard rebuilds from the store; if they are corrupt it says so,
moves them aside and rebuilds.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import numpy as np

from services.index.hnsw import HNSWIndex, IndexFileError
from shared.errors import BadInput
from shared.vectors import LazyReader, OnZero, VectorStore, unit

log = logging.getLogger("mediasearch.index")

GRAPH_FILE = "graph.hnsw"
DELETED_FILE = "deleted.rows"
DELETED_RECORD_BYTES = 8  # one int64 row


def warm_up_kernels() -> None:
    """Compile the graph's kernels (or load them from numba's cache) before serving, so the first
    insert and search after a start do not wait for the compiler: for an index over its own vectors
    and for one over a read-only external matrix, as a shard's (the kernels are typed apart)."""
    vectors = np.eye(8, dtype=np.float32)
    own = HNSWIndex(8)
    own.add(vectors)
    external = vectors.copy()
    external.flags.writeable = False  # as the store's memory map
    shared = HNSWIndex(8, vectors=external)
    shared.add(ids=np.arange(8))
    for index in (own, shared):
        index.search(vectors[0], k=2)
        index.search(vectors[:2], k=2)
        index.search(vectors[0], k=2, filter=np.arange(4))


class Shard:
    def __init__(self, vectors_dir: Path, state_dir: Path, shard_id: int = 0, shard_count: int = 1,
                 m: int = 16, ef_construction: int = 200, ef_search: int = 64, insert_threads: int = 1):
        self.vectors_dir = vectors_dir
        self.state_dir = state_dir
        self.shard_id = shard_id
        self.shard_count = shard_count
        self.graph_params = {"m": m, "ef_construction": ef_construction, "ef_search": ef_search,
                             "insert_threads": insert_threads}
        self.reader = LazyReader(vectors_dir)
        self.store: VectorStore | None = None
        self.index: HNSWIndex | None = None
        self.indexed_through = 0  # every committed row below this has been considered
        self.deleted = self._read_deleted()
        self.changed_since_snapshot = False
        self._mutation = threading.Lock()  # catch-up and deletes; searches never wait on it

    def owns(self, row: int) -> bool:
        return row % self.shard_count == self.shard_id

    # -- following the store ---------------------------------------------------------------------
    def _open(self) -> bool:
        self.store = self.reader.get_or_none()
        if self.store is None:
            return False  # nothing embedded yet
        vectors, _ = self.store.view()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / GRAPH_FILE
        try:
            self.index = self._open_graph(path, vectors)
        except IndexFileError as exc:
            aside = f".corrupt-{int(time.time())}"
            log.error("index files unusable (%s); moved aside with suffix %s, rebuilding from the vectors store",
                      exc, aside)
            for damaged in (path, path.with_name(path.name + ".log")):
                if damaged.exists():
                    damaged.rename(damaged.with_name(damaged.name + aside))
            self.index = self._open_graph(path, vectors)
        log.info("shard %d/%d opened with %d nodes", self.shard_id, self.shard_count, len(self.index))
        return True

    def _open_graph(self, path: Path, vectors: np.ndarray) -> HNSWIndex:
        return HNSWIndex.open(path, dim=self.store.dim, vectors=vectors, id_stride=self.shard_count,
                              id_offset=self.shard_id, **self.graph_params)

    def catch_up(self) -> int:
        """Add committed rows not yet in the graph; returns how many were added to this shard."""
        with self._mutation:
            if self.index is None and not self._open():
                return 0
            vectors, _ = self.store.view()
            committed = len(vectors)
            if committed <= self.indexed_through:
                return 0
            self.index.attach_vectors(vectors)
            first = self.indexed_through + (-self.indexed_through - self.shard_id) % self.shard_count
            rows = np.arange(first, committed, self.shard_count, dtype=np.int64)
            if self.indexed_through == 0:
                rows = rows[~self.index.contains(rows)]  # after a restart most rows are already in
            if self.deleted:
                rows = rows[~np.isin(rows, np.fromiter(self.deleted, dtype=np.int64))]
            if len(rows):
                self.index.add(ids=rows)
                self.changed_since_snapshot = True
            self.indexed_through = committed
            return len(rows)

    # -- queries and deletes -----------------------------------------------------------------------
    def search(self, query: np.ndarray, k: int, ef: int | None = None,
               allow_rows: list[int] | None = None) -> tuple[list[int], list[float]]:
        index = self.index
        if index is None:
            return [], []
        query = np.asarray(query, dtype=np.float32)
        if query.shape != (index.dim,):
            raise ValueError(f"query has {query.size} dimensions, the index holds {index.dim}")
        query = unit(query, OnZero.RAISE)  # ZeroVector (a ValueError) for a query with no direction
        allowed = None
        if allow_rows is not None:
            allowed = np.asarray(allow_rows, dtype=np.int64)
            allowed = allowed[(allowed >= 0) & (allowed % self.shard_count == self.shard_id)]
            if not len(allowed):
                return [], []
        # one float32 vector and no filter: the index's single-query fast path
        rows, sims = index.search(query, k=k, ef=ef, filter=allowed)
        return rows.tolist(), sims.tolist()

    def exact_search(self, query: np.ndarray, k: int) -> tuple[list[int], list[float]]:
        """The true top k of the rows the graph holds, by a scan of the vectors store with no graph: the
        reference the graph is validated against (`mediasearch bench`), never the product's search."""
        if self.index is None or self.store is None:
            return [], []
        query = unit(np.asarray(query, dtype=np.float32), OnZero.RAISE)
        with self._mutation:  # a consistent view: catch-up and deletes change both
            through, deleted = self.indexed_through, np.fromiter(self.deleted, dtype=np.int64)
        vectors, _ = self.store.view()
        similarities = vectors[self.shard_id:through:self.shard_count] @ query  # a strided view, no copy
        rows = np.arange(self.shard_id, through, self.shard_count, dtype=np.int64)
        if len(deleted):
            similarities[np.isin(rows, deleted)] = -np.inf
        k = min(k, int(np.isfinite(similarities).sum()))
        if k == 0:
            return [], []
        top = np.argpartition(-similarities, k - 1)[:k]
        top = top[np.argsort(-similarities[top], kind="stable")]
        return [int(r) for r in rows[top]], [float(s) for s in similarities[top]]

    def committed(self) -> int:
        """Rows the vectors store has committed (0 while it does not exist)."""
        store = self.reader.get_or_none()
        return 0 if store is None else store.committed()

    def delete(self, rows: list[int]) -> int:
        """Delete rows for good. Only committed rows: a row at or past the store's committed count is
        refused (BadInput, nothing deleted), or a forged delete would hide photos not yet embedded."""
        wanted = {int(r) for r in rows if r >= 0}
        committed = self.committed()
        beyond = sorted(row for row in wanted if row >= committed)
        if beyond:
            shown = ", ".join(str(row) for row in beyond[:10]) + (" ..." if len(beyond) > 10 else "")
            raise BadInput(f"rows {shown} are not committed (the vectors store has {committed} rows); "
                           "nothing was deleted")
        owned = sorted({row for row in wanted if self.owns(row)} - self.deleted)
        if not owned:
            return 0
        with self._mutation:
            with open(self.state_dir / DELETED_FILE, "ab") as handle:
                handle.write(np.asarray(owned, dtype=np.int64).tobytes())
                handle.flush()
                os.fsync(handle.fileno())
            self.deleted.update(owned)
            if self.index is not None:
                self.index.delete(owned)
                self.changed_since_snapshot = True
        return len(owned)

    def _read_deleted(self) -> set[int]:
        """The rows deleted so far. A torn last write (a crash mid-append: never acknowledged) is cut off,
        so that the next append starts on a whole record instead of shifting every row after it."""
        path = self.state_dir / DELETED_FILE
        if not path.exists():
            return set()
        data = path.read_bytes()
        whole = len(data) - len(data) % DELETED_RECORD_BYTES
        if whole < len(data):
            log.warning("%s: cut off a torn last record (%d of %d bytes) left by a crash while it was written",
                        path, len(data) - whole, DELETED_RECORD_BYTES)
            with open(path, "r+b") as handle:
                handle.truncate(whole)
                os.fsync(handle.fileno())
        return set(np.frombuffer(data[:whole], dtype=np.int64).tolist())

    # -- persistence -------------------------------------------------------------------------------
    def snapshot(self) -> bool:
        """Write the graph's snapshot (and empty its log) if anything changed since the last one."""
        with self._mutation:
            if self.index is None or not self.changed_since_snapshot:
                return False
            self.index.save()
            self.changed_since_snapshot = False
            return True

    def close(self) -> None:
        self.snapshot()
        if self.index is not None:
            self.index.close()
        self.reader.close()

    def __len__(self) -> int:
        return 0 if self.index is None else len(self.index)
