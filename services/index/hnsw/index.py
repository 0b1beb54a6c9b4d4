"""``HNSWIndex``: approximate k-NN by cosine similarity over L2-normalised float32 vectors.

Ids and vectors
    A node id is a row number. An index holds the ids ``id_offset + k * id_stride`` (k >= 0), so a
    shard that owns ``row % shard_count == shard_id`` uses ``id_stride=shard_count,
    id_offset=shard_id`` and its graph costs memory for its own rows only. With ``vectors=`` (a 2-D,
    C-contiguous float32 array or memmap, e.g. the shared vectors store) the index never copies
    vectors: ``add(ids=rows)`` reads row ``id`` of that matrix, ``attach_vectors`` swaps in a longer
    one as rows get committed, and snapshots hold the graph only. Without it the index keeps its own
    growable float32 copy (standalone use, tests, benchmarks) and persists it.

Persistence (formats in ``persistence.py``)
    ``save(path)`` writes an atomic, checksummed snapshot; ``HNSWIndex.load(path)`` reads it and
    replays ``path + ".log"`` if present. ``HNSWIndex.open(path, dim=...)`` is the durable mode: it
    loads (or creates) the index and attaches that log, so every ``add``/``delete`` is appended and
    fsynced before it returns, and ``save()`` with no argument then snapshots to ``path`` and empties
    the log. A crash therefore loses nothing acknowledged; a torn last log record is ignored.

Deletes
    ``delete`` sets tombstones: tombstoned nodes are still walked through but never returned. When
    tombstones pass ``PURGE_SHARE`` of the graph (or on ``purge_deleted()``) every list that points at
    one is rebuilt from the live neighbours and the neighbours of the deleted ones, and the deleted
    slots leave the graph (their upper-layer rows are reclaimed; re-adding the id inserts it anew).

Searching
    A search descends the upper layers greedily and walks layer 0 with a beam of ``ef``. With
    ``quantized=True`` (the default) the walk measures distances on 8-bit codes of the vectors
    (``dim`` bytes and a scale per vector, kept beside the graph, made from the vectors on insert and
    on load, never persisted: a quarter of the memory to read per node visited) and the ``ef`` nodes
    it keeps are then ranked by their exact float32 similarity, which is what is returned. One query
    per call (the service's path) takes a fast path: no per-call allocation but the results, one
    compiled call with everything in a pooled ``kernels.Searcher`` (one per concurrent search), the
    read lock's fast path. It returns exactly what the same row of a batched call returns.

Inserts
    An insert walks like a search (on the codes when quantized, its finds ranked exactly before any
    link is made). With ``insert_threads`` > 1 a large ``add`` is split over that many threads,
    which link under per-node spin locks as hnswlib's do; searches wait between chunks.

Filters
    ``search(..., filter=ids)`` takes an allow-list of ids, or a boolean array indexed by id. When the
    allowed live set is small relative to the graph the query is answered by an exact scan over it;
    otherwise the graph search keeps walking until it has ``ef`` allowed results, and any row that
    still has fewer than ``min(k, allowed)`` falls back to the exact scan.

Thread safety
    Every method may be called from any thread. Searches run concurrently with each other (the
    compiled kernels release the GIL) and take a shared lock; graph changes take it exclusively,
    ``INSERT_CHUNK`` inserted nodes at a time, so a search waits at most one chunk and never sees a
    half-linked node. ``add``, ``delete``, ``purge_deleted``, ``save`` and ``attach_vectors`` are
    serialised with each other; ``save`` does not block searches.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Self

import numpy as np

from . import _kernels as kernels
from .locking import ReadWriteLock
from .persistence import (
    RECORD_ADD,
    RECORD_DELETE,
    IndexFileError,
    IndexParams,
    Snapshot,
    WriteAheadLog,
    read_log,
    read_snapshot,
    write_snapshot,
)

DEFAULT_EF_SEARCH = 64
INSERT_CHUNK = 64  # nodes per thread per write turn: a search waits at most one chunk
PARALLEL_INSERT_MIN = 4 * INSERT_CHUNK  # smaller adds run on the calling thread alone
REPAIR_CHUNK = 4096
PURGE_SHARE = 0.1
MAX_LEVEL = 30
# Exact scan when allowed**2 <= FILTER_EXACT_COST * ef * live: a filtered graph walk visits about
# (visits per unfiltered query) / (allowed share) nodes at random, an exact scan reads `allowed` rows in order.
FILTER_EXACT_COST = 30
_NO_FILTER = np.zeros(0, dtype=np.uint8)  # an empty allow-mask: the kernels filter nothing
_FLOAT32 = np.dtype(np.float32)  # numpy's one native float32 dtype: `is` tells it apart from others
_INT64 = np.dtype(np.int64)
_empty = np.empty  # a dtype instance and no keyword: the cheapest call (it is made twice per query)
_SCRATCH_VISITED = kernels.Scratch._fields.index("visited")  # its length is the slots covered


def log_path_for(path: Path) -> Path:
    return Path(f"{path}.log")


def _splitmix64(values: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = values + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _compact_upper(levels: np.ndarray, upper_start: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Upper-layer rows of the nodes in the graph only, packed in slot order, and their new starts."""
    nodes = np.flatnonzero(levels > 0)
    counts = levels[nodes].astype(np.int64)
    new_starts = np.cumsum(counts) - counts
    within = np.arange(int(counts.sum())) - np.repeat(new_starts, counts)
    packed = upper[np.repeat(upper_start[nodes].astype(np.int64), counts) + within]
    starts = np.zeros(len(levels), dtype=np.int32)
    starts[nodes] = new_starts
    return packed, starts


class HNSWIndex:
    def __init__(self, dim: int, m: int = 16, ef_construction: int = 200, seed: int = 0, *,
                 vectors: np.ndarray | None = None, id_stride: int = 1, id_offset: int = 0,
                 ef_search: int = DEFAULT_EF_SEARCH, quantized: bool = True, insert_threads: int = 1):
        if dim < 1 or m < 2 or ef_construction < 1 or ef_search < 1:
            raise ValueError("dim >= 1, m >= 2, ef_construction >= 1 and ef_search >= 1 are required")
        if id_stride < 1 or id_offset < 0:
            raise ValueError("id_stride must be >= 1 and id_offset >= 0")
        self.dim = dim
        self.m = m
        self.ef_construction = ef_construction
        self.seed = seed
        self.ef_search = ef_search
        self.id_stride = id_stride
        self.id_offset = id_offset
        self._level_scale = 1.0 / math.log(m)
        self._seed_hash = _splitmix64(np.array([seed % 2**64], dtype=np.uint64))[0]
        self._own_vectors = vectors is None
        self.quantized = bool(quantized)
        if insert_threads < 1:
            raise ValueError("insert_threads must be >= 1")
        self.insert_threads = insert_threads
        self._insert_pool: ThreadPoolExecutor | None = None
        self._query_shape = (dim,)
        # the kernels' argument groups, (re)bound only by _bind; own storage is indexed by slot
        self._source = kernels.VectorSource(
            vectors=np.empty((0, dim), dtype=np.float32) if vectors is None else self._checked(vectors),
            row_stride=1 if vectors is None else id_stride, row_offset=0 if vectors is None else id_offset)
        self._graph = kernels.Graph(
            links0=np.zeros((0, 2 * m + 1), dtype=np.int32), upper=np.zeros((0, m + 1), dtype=np.int32),
            upper_start=np.zeros(0, dtype=np.int32), levels=np.full(0, -1, dtype=np.int8),
            deleted=np.zeros(0, dtype=np.uint8),
            state=np.array([-1, -1, 0], dtype=np.int64))  # entry point, its level, tombstones
        # by slot, grown with the graph when quantized (else empty: never read)
        self._codes = kernels.Codes(codes=np.zeros((0, dim), dtype=np.int8), scales=np.zeros(0, dtype=np.float32))
        self._locks = kernels.Locks(nodes=np.zeros(0, dtype=np.uint8), entry=np.zeros(1, dtype=np.uint8))
        self._locks_args = tuple(self._locks)
        self._searchers: list[tuple] = []  # (kernels.Searcher, its single-query entry), replaced by _bind
        self._bind()
        self._slots = 0  # one past the highest slot ever added
        self._upper_rows = 0
        self._n_in_graph = 0
        self._rw = ReadWriteLock()
        self._mutation = threading.Lock()
        self._scratch_pool: list[tuple[np.ndarray, ...]] = []  # kernels.Scratch, as plain tuples
        self._scratch_pool_lock = threading.Lock()
        self._log: WriteAheadLog | None = None
        self._log_seq = 0
        self._snapshot_path: Path | None = None

    # -- public API ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n_in_graph - self._n_tombstones

    @property
    def _n_tombstones(self) -> int:
        return int(self._graph.state[2])

    def add(self, vectors: np.ndarray | None = None, ids: np.ndarray | None = None) -> np.ndarray:
        """Insert vectors (own storage) or rows of the attached matrix (``ids`` only); returns the ids.
        Ids must not be live already; a deleted id may be added again."""
        with self._mutation:
            return self._add_locked(vectors, ids)

    def delete(self, ids) -> int:
        """Tombstone the given ids; ids that are not live are ignored. Returns how many were deleted."""
        with self._mutation:
            return self._delete_locked(np.asarray(ids, dtype=np.int64).ravel())

    def purge_deleted(self) -> None:
        """Drop all tombstoned nodes from the graph now, rebuilding the lists that pointed at them."""
        with self._mutation:
            self._purge_locked()

    def contains(self, ids) -> np.ndarray:
        """For each id, whether it is live in the index."""
        with self._rw.read():
            return self._live(np.asarray(ids, dtype=np.int64))

    def search(self, query: np.ndarray, k: int = 10, ef: int | None = None,
               filter=None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest live ids by cosine similarity (descending) and their similarities.

        ``query`` is one vector (returns 1-D arrays holding only the results found) or a 2-D batch
        whose rows are answered independently (returns ``(n, k)`` arrays padded with -1 / -inf).
        ``ef`` (default ``self.ef_search``, at least k) trades speed for recall. ``filter``: None,
        an allow-list of ids, or a boolean array indexed by id."""
        if (filter is None and type(query) is np.ndarray and query.dtype is _FLOAT32
                and query.shape == self._query_shape and type(k) is int and (ef is None or type(ef) is int)):
            # the single-query fast path: the checks above are those the compiled entry relies on (a
            # float32 array misaligned in memory, which numba would type apart, reads the same with the
            # scalar loads of the copy that the kernel makes of it first)
            if k < 1:
                raise ValueError("k must be >= 1")
            ids = _empty(k, _INT64)
            similarities = _empty(k, _FLOAT32)
            rw = self._rw
            fast = rw.acquire_read()
            try:
                # every searcher in the pool is over the arrays bound now: _bind (under the write
                # lock) replaces the pool, and one taken before goes back to the old pool
                searchers = self._searchers
                searcher = searchers.pop() if searchers else self._new_searcher()
                found = searcher[1](searcher[0], query, k, self.ef_search if ef is None else ef, ids, similarities)
            finally:
                rw.release_read(fast)
            searchers.append(searcher)
            if found < k:
                return ids[:found], similarities[:found]
            return ids, similarities
        queries = np.asarray(query, dtype=np.float32)
        single = queries.ndim == 1
        queries = np.ascontiguousarray(queries.reshape(1, -1) if single else queries)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"query has shape {np.shape(query)}; this index holds {self.dim}-d vectors")
        if k < 1:
            raise ValueError("k must be >= 1")
        ef = max(int(self.ef_search if ef is None else ef), k)
        out_slots = np.empty((len(queries), k), dtype=np.int32)
        out_similarities = np.empty((len(queries), k), dtype=np.float32)
        with self._rw.read():
            if filter is None:
                self._search_graph(queries, ef, _NO_FILTER, out_slots, out_similarities)
            else:
                self._search_filtered(queries, ef, filter, out_slots, out_similarities)
        ids = np.where(out_slots >= 0, out_slots.astype(np.int64) * self.id_stride + self.id_offset, -1)
        if single:
            found = ids[0] >= 0
            return ids[0][found], out_similarities[0][found]
        return ids, out_similarities

    def attach_vectors(self, vectors: np.ndarray) -> None:
        """Read vectors from this matrix from now on (e.g. a longer view of the shared store)."""
        if self._own_vectors:
            raise ValueError("this index stores its own vectors; it has no external matrix to replace")
        vectors = self._checked(vectors)
        with self._mutation:
            if self._slots and len(vectors) <= self._row_of(self._slots - 1):
                raise ValueError(f"the new matrix has {len(vectors)} rows; the index already holds row "
                                 f"{self._row_of(self._slots - 1)}")
            with self._rw.write():
                self._bind(vectors=vectors)

    @property
    def graph_nbytes(self) -> int:
        """Bytes of the graph structure for the slots in use (vectors excluded)."""
        slots, graph = self._slots, self._graph
        return int(graph.links0[:slots].nbytes + graph.upper[: self._upper_rows].nbytes
                   + graph.upper_start[:slots].nbytes + graph.levels[:slots].nbytes
                   + graph.deleted[:slots].nbytes)

    @property
    def codes_nbytes(self) -> int:
        """Bytes of the 8-bit codes and their scales for the slots in use (0 unless quantized)."""
        if not self.quantized:
            return 0
        return int(self._codes.codes[: self._slots].nbytes + self._codes.scales[: self._slots].nbytes)

    @property
    def vectors_nbytes(self) -> int:
        """Bytes of the float32 vectors of the slots in use, whether the index owns them or reads them
        from an external matrix."""
        return self._slots * self.dim * 4

    # -- persistence -----------------------------------------------------------------------------
    def save(self, path: str | Path | None = None) -> None:
        """Write a snapshot atomically. With the path given to ``open`` (or none), also empty the log."""
        if path is None:
            if self._snapshot_path is None:
                raise ValueError("no path: give one, or use HNSWIndex.open(path) first")
            path = self._snapshot_path
        path = Path(path)
        with self._mutation:
            slots, graph = self._slots, self._graph
            levels = graph.levels[:slots]
            upper, upper_start = _compact_upper(levels, graph.upper_start[:slots], graph.upper)
            snapshot = Snapshot(self._params(), int(graph.state[0]), int(graph.state[1]), self._log_seq,
                                levels, graph.deleted[:slots], upper_start, graph.links0[:slots], upper,
                                self._source.vectors[:slots] if self._own_vectors else None)
            write_snapshot(path, snapshot.params, snapshot)
            if self._log is not None and path.resolve() == self._snapshot_path.resolve():
                self._log.reset()

    @classmethod
    def load(cls, path: str | Path, vectors: np.ndarray | None = None, *, quantized: bool = True) -> HNSWIndex:
        """Read the snapshot at ``path`` and replay ``path + ".log"`` (either may be missing, not both).
        ``vectors`` is required exactly when the index was built over an external matrix."""
        index, _ = cls._recover(Path(path), vectors, quantized)
        return index

    @classmethod
    def open(cls, path: str | Path, dim: int | None = None, m: int = 16, ef_construction: int = 200,
             seed: int = 0, *, vectors: np.ndarray | None = None, id_stride: int = 1, id_offset: int = 0,
             ef_search: int = DEFAULT_EF_SEARCH, fsync: bool = True, quantized: bool = True,
             insert_threads: int = 1) -> HNSWIndex:
        """Durable mode: load the index at ``path`` (snapshot and log) or create it, then log every
        change to ``path + ".log"`` before acknowledging it. The other arguments only shape a new
        index (but ``insert_threads``); ``dim``, if given for an existing one, must match."""
        if insert_threads < 1:
            raise ValueError("insert_threads must be >= 1")
        path = Path(path)
        log_path = log_path_for(path)
        if path.exists() or log_path.exists():
            index, log_length = cls._recover(path, vectors, quantized)
            if dim is not None and dim != index.dim:
                raise ValueError(f"{path} holds {index.dim}-d vectors, not {dim}-d")
            if log_length is None:
                index._log = WriteAheadLog.create(log_path, index._params(), fsync)
            else:
                index._log = WriteAheadLog.reopen(log_path, index._params(), log_length, fsync)
        else:
            if dim is None:
                raise ValueError(f"{path} does not exist: give dim to create a new index")
            index = cls(dim, m, ef_construction, seed, vectors=vectors, id_stride=id_stride,
                        id_offset=id_offset, ef_search=ef_search, quantized=quantized)
            index._log = WriteAheadLog.create(log_path, index._params(), fsync)
        index._snapshot_path = path
        index.insert_threads = insert_threads
        return index

    def close(self) -> None:
        """Stop logging (the index stays usable in memory)."""
        with self._mutation:
            if self._log is not None:
                self._log.close()
                self._log = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @classmethod
    def _recover(cls, path: Path, vectors: np.ndarray | None,
                 quantized: bool) -> tuple[HNSWIndex, int | None]:
        log_path = log_path_for(path)
        snapshot = read_snapshot(path) if path.exists() else None
        log = read_log(log_path) if log_path.exists() else None
        if snapshot is None and log is None:
            raise FileNotFoundError(f"{path}: no index snapshot and no log {log_path.name}")
        params = snapshot.params if snapshot is not None else log[0]
        if log is not None and log[0] != params:
            raise IndexFileError(f"{log_path}: belongs to another index (its parameters differ from {path})")
        if params.own_vectors and vectors is not None:
            raise ValueError(f"{path}: this index stores its own vectors; do not pass vectors=")
        if not params.own_vectors and vectors is None:
            raise ValueError(f"{path}: this index reads an external vectors matrix; pass vectors=")
        index = cls(params.dim, params.m, params.ef_construction, params.seed, vectors=vectors,
                    id_stride=params.id_stride, id_offset=params.id_offset, ef_search=params.ef_search,
                    quantized=quantized)
        if snapshot is not None:
            index._restore(snapshot)
        if log is None:
            return index, None
        _, records, log_length = log
        for record in records:
            if record.seq <= index._log_seq:
                continue  # already in the snapshot
            try:
                if record.kind == RECORD_ADD:
                    index._add_locked(record.vectors, record.ids)
                else:
                    index._delete_locked(record.ids)
            except ValueError as exc:
                raise IndexFileError(f"{log_path}: record {record.seq} cannot be replayed: {exc}") from exc
            index._log_seq = record.seq
        return index, log_length

    def _restore(self, snapshot: Snapshot) -> None:
        slots = len(snapshot.levels)
        self._bind(levels=snapshot.levels, deleted=snapshot.deleted, upper_start=snapshot.upper_start,
                   links0=snapshot.links0, upper=snapshot.upper)
        self._locks = self._locks._replace(nodes=np.zeros(slots, dtype=np.uint8))
        self._locks_args = tuple(self._locks)
        self._upper_rows = len(snapshot.upper)
        self._graph.state[:] = (snapshot.entry, snapshot.max_level, np.count_nonzero(snapshot.deleted))
        self._slots = slots
        self._n_in_graph = int(np.count_nonzero(snapshot.levels >= 0))
        self._log_seq = snapshot.last_log_seq
        if self._own_vectors:
            self._bind(vectors=snapshot.vectors)
        elif slots and len(self._source.vectors) <= self._row_of(slots - 1):
            raise ValueError(f"the vectors matrix has {len(self._source.vectors)} rows; the index holds row "
                             f"{self._row_of(slots - 1)}")
        if self.quantized:
            self._bind(codes=np.zeros((slots, self.dim), dtype=np.int8), scales=np.zeros(slots, dtype=np.float32))
            kernels.encode(self._source_args, self._codes_args, np.flatnonzero(snapshot.levels >= 0).astype(np.int32))

    def _params(self) -> IndexParams:
        return IndexParams(self.dim, self.m, self.ef_construction, self.ef_search, self.seed,
                           self._own_vectors, self.id_stride, self.id_offset)

    # -- mutations (caller holds self._mutation) -------------------------------------------------
    def _add_locked(self, vectors: np.ndarray | None, ids) -> np.ndarray:
        if self._own_vectors:
            if vectors is None:
                raise ValueError("this index stores its own vectors: pass vectors")
            vectors = np.asarray(vectors, dtype=np.float32)
            vectors = np.ascontiguousarray(vectors.reshape(1, -1) if vectors.ndim == 1 else vectors)
            if vectors.ndim != 2 or vectors.shape[1] != self.dim:
                raise ValueError(f"expected ({self.dim},) or (n, {self.dim}) vectors, got {vectors.shape}")
            if not np.isfinite(vectors).all():
                raise ValueError("vectors must be finite")
            if ids is None:
                ids = self._id_of(self._slots + np.arange(len(vectors), dtype=np.int64))
        elif vectors is not None:
            raise ValueError("this index reads vectors from its attached matrix: pass ids only")
        elif ids is None:
            raise ValueError("this index reads vectors from its attached matrix: pass ids (rows)")
        ids = np.atleast_1d(np.asarray(ids, dtype=np.int64))
        if ids.ndim != 1 or (vectors is not None and len(ids) != len(vectors)):
            raise ValueError("ids must be 1-D and match the vectors one to one")
        if len(ids) == 0:
            return ids
        slots, valid = self._slots_of(ids)
        if not valid.all():
            raise ValueError(f"id {ids[~valid][0]} is not of the form {self.id_offset} + k * {self.id_stride}")
        if len(np.unique(slots)) != len(slots):
            raise ValueError("ids repeat within the batch")
        if slots.max() >= np.iinfo(np.int32).max:
            raise ValueError("id too large")
        present = self._live(ids)
        if present.any():
            raise ValueError(f"id {ids[present][0]} is already in the index (delete it first)")
        if not self._own_vectors and self._row_of(int(slots.max())) >= len(self._source.vectors):
            raise ValueError(f"row {self._row_of(int(slots.max()))} is beyond the attached vectors "
                             f"({len(self._source.vectors)} rows): attach a longer matrix first")
        known = slots < self._slots
        if known.any() and self._graph.deleted[slots[known]].any():
            self._purge_locked()  # re-added ids must leave the graph before they come back
        if self._log is not None:
            self._log_seq += 1
            self._log.append(RECORD_ADD, self._log_seq, ids, vectors if self._own_vectors else None)
        self._insert(slots.astype(np.int32), vectors)
        return ids

    def _insert(self, slots: np.ndarray, vectors: np.ndarray | None) -> None:
        levels = self._draw_levels(self._id_of(slots.astype(np.int64)))
        with self._rw.write():
            self._reserve_slots(int(slots.max()) + 1)
            if self._own_vectors:
                self._source.vectors[slots] = vectors
            if self.quantized:
                kernels.encode(self._source_args, self._codes_args, slots)
            first_rows = self._upper_rows + np.cumsum(levels) - levels
            self._reserve_upper_rows(self._upper_rows + int(levels.sum()))
            self._graph.upper_start[slots] = first_rows
            self._upper_rows += int(levels.sum())
            self._slots = max(self._slots, int(slots.max()) + 1)
        threads = self.insert_threads if len(slots) >= PARALLEL_INSERT_MIN else 1
        scratches = [self._take_scratch() for _ in range(threads)]
        try:
            step = INSERT_CHUNK * threads
            for first in range(0, len(slots), step):
                chunk = slice(first, first + step)
                with self._rw.write():
                    self._insert_chunk(slots[chunk], levels[chunk], scratches)
                    self._n_in_graph += len(slots[chunk])
        finally:
            for scratch in scratches:
                self._give_back_scratch(scratch)

    def _insert_chunk(self, slots: np.ndarray, levels: np.ndarray, scratches: list) -> None:
        """Insert one chunk (caller holds the write lock): on this thread, or split over
        ``len(scratches)`` threads, this one included, which link under the kernels' locks."""
        arguments = (self._source_args, self._graph_args, self._codes_args, self._locks_args)
        options = (self.ef_construction, self.quantized)  # inserts walk on the codes too, then rank exactly
        if len(scratches) == 1 or len(slots) < 2:
            kernels.insert_batch(*arguments, scratches[0], slots, levels, *options)
            return
        if self._insert_pool is None:
            self._insert_pool = ThreadPoolExecutor(self.insert_threads - 1, thread_name_prefix="hnsw-insert")
        parts = [(np.ascontiguousarray(slots[t::len(scratches)]), np.ascontiguousarray(levels[t::len(scratches)]))
                 for t in range(len(scratches))]
        others = [self._insert_pool.submit(kernels.insert_batch, *arguments, scratch, nodes, node_levels, *options)
                  for scratch, (nodes, node_levels) in zip(scratches[1:], parts[1:])]
        try:
            kernels.insert_batch(*arguments, scratches[0], *parts[0], *options)
        finally:
            wait(others)  # never leave the write lock while another thread still links
        for other in others:
            other.result()

    def _delete_locked(self, ids: np.ndarray) -> int:
        ids = np.unique(ids)
        live = self._live(ids)
        if not live.any():
            return 0
        ids = ids[live]
        if self._log is not None:
            self._log_seq += 1
            self._log.append(RECORD_DELETE, self._log_seq, ids)
        slots, _ = self._slots_of(ids)
        with self._rw.write():
            self._graph.deleted[slots] = 1
            self._graph.state[2] += len(slots)
        if self._n_tombstones > PURGE_SHARE * self._n_in_graph:
            self._purge_locked()
        return len(ids)

    def _purge_locked(self) -> None:
        if self._n_tombstones == 0:
            return
        scratch = self._take_scratch()
        try:
            for first in range(0, self._slots, REPAIR_CHUNK):
                with self._rw.write():
                    kernels.repair_links(self._source_args, self._graph_args, scratch, first=first,
                                         stop=min(first + REPAIR_CHUNK, self._slots))
        finally:
            self._give_back_scratch(scratch)
        with self._rw.write():
            graph = self._graph
            dropped = np.flatnonzero(graph.deleted[: self._slots])
            graph.levels[dropped] = -1
            graph.links0[dropped, 0] = 0
            graph.deleted[dropped] = 0
            self._n_in_graph -= len(dropped)
            graph.state[2] = 0
            packed, starts = _compact_upper(graph.levels[: self._slots], graph.upper_start[: self._slots],
                                            graph.upper)
            graph.upper[: len(packed)] = packed
            graph.upper_start[: self._slots] = starts
            self._upper_rows = len(packed)
            if graph.state[0] >= 0 and graph.levels[graph.state[0]] < 0:
                top = int(np.argmax(graph.levels[: self._slots]))
                graph.state[:2] = (top, graph.levels[top]) if graph.levels[top] >= 0 else (-1, -1)

    # -- searching (caller holds the read lock) --------------------------------------------------
    def _search_graph(self, queries, ef, allowed, out_slots, out_similarities) -> None:
        searchers = self._searchers
        searcher = searchers.pop() if searchers else self._new_searcher()
        kernels.search_batch(searcher[0], queries, ef, allowed, out_slots, out_similarities)
        searchers.append(searcher)

    def _new_searcher(self) -> tuple:
        """A ``kernels.Searcher`` over the arrays bound now (caller holds the read lock) and the
        compiled single-query entry for it. Searchers are pooled, one per concurrent search; the pool
        is emptied whenever the arrays are rebound."""
        slots = max(len(self._graph.levels), 1)
        scratch = tuple(kernels.Scratch(
            visited=np.zeros(slots, dtype=np.uint16), visit_state=np.zeros(1, dtype=np.int64),
            candidates=np.empty(slots + 1, dtype=np.int64)))
        searcher = kernels.new_searcher(self._source_args, self._graph_args, self._codes_args, self.quantized,
                                        scratch, self.id_stride, self.id_offset)
        return searcher, kernels.single_query_entry(searcher, self.dim)

    def _search_filtered(self, queries, ef, filter, out_slots, out_similarities) -> None:
        k = out_slots.shape[1]
        filter = np.asarray(filter)
        ids = np.flatnonzero(filter) if filter.dtype == bool else filter.astype(np.int64).ravel()
        slots, valid = self._slots_of(ids)
        slots = slots[valid & (slots < self._slots)]
        graph = self._graph
        allowed_slots = np.unique(slots[(graph.levels[slots] >= 0) & (graph.deleted[slots] == 0)]).astype(np.int32)
        n_allowed = len(allowed_slots)
        if n_allowed**2 <= FILTER_EXACT_COST * ef * len(self):
            kernels.exact_search(self._source_args, queries, allowed_slots, out_slots, out_similarities)
            return
        allowed = np.zeros(len(graph.levels), dtype=np.uint8)
        allowed[allowed_slots] = 1
        self._search_graph(queries, ef, allowed, out_slots, out_similarities)
        short = np.flatnonzero((out_slots >= 0).sum(axis=1) < min(k, n_allowed))
        if len(short):
            redo_slots = np.empty((len(short), k), dtype=np.int32)
            redo_similarities = np.empty((len(short), k), dtype=np.float32)
            kernels.exact_search(self._source_args, np.ascontiguousarray(queries[short]), allowed_slots,
                                 redo_slots, redo_similarities)
            out_slots[short] = redo_slots
            out_similarities[short] = redo_similarities

    # -- storage helpers -------------------------------------------------------------------------
    def _live(self, ids: np.ndarray) -> np.ndarray:
        slots, valid = self._slots_of(ids)
        valid &= slots < self._slots
        result = np.zeros(ids.shape, dtype=bool)
        result[valid] = (self._graph.levels[slots[valid]] >= 0) & (self._graph.deleted[slots[valid]] == 0)
        return result

    def _checked(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.asarray(vectors)  # a memmap stays a view of the same pages
        if vectors.dtype != np.float32 or vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"vectors must be a float32 (rows, {self.dim}) matrix, got {vectors.dtype} "
                             f"{vectors.shape}")
        if not vectors.flags.c_contiguous:
            raise ValueError("vectors must be C-contiguous (for a shard of rows use id_stride/id_offset "
                             "on the whole matrix instead of a strided view)")
        return vectors

    def _slots_of(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        relative = ids - self.id_offset
        valid = (relative >= 0) & (relative % self.id_stride == 0)
        return np.where(valid, relative // self.id_stride, 0), valid

    def _id_of(self, slots: np.ndarray) -> np.ndarray:
        return slots * self.id_stride + self.id_offset

    def _row_of(self, slot: int) -> int:
        return slot * self.id_stride + self.id_offset

    def _bind(self, vectors: np.ndarray | None = None, codes: np.ndarray | None = None,
              scales: np.ndarray | None = None, **graph_arrays: np.ndarray) -> None:
        """Rebind the vectors, codes and graph arrays: the only place they are assigned. Kernels receive
        each group as the plain tuple of its fields (``_source_args``, ``_graph_args``,
        ``_codes_args``), made here from the named tuple: numba types a plain tuple at a call as fast
        as separate arguments. Searchers made before are left out of the new (empty) pool."""
        if vectors is not None:
            self._source = self._source._replace(vectors=vectors)
        if codes is not None:
            self._codes = kernels.Codes(codes=codes, scales=scales)
        if graph_arrays:
            self._graph = self._graph._replace(**graph_arrays)
        self._source_args = tuple(self._source)
        self._graph_args = tuple(self._graph)
        self._codes_args = tuple(self._codes)
        self._searchers = []  # searchers over the old arrays are dropped with the old pool

    def _draw_levels(self, ids: np.ndarray) -> np.ndarray:
        """hnswlib's level draw, floor(-ln(U) / ln(M)), with U hashed from (seed, id): reproducible
        whatever the insertion order, and nothing to persist."""
        bits = _splitmix64(ids.astype(np.uint64) ^ self._seed_hash)
        uniform = ((bits >> np.uint64(11)).astype(np.float64) + 1.0) * 2.0**-53
        return np.minimum(np.floor(-np.log(uniform) * self._level_scale), MAX_LEVEL).astype(np.int64)

    def _reserve_slots(self, needed: int) -> None:
        graph = self._graph
        capacity = len(graph.levels)
        if needed <= capacity:
            return
        capacity = max(needed, 2 * capacity)

        def grown(array: np.ndarray, fill) -> np.ndarray:
            bigger = np.full((capacity,) + array.shape[1:], fill, dtype=array.dtype)
            bigger[: len(array)] = array
            return bigger

        codes = self._codes
        self._locks = self._locks._replace(nodes=np.zeros(capacity, dtype=np.uint8))  # none held: no insert runs
        self._locks_args = tuple(self._locks)
        self._bind(vectors=grown(self._source.vectors, 0) if self._own_vectors else None,
                   codes=grown(codes.codes, 0) if self.quantized else None,
                   scales=grown(codes.scales, 0) if self.quantized else None,
                   links0=grown(graph.links0, 0), upper_start=grown(graph.upper_start, 0),
                   levels=grown(graph.levels, -1), deleted=grown(graph.deleted, 0))

    def _reserve_upper_rows(self, needed: int) -> None:
        upper = self._graph.upper
        if needed <= len(upper):
            return
        bigger = np.zeros((max(needed, 2 * len(upper)), self.m + 1), dtype=np.int32)
        bigger[: len(upper)] = upper
        self._bind(upper=bigger)

    def _take_scratch(self) -> tuple[np.ndarray, ...]:
        """Per-walk working memory covering every slot, one ``kernels.Scratch`` per concurrent graph
        walk (hnswlib's visited-list pool), as the plain tuple the kernels take. Pages of the candidate
        heap that a walk never reaches are never touched, so never really allocated."""
        with self._scratch_pool_lock:
            scratch = self._scratch_pool.pop() if self._scratch_pool else None
        slots = max(len(self._graph.levels), 1)
        if scratch is None or len(scratch[_SCRATCH_VISITED]) < slots:
            scratch = tuple(kernels.Scratch(
                visited=np.zeros(slots, dtype=np.uint16), visit_state=np.zeros(1, dtype=np.int64),
                candidates=np.empty(slots + 1, dtype=np.int64)))
        return scratch

    def _give_back_scratch(self, scratch: tuple[np.ndarray, ...]) -> None:
        with self._scratch_pool_lock:
            self._scratch_pool.append(scratch)
