"""Compiled hot loops of the HNSW graph (numba, nopython, GIL released, cached on disk).

The structure mirrors hnswlib's ``hnswalg.h``: ``_search_layer`` is ``searchBaseLayer(ST)``,
``_select_neighbours`` is ``getNeighborsByHeuristic2``, ``_connect`` is ``mutuallyConnectNewElement``
and ``insert_batch`` is ``addPoint``. ``repair_links`` drops tombstoned nodes from neighbour lists
(FreshDiskANN-style consolidation: candidates are the live neighbours plus the live neighbours of
the deleted ones, pruned with the same heuristic).

Kernels take their arguments in named groups (the named tuples below), so that no call can put one
array where another belongs:

``Graph``  the graph, owned and grown by ``HNSWIndex``:
    ``links0``       int32[slots, 1 + 2M]  layer-0 neighbour lists; column 0 holds the count
    ``upper``        int32[rows, 1 + M]    upper-layer lists; node i's list for layer l >= 1 is row
                                           ``upper_start[i] + l - 1``
    ``upper_start``  int32[slots]
    ``levels``       int8[slots]           top layer of each node; -1 while the slot is not in the graph
    ``deleted``      uint8[slots]          tombstones: still traversed, never returned
    ``state``        int64[3]              entry point (-1 when empty), its level, and the number of
                                           tombstones
``VectorSource``  where the vectors are: the vector of slot ``s`` is row
    ``s * row_stride + row_offset`` of ``vectors`` float32[rows, dim] (an external matrix shared with
    other processes, or the index's own storage with stride 1 and offset 0)
``Codes``  8-bit codes of the vectors by slot, ``codes`` int8[slots, dim] and ``scales``
    float32[slots]: the vector of slot ``s`` is about ``scales[s] * codes[s]``
``Scratch``  one concurrent walk's working memory (hnswlib's visited-list pool): ``visited``
    uint16[slots] tags and ``visit_state`` int64[1], the last tag handed out, so nothing is cleared
    per query; ``candidates`` int64[slots + 1], the candidate heap, (distance, node) packed in one
    int64 each, with room for every slot (a node enters it at most once per walk), so it never grows
``Locks``  spin locks of parallel inserts: a byte per slot and one for the entry point
``Results``  the outputs of a search: per query row the best k ``nodes`` int32[n, k] and their
    ``similarities`` float32[n, k]

The kernels' entry points are ``insert_batch(source, graph, codes, locks, scratch, ...)``,
``new_searcher(source, graph, codes, use_codes, scratch, id_stride, id_offset)``,
``search_batch(searcher, ..., out_nodes, out_similarities)``, ``search_one(searcher, query, k, ef,
out_ids, out_similarities)``, ``exact_search(source, ..., out_nodes, out_similarities)``,
``encode(source, codes, slots)`` and ``repair_links(source, graph, scratch, first, stop)``. Their
few other arguments are checked together, as ``InsertRequest``, ``SearchRequest``, ``ExactRequest``
and ``Results``, whose fields are each of a different kind, so that any order but the right one fails
to compile (the queries and the similarities, both float32 matrices, are told apart by their shapes at
run time). M is never passed (it is ``upper.shape[1] - 1``), nor k (the width of the outputs), nor
whether there are tombstones (``state[2]``). Inside, the linking code groups its buffers too
(``Heap``, ``Neighbours``, ``LinkBuffers``), while the walks (``_search_layer``, ``_greedy_descent``,
``_rank_exactly``) take plain arrays, taken out of the groups once per query or insert: numba
reference-counts every array of a named tuple built or passed, and on the search path that cost
more than a whole walk of a small graph. Calls between them pass by keyword the integers that could
be swapped (entry, layer, ef, tag, counts); keywords cost nothing in compiled code.

A group reaches an entry point as a plain tuple of its fields in field order (``HNSWIndex`` keeps
one for each long-lived group, made from the named tuple): numba's dispatcher types an exact tuple
about as fast as separate arguments, while a named tuple costs it some 0.15 µs per field on every
call. The entry point names it again with ``_group``, which checks at compile time that it is a
tuple of the right length whose fields have the declared dtypes and dimensions (a named tuple of the
right class is checked and taken as it is): a group passed in another's place, or a field of the
wrong kind, is a ``TypingError``, never a run over the wrong arrays. Grouping costs nothing once
compiled: the fields become plain values in registers.

Searches go through a ``Searcher`` (a numba structure made by ``new_searcher`` from the checked
groups, one per concurrent search): unboxing it is one pointer, where its dozen arrays as separate
arguments cost the dispatcher over a microsecond per call, more than a whole search of a small graph.
A single query per call (the service's path) calls ``search_one`` through the bare compiled function
(``single_query_entry``), skipping the dispatcher's typing of the arguments as well.

Searches walk on the codes when the searcher has ``use_codes``: a quarter of the bytes of a float32
vector per node visited (memory traffic is what a walk of a large graph waits on), one int8-to-float
multiply-add per dimension. The nodes the beam keeps, and the last ``ef / 2`` it let go (which the
codes' rounding may have put a hair behind), are then ranked by exact float32 distance: the results
and their similarities are exact, and recall at a given ef is that of a walk on the exact vectors.
Inserts walk the same way and measure what they found again exactly before choosing neighbours.

Every link points at a node that is in the graph (``levels >= 0``). Distances are negated dot
products: lower is closer and similarity is exactly ``-distance``.

Hot loops address rows of 2-D arrays by index and never slice or reassign arrays, and fields are read
out of their groups once, before the loops: numba reference-counts array views and fields taken from
a group with atomic calls, which cost as much as the distance computations here. While expanding a
node, the unvisited neighbours are gathered first without a branch (whether a neighbour is new is a
coin flip to the branch predictor), then their codes or vectors are prefetched together, so that the
memory loads overlap, then the distances are computed.
"""

import typing
from typing import Annotated, NamedTuple

import numpy as np
from llvmlite import ir
from numba import from_dtype, njit, typeof, types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.experimental import structref
from numba.extending import intrinsic, overload

FAR = np.float32(3.0e38)  # a finite "infinity": comparisons stay well defined under any math flags


class _Array(NamedTuple):
    """A field's declared kind: an array of this dtype and number of dimensions (any layout)."""

    dtype: type
    ndim: int


Int32Matrix = Annotated[np.ndarray, _Array(np.int32, 2)]
Int8Matrix = Annotated[np.ndarray, _Array(np.int8, 2)]
Float32Matrix = Annotated[np.ndarray, _Array(np.float32, 2)]
Int32Vector = Annotated[np.ndarray, _Array(np.int32, 1)]
Int64Vector = Annotated[np.ndarray, _Array(np.int64, 1)]
Float32Vector = Annotated[np.ndarray, _Array(np.float32, 1)]
UInt8Vector = Annotated[np.ndarray, _Array(np.uint8, 1)]
UInt16Vector = Annotated[np.ndarray, _Array(np.uint16, 1)]
Int8Vector = Annotated[np.ndarray, _Array(np.int8, 1)]


class Graph(NamedTuple):
    """The graph's arrays (see the module docstring)."""

    links0: Int32Matrix
    upper: Int32Matrix
    upper_start: Int32Vector
    levels: Int8Vector
    deleted: UInt8Vector
    state: Int64Vector


class VectorSource(NamedTuple):
    """The vector of slot ``s`` is row ``s * row_stride + row_offset`` of ``vectors``."""

    vectors: Float32Matrix
    row_stride: int
    row_offset: int


class Codes(NamedTuple):
    """8-bit codes of the vectors, by slot: the vector of slot ``s`` is about ``scales[s] * codes[s]``
    (symmetric, one scale per vector, ``max |x| / 127``). Searches walk the graph on them and rank
    the walk's best exactly (see ``search_one``)."""

    codes: Int8Matrix
    scales: Float32Vector


class Scratch(NamedTuple):
    """One concurrent walk's working memory, covering every slot."""

    visited: UInt16Vector
    visit_state: Int64Vector
    candidates: Int64Vector


class SearchRequest(NamedTuple):
    """Search each row of ``queries`` with a beam of ``ef`` (at least k). ``allowed``: a uint8 mask
    over slots, or empty for no filter."""

    queries: Float32Matrix
    ef: int
    allowed: UInt8Vector


class ExactRequest(NamedTuple):
    """Rank the ``candidates`` (slots) exactly for each row of ``queries``."""

    queries: Float32Matrix
    candidates: Int32Vector


class InsertRequest(NamedTuple):
    """Insert ``nodes`` (slots) at the top layers ``node_levels`` with a beam of ``ef_construction``;
    with ``use_codes`` the beam walks on the codes and its nodes are ranked exactly before linking."""

    nodes: Int32Vector
    node_levels: Int64Vector
    ef_construction: int
    use_codes: bool


class Locks(NamedTuple):
    """Spin locks of inserts that run in parallel (hnswlib's link_list_locks_ and global lock): one
    byte per slot, held while that node's lists change, and one held while reading (and, for a node
    above the top layer, moving) the entry point. Reads of lists take no lock: a list being rewritten
    may be read half old, half new, but every id in it, old or new, is a node in the graph."""

    nodes: UInt8Vector
    entry: UInt8Vector


class Results(NamedTuple):
    """Per query row, the best k nodes (k: the arrays' width) and their similarities, descending;
    padded with -1 / -inf."""

    nodes: Int32Matrix
    similarities: Float32Matrix


class Heap(NamedTuple):
    """A max-heap of (key, value) pairs in two arrays; its size is kept by the caller."""

    keys: Float32Vector
    values: Int32Vector


class Neighbours(NamedTuple):
    """Candidate neighbours and their distances to a base node, in two arrays."""

    distances: Float32Vector
    nodes: Int32Vector


class LinkBuffers(NamedTuple):
    """Room for linking one node: its sorted candidates and picks, and the pool and picks used to
    re-prune a neighbour's overflowing list."""

    ranked: Neighbours
    selected: Int32Vector
    pool: Neighbours
    kept: Int32Vector


@structref.register
class SearcherType(types.StructRef):
    """The numba type of a ``Searcher`` (one per combination of its fields' types)."""

    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(kind)) for name, kind in fields)


class Searcher(structref.StructRefProxy):
    """Everything one search needs, in one object (made by ``new_searcher``): the groups of the index
    (``source``, ``codes``, ``use_codes``, ``graph``), a walk's ``scratch``, the id mapping
    (``id_stride``, ``id_offset``), the beam's and the results' heaps (``top``, ``best``, grown as ef
    and k require), room for one node's fresh neighbours (``fresh``) and a contiguous copy of the
    query (``query``, float32[1, dim]), and an empty mask (``no_filter``). A structure passes to a kernel as one pointer, where the
    same arrays as separate arguments cost numba's dispatcher some 0.1 µs each on every call."""


structref.define_proxy(Searcher, SearcherType, ["source", "codes", "use_codes", "graph", "scratch", "id_stride",
                                                "id_offset", "top", "best", "fresh", "query", "evicted", "no_filter"])


def _group_problem(group: type, values: types.Type) -> str | None:
    """Why ``values`` (the numba type of an argument) cannot be read as a ``group``, or None."""
    if isinstance(values, types.NamedTuple) and values.instance_class is not group:
        return f"a {values.instance_class.__name__} was passed where a {group.__name__} belongs"
    fields = group._fields
    if not isinstance(values, types.BaseTuple) or len(values) != len(fields):
        return f"a {group.__name__} is a tuple ({', '.join(fields)}); got {values}"
    hints = typing.get_type_hints(group, include_extras=True)
    for name, got in zip(fields, values.types):
        kind = getattr(hints[name], "__metadata__", (hints[name],))[0]
        if isinstance(kind, _Array):
            expected = f"an array of {np.dtype(kind.dtype)}, {kind.ndim}-D"
            ok = (isinstance(got, types.Array) and got.ndim == kind.ndim
                  and got.dtype == from_dtype(np.dtype(kind.dtype)))
        elif kind is bool:
            expected, ok = "a bool", isinstance(got, types.Boolean)
        elif kind is int:
            expected, ok = "an integer", isinstance(got, types.Integer)
        else:
            raise TypeError(f"{group.__name__}.{name}: no compile-time check for {kind}")
        if not ok:
            return f"{group.__name__}.{name} must be {expected}; got {got}"
    return None


def _group(group, values):
    """``values``, a plain tuple of ``group``'s fields in order, as a ``group`` (or a ``group`` as is)."""
    return values if isinstance(values, group) else group(*values)


@overload(_group)
def _group_compiled(group, values):
    problem = _group_problem(group.instance_class, values)
    if problem is not None:
        raise TypingError(problem)
    if isinstance(values, types.NamedTuple):
        return lambda group, values: values
    return lambda group, values: group(*values)


def _prefetch_codegen(context, builder, signature, args):
    """Emit llvm.prefetch of the address of ``array[indices...]`` (the intrinsics' arguments)."""
    array_type, *index_types = signature.args
    array_value = context.make_array(array_type)(context, builder, args[0])
    indices = [context.cast(builder, value, kind, types.intp) for value, kind in zip(args[1:], index_types)]
    pointer = cgutils.get_item_pointer2(
        context, builder, data=array_value.data,
        shape=cgutils.unpack_tuple(builder, array_value.shape),
        strides=cgutils.unpack_tuple(builder, array_value.strides),
        layout=array_type.layout, inds=indices, wraparound=False)
    byte_pointer = ir.IntType(8).as_pointer()
    int32 = ir.IntType(32)
    prefetch_type = ir.FunctionType(ir.VoidType(), [byte_pointer, int32, int32, int32])
    prefetch = cgutils.get_or_insert_function(builder.module, prefetch_type, "llvm.prefetch.p0")
    # read access, high temporal locality, data cache
    builder.call(prefetch, [builder.bitcast(pointer, byte_pointer), int32(0), int32(3), int32(1)])
    return context.get_dummy_value()


@intrinsic
def _prefetch(typingctx, matrix, row, column):
    """Hint the CPU to load the cache line holding ``matrix[row, column]`` (like _mm_prefetch)."""
    return types.void(matrix, row, column), _prefetch_codegen


@intrinsic
def _prefetch_item(typingctx, vector, index):
    """Hint the CPU to load the cache line holding ``vector[index]``."""
    return types.void(vector, index), _prefetch_codegen


@njit(cache=True)
def _prefetch_vector(vectors, row):
    for column in range(0, min(vectors.shape[1], 32), 16):  # one 64-byte line per 16 floats
        _prefetch(vectors, row, column)


@njit(cache=True)
def _prefetch_row(vectors, row):
    for column in range(0, vectors.shape[1], 16):  # every 64-byte line of the row
        _prefetch(vectors, row, column)


@njit(cache=True)
def _prefetch_code(codes, scales, node):
    for column in range(0, codes.shape[1], 64):  # the whole code, one 64-byte line at a time
        _prefetch(codes, node, column)
    _prefetch_item(scales, node)


@njit(cache=True, fastmath={"reassoc", "contract"})
def _dot(a, a_row, b, b_row):
    # rows are addressed by index, not sliced: a view per call would cost reference counting;
    # reassociation lets LLVM spread the sum over several SIMD accumulators
    total = np.float32(0.0)
    for i in range(a.shape[1]):
        total += a[a_row, i] * b[b_row, i]
    return total


@njit(cache=True, fastmath={"reassoc", "contract"})
def _dot_code(codes, node, b, b_row):
    """The dot product of a code (unscaled) with a float32 row."""
    total = np.float32(0.0)
    for i in range(codes.shape[1]):
        total += np.float32(codes[node, i]) * b[b_row, i]
    return total


@njit(cache=True, inline="always")
def _distance(vectors, row_stride, row_offset, codes, scales, use_codes, node, queries, query_row):
    """The distance of ``node`` to row ``query_row`` of ``queries``: from its code when ``use_codes``,
    exact otherwise."""
    if use_codes:
        return -scales[node] * _dot_code(codes, node, queries, query_row)
    return -_dot(vectors, node * row_stride + row_offset, queries, query_row)


@njit(cache=True)
def _list_row(node, layer, upper_start):
    """Row of ``node``'s list for ``layer`` in ``links0`` (layer 0) or in ``upper``."""
    if layer == 0:
        return node
    return upper_start[node] + layer - 1


@njit(cache=True)
def _heap_push(keys, values, size, key, value):
    """Push onto a max-heap of ``size`` items kept in ``keys``/``values``; returns the new size."""
    i = size
    while i > 0:
        parent = (i - 1) >> 1
        if keys[parent] >= key:
            break
        keys[i] = keys[parent]
        values[i] = values[parent]
        i = parent
    keys[i] = key
    values[i] = value
    return size + 1


@njit(cache=True)
def _heap_replace_top(keys, values, size, key, value):
    """Replace the largest key of a max-heap of ``size`` items by ``key``/``value``."""
    keys[0] = key
    values[0] = value
    _sift_down(keys, values, size, 0)


@njit(cache=True)
def _sift_down(keys, values, size, i):
    """Move item ``i`` of a max-heap of ``size`` items down to its place."""
    key = keys[i]
    value = values[i]
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and keys[child + 1] > keys[child]:
            child += 1
        if keys[child] <= key:
            break
        keys[i] = keys[child]
        values[i] = values[child]
        i = child
    keys[i] = key
    values[i] = value


@njit(cache=True)
def _heap_pop(keys, values, size):
    """Remove the largest key of a max-heap; returns the new size."""
    size -= 1
    _heap_replace_top(keys, values, size, keys[size], values[size])
    return size


def _element_pointer(context, builder, array_type, array, index, index_type):
    array_value = context.make_array(array_type)(context, builder, array)
    return cgutils.get_item_pointer2(
        context, builder, data=array_value.data, shape=cgutils.unpack_tuple(builder, array_value.shape),
        strides=cgutils.unpack_tuple(builder, array_value.strides), layout=array_type.layout,
        inds=[context.cast(builder, index, index_type, types.intp)], wraparound=False)


@intrinsic
def _try_lock(typingctx, locks, index):
    """Atomically set byte ``locks[index]`` from 0 to 1 (acquire); whether it was 0."""
    if not (isinstance(locks, types.Array) and locks.dtype == types.uint8 and locks.ndim == 1):
        return None

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1], signature.args[1])
        byte = ir.IntType(8)
        result = builder.cmpxchg(pointer, byte(0), byte(1), "acquire", "monotonic")
        return builder.extract_value(result, 1)

    return types.boolean(locks, index), codegen


@intrinsic
def _unlock(typingctx, locks, index):
    """Atomically set byte ``locks[index]`` to 0 (release)."""
    if not (isinstance(locks, types.Array) and locks.dtype == types.uint8 and locks.ndim == 1):
        return None

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1], signature.args[1])
        builder.store_atomic(ir.IntType(8)(0), pointer, "release", 1)
        return context.get_dummy_value()

    return types.void(locks, index), codegen


@njit(cache=True)
def _lock(locks, index):
    while not _try_lock(locks, index):
        pass


@intrinsic
def _float_bits(typingctx, value):
    """The bits of a float32 as an int32."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@intrinsic
def _bits_float(typingctx, value):
    """The float32 whose bits are this int32."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@njit(cache=True, inline="always")
def _pack_candidate(distance, node):
    """(distance, node) as one int64 ordered by descending distance: the float's bits made monotonic
    (negative floats have their other bits flipped) above the node."""
    bits = np.int64(_float_bits(np.float32(-distance)))
    return ((bits ^ ((bits >> 31) & 0x7FFFFFFF)) << 32) | np.int64(node)


@njit(cache=True, inline="always")
def _candidate_distance(packed):
    bits = packed >> 32
    return -_bits_float(np.int32(bits ^ ((bits >> 31) & 0x7FFFFFFF)))


@njit(cache=True, inline="always")
def _candidate_node(packed):
    return np.int32(packed & 0xFFFFFFFF)


@njit(cache=True)
def _heap64_push(heap, size, item):
    """Push onto a max-heap of ``size`` int64 items; returns the new size."""
    i = size
    while i > 0:
        parent = (i - 1) >> 1
        if heap[parent] >= item:
            break
        heap[i] = heap[parent]
        i = parent
    heap[i] = item
    return size + 1


@njit(cache=True)
def _heap64_pop(heap, size):
    """Remove the largest item of a max-heap of int64; returns the new size."""
    size -= 1
    item = heap[size]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and heap[child + 1] > heap[child]:
            child += 1
        if heap[child] <= item:
            break
        heap[i] = heap[child]
        i = child
    heap[i] = item
    return size


@njit(cache=True, inline="always")
def _next_visit_tag(visited, visit_state):
    """A fresh tag for ``visited`` so that no per-query clearing is needed (hnswlib's VisitedList)."""
    tag = visit_state[0] + 1
    if tag > 65535:
        visited[:] = 0
        tag = 1
    visit_state[0] = tag
    return tag


@njit(cache=True, inline="always")
def _search_layer(queries, query_row, vectors, row_stride, row_offset, codes, scales, use_codes, lists,
                  upper_start, deleted, allowed, may_exclude, visited, candidates, top_keys, top_values, fresh,
                  evicted, n_ring, entry, layer, ef, tag):
    """Beam search of one layer from ``entry`` for row ``query_row`` of ``queries``, over nodes that
    carry ``tag`` in ``visited`` once seen, with distances on the codes when ``use_codes`` (else
    exact). Leaves the best ``ef`` eligible nodes in the max-heap ``top_keys``/``top_values``
    (ineligible ones, tombstoned or not ``allowed`` where that mask is not empty, are walked through
    but not kept) and returns their count and how many of the last nodes it let go it kept in the
    ring ``evicted`` (``n_ring`` long, 0 for none). ``may_exclude``: some node may be ineligible, so the walk
    goes on until it has ``ef``. The candidate heap holds at most one entry per visited node, so
    capacity for every slot means it never has to grow."""
    use_allowed = allowed.shape[0] > 0
    n_evicted = 0

    distance = _distance(vectors, row_stride, row_offset, codes, scales, use_codes, entry, queries, query_row)
    visited[entry] = tag
    n_top = 0
    if deleted[entry] == 0 and (not use_allowed or allowed[entry] != 0):
        n_top = _heap_push(top_keys, top_values, 0, distance, entry)
    lower_bound = top_keys[0] if n_top > 0 else FAR
    # the candidate queue: a min-heap by distance, stored as a max-heap of (negated distance, node)
    # packed into one int64 each
    n_cand = _heap64_push(candidates, 0, _pack_candidate(distance, entry))
    while n_cand > 0:
        if _candidate_distance(candidates[0]) > lower_bound and (n_top == ef or not may_exclude):
            break
        current = _candidate_node(candidates[0])
        n_cand = _heap64_pop(candidates, n_cand)
        if n_cand > 0:  # the next candidate's list is read soon
            _prefetch(lists, _list_row(_candidate_node(candidates[0]), layer, upper_start), 0)
        row = _list_row(current, layer, upper_start)
        # first gather the unvisited neighbours and request all their vectors (or codes), so that
        # the memory loads overlap, then compute the distances
        n_fresh = 0
        for j in range(1, lists[row, 0] + 1):  # branch-free: whether a node is new is unpredictable
            node = lists[row, j]
            fresh[n_fresh] = node
            n_fresh += visited[node] != tag
            visited[node] = tag
        for f in range(n_fresh):
            if use_codes:
                _prefetch_code(codes, scales, fresh[f])
            else:
                _prefetch_vector(vectors, fresh[f] * row_stride + row_offset)
        for f in range(n_fresh):
            node = fresh[f]
            if use_codes:
                distance = -scales[node] * _dot_code(codes, node, queries, query_row)
            else:
                distance = -_dot(vectors, node * row_stride + row_offset, queries, query_row)
            if n_top < ef or distance < lower_bound:
                n_cand = _heap64_push(candidates, n_cand, _pack_candidate(distance, node))
                if deleted[node] == 0 and (not use_allowed or allowed[node] != 0):
                    if n_top < ef:
                        n_top = _heap_push(top_keys, top_values, n_top, distance, node)
                    else:  # full, and closer than the worst kept: it takes the worst one's place
                        if n_ring > 0:
                            evicted[n_evicted % n_ring] = top_values[0]
                            n_evicted += 1
                        _heap_replace_top(top_keys, top_values, n_top, distance, node)
                    lower_bound = top_keys[0]
    return n_top, min(n_evicted, n_ring)


@njit(cache=True, inline="always")
def _greedy_descent(queries, query_row, vectors, row_stride, row_offset, codes, scales, use_codes, upper,
                    upper_start, entry, from_layer, to_layer):
    """Walk to the closest node on each upper layer from ``from_layer`` down to ``to_layer`` >= 1."""
    current = entry
    current_distance = _distance(vectors, row_stride, row_offset, codes, scales, use_codes, entry, queries,
                                 query_row)
    for layer in range(from_layer, to_layer - 1, -1):
        changed = True
        while changed:
            changed = False
            row = upper_start[current] + layer - 1
            for j in range(1, upper[row, 0] + 1):
                node = upper[row, j]
                distance = _distance(vectors, row_stride, row_offset, codes, scales, use_codes, node, queries,
                                     query_row)
                if distance < current_distance:
                    current_distance = distance
                    current = node
                    changed = True
    return current


@njit(cache=True)
def _select_neighbours(candidates, source, selected, n_cand, max_links):
    """The neighbour-selection heuristic: walking the ``n_cand`` candidates from the closest, keep one
    only if it is closer to the base than to every node already kept; the picks go to ``selected``
    and their count is returned. Candidates must be sorted by distance."""
    cand_distances = candidates.distances
    cand_nodes = candidates.nodes
    if n_cand <= max_links:
        for i in range(n_cand):
            selected[i] = cand_nodes[i]
        return n_cand
    vectors = source.vectors
    row_stride = source.row_stride
    row_offset = source.row_offset
    n_selected = 0
    for i in range(n_cand):
        candidate_row = cand_nodes[i] * row_stride + row_offset
        keep = True
        for s in range(n_selected):
            if -_dot(vectors, candidate_row, vectors, selected[s] * row_stride + row_offset) < cand_distances[i]:
                keep = False
                break
        if keep:
            selected[n_selected] = cand_nodes[i]
            n_selected += 1
            if n_selected == max_links:
                break
    return n_selected


@njit(cache=True)
def _sort_by_distance(distances, nodes, n):
    # insertion sort: lists are at most 2M + 1 long
    for i in range(1, n):
        distance = distances[i]
        node = nodes[i]
        j = i - 1
        while j >= 0 and distances[j] > distance:
            distances[j + 1] = distances[j]
            nodes[j + 1] = nodes[j]
            j -= 1
        distances[j + 1] = distance
        nodes[j + 1] = node


@njit(cache=True)
def _set_links(lists, nodes, row, n):
    for i in range(n):
        lists[row, 1 + i] = nodes[i]
    lists[row, 0] = n


@njit(cache=True)
def _rank_found(top, n_top, ranked, exactly, source, node_row):
    """Empty the max-heap ``top`` of the ``n_top`` nodes a beam found into ``ranked``, closest first;
    ``exactly``: their keys are distances on the codes, so measure them again exactly first."""
    top_keys = top.keys
    top_values = top.values
    if exactly:
        vectors = source.vectors
        row_stride = source.row_stride
        row_offset = source.row_offset
        for r in range(min(2, n_top)):
            _prefetch_row(vectors, top_values[r] * row_stride + row_offset)
        for r in range(n_top):
            if r + 2 < n_top:  # rows are requested two nodes ahead
                _prefetch_row(vectors, top_values[r + 2] * row_stride + row_offset)
            top_keys[r] = -_dot(vectors, top_values[r] * row_stride + row_offset, vectors, node_row)
        for r in range(n_top // 2 - 1, -1, -1):  # a heap again, on the exact keys (Floyd)
            _sift_down(top_keys, top_values, n_top, r)
    ranked_distances = ranked.distances
    ranked_nodes = ranked.nodes
    for r in range(n_top - 1, -1, -1):
        ranked_distances[r] = top_keys[0]
        ranked_nodes[r] = top_values[0]
        _heap_pop(top_keys, top_values, r + 1)


@njit(cache=True)
def _connect(source, graph, locks, buffers, node, layer, n_ranked):
    """Link ``node`` to the heuristic's pick among the ``n_ranked`` in ``buffers.ranked`` (closest
    first) found on ``layer`` and link them back, re-pruning any neighbour list that overflows, each
    list changed under its node's lock. Returns the closest pick (the next entry)."""
    vectors = source.vectors
    row_stride = source.row_stride
    row_offset = source.row_offset
    lists = graph.links0 if layer == 0 else graph.upper
    upper_start = graph.upper_start
    m = graph.upper.shape[1] - 1
    node_locks = locks.nodes
    ranked = buffers.ranked
    selected = buffers.selected
    pool = buffers.pool
    pool_distances = pool.distances
    pool_nodes = pool.nodes
    kept = buffers.kept
    n_selected = _select_neighbours(ranked, source, selected, n_cand=n_ranked, max_links=m)
    _lock(node_locks, node)
    _set_links(lists, selected, row=_list_row(node, layer, upper_start), n=n_selected)
    _unlock(node_locks, node)
    max_links = lists.shape[1] - 1
    node_row = node * row_stride + row_offset
    for s in range(n_selected):
        other = selected[s]
        row = _list_row(other, layer, upper_start)
        _lock(node_locks, other)
        count = lists[row, 0]
        if count < max_links:
            lists[row, 1 + count] = node
            lists[row, 0] = count + 1
            _unlock(node_locks, other)
            continue
        other_row = other * row_stride + row_offset
        pool_nodes[0] = node
        pool_distances[0] = -_dot(vectors, node_row, vectors, other_row)
        for j in range(count):
            neighbour = lists[row, 1 + j]
            pool_nodes[1 + j] = neighbour
            pool_distances[1 + j] = -_dot(vectors, neighbour * row_stride + row_offset, vectors, other_row)
        _sort_by_distance(pool_distances, pool_nodes, count + 1)
        n_kept = _select_neighbours(pool, source, kept, n_cand=count + 1, max_links=max_links)
        _set_links(lists, kept, row=row, n=n_kept)
        _unlock(node_locks, other)
    return selected[0]


@njit(nogil=True, cache=True)
def insert_batch(source, graph, codes, locks, scratch, nodes, node_levels, ef_construction, use_codes):
    """Insert ``nodes`` one after another (hnswlib's addPoint; see ``InsertRequest``). Their
    upper-layer rows must be allocated in ``upper_start`` and zeroed; their vectors (and with
    ``use_codes`` their codes) must already be readable. Several calls may run at once on disjoint
    ``nodes``, each with its own ``scratch``: they take the ``locks`` (no search may run meanwhile)."""
    source = _group(VectorSource, source)
    graph = _group(Graph, graph)
    codes = _group(Codes, codes)
    locks = _group(Locks, locks)
    scratch = _group(Scratch, scratch)
    _group(InsertRequest, (nodes, node_levels, ef_construction, use_codes))
    vectors = source.vectors
    row_stride = source.row_stride
    row_offset = source.row_offset
    links0 = graph.links0
    upper = graph.upper
    upper_start = graph.upper_start
    levels = graph.levels
    state = graph.state
    node_locks = locks.nodes
    entry_lock = locks.entry
    visited = scratch.visited
    visit_state = scratch.visit_state
    m = upper.shape[1] - 1
    max_links0 = links0.shape[1] - 1
    candidates = scratch.candidates
    top = Heap(keys=np.empty(ef_construction + 1, dtype=np.float32),
               values=np.empty(ef_construction + 1, dtype=np.int32))
    top_keys = top.keys
    top_values = top.values
    fresh = np.empty(max_links0, dtype=np.int32)
    no_ring = np.empty(0, dtype=np.int32)
    buffers = LinkBuffers(
        ranked=Neighbours(distances=np.empty(ef_construction + 1, dtype=np.float32),
                          nodes=np.empty(ef_construction + 1, dtype=np.int32)),
        selected=np.empty(m, dtype=np.int32),
        pool=Neighbours(distances=np.empty(max_links0 + 1, dtype=np.float32),
                        nodes=np.empty(max_links0 + 1, dtype=np.int32)),
        kept=np.empty(max_links0, dtype=np.int32))
    no_filter = np.zeros(0, dtype=np.uint8)
    may_exclude = state[2] > 0
    # the beam may walk on the codes; what it finds is measured again exactly before any link is made
    code_rows = codes.codes
    scales = codes.scales
    for t in range(nodes.shape[0]):
        node = nodes[t]
        level = node_levels[t]
        _lock(node_locks, node)
        links0[node, 0] = 0
        for layer in range(1, level + 1):
            upper[upper_start[node] + layer - 1, 0] = 0
        levels[node] = level
        _unlock(node_locks, node)
        _lock(entry_lock, 0)
        entry = state[0]
        max_level = state[1]
        if entry < 0:
            state[0] = node
            state[1] = level
            _unlock(entry_lock, 0)
            continue
        # a node above the top layer becomes the entry point: hold the lock until it is linked
        # (hnswlib's global lock), so no other insert starts from it half-linked
        promoted = level > max_level
        if not promoted:
            _unlock(entry_lock, 0)
        node_row = node * row_stride + row_offset
        current = entry
        if level < max_level:
            current = _greedy_descent(vectors, node_row, vectors, row_stride, row_offset, code_rows, scales,
                                      use_codes, upper, upper_start, entry=entry, from_layer=max_level,
                                      to_layer=level + 1)
        for layer in range(min(level, max_level), -1, -1):
            tag = _next_visit_tag(visited, visit_state)
            visited[node] = tag  # never link a node to itself
            n_top, _ = _search_layer(vectors, node_row, vectors, row_stride, row_offset, code_rows, scales,
                                     use_codes, links0 if layer == 0 else upper, upper_start, graph.deleted,
                                     no_filter, may_exclude, visited, candidates, top_keys, top_values, fresh,
                                     no_ring, 0, entry=current, layer=layer, ef=ef_construction, tag=tag)
            if n_top > 0:
                _rank_found(top, n_top, buffers.ranked, use_codes, source, node_row)
                current = _connect(source, graph, locks, buffers, node=node, layer=layer, n_ranked=n_top)
        if promoted:
            state[0] = node
            state[1] = level
            _unlock(entry_lock, 0)


@njit(cache=True)
def _check_shapes(dim, queries, results):
    """The one swap that types cannot tell, of the queries and the similarities (float32 matrices
    both), shows in their shapes unless k equals the dimension."""
    if (queries.shape[1] != dim or results.nodes.shape != results.similarities.shape
            or results.nodes.shape[0] != queries.shape[0]):
        raise ValueError("queries must be (n, dim) and both outputs (n, k)")


@njit(cache=True, inline="always")
def _rank_exactly(queries, query_row, vectors, row_stride, row_offset, top_values, n_top, evicted, n_evicted,
                  best_keys, best_values, k):
    """The best ``k`` of the ``n_top`` nodes of ``top_values`` and ``n_evicted`` of ``evicted`` by exact
    distance, into the max-heap ``best_keys``/``best_values`` (keys: exact distances); returns their
    count. Rows are requested two nodes ahead."""
    n_all = n_top + n_evicted
    for r in range(min(2, n_all)):
        _prefetch_row(vectors, (top_values[r] if r < n_top else evicted[r - n_top]) * row_stride + row_offset)
    n_best = 0
    for r in range(n_all):
        if r + 2 < n_all:
            ahead = top_values[r + 2] if r + 2 < n_top else evicted[r + 2 - n_top]
            _prefetch_row(vectors, ahead * row_stride + row_offset)
        node = top_values[r] if r < n_top else evicted[r - n_top]
        distance = -_dot(vectors, node * row_stride + row_offset, queries, query_row)
        if n_best < k:
            n_best = _heap_push(best_keys, best_values, n_best, distance, node)
        elif distance < best_keys[0]:
            _heap_replace_top(best_keys, best_values, n_best, distance, node)
    return n_best


@njit(cache=True, inline="always")
def _search_query(queries, query_row, searcher, allowed, ef, k):
    """The k nearest eligible nodes to row ``query_row`` of ``queries``: a greedy descent of the upper
    layers and an ``ef`` beam on layer 0, on the codes when the searcher has ``use_codes`` (the
    beam's nodes are then ranked exactly). Leaves them in the max-heap ``searcher.best`` (keys: exact
    distances) and returns their count. ``allowed``: a uint8 mask over slots, or empty. The arrays
    are taken out of the searcher here, once, and passed on as plain arrays: a named tuple built or
    passed per call costs reference counting on each of its arrays, which came to more than the
    walk itself on a small graph."""
    graph = searcher.graph
    state = graph.state
    entry = state[0]
    if entry < 0:
        return 0
    vectors = searcher.source.vectors
    row_stride = searcher.source.row_stride
    row_offset = searcher.source.row_offset
    codes = searcher.codes.codes
    scales = searcher.codes.scales
    use_codes = searcher.use_codes
    upper_start = graph.upper_start
    current = _greedy_descent(queries, query_row, vectors, row_stride, row_offset, codes, scales, use_codes,
                              graph.upper, upper_start, entry=entry, from_layer=state[1], to_layer=1)
    scratch = searcher.scratch
    visited = scratch.visited
    tag = _next_visit_tag(visited, scratch.visit_state)
    top_values = searcher.top.values
    evicted = searcher.evicted
    n_top, n_evicted = _search_layer(
        queries, query_row, vectors, row_stride, row_offset, codes, scales, use_codes, graph.links0, upper_start,
        graph.deleted, allowed, allowed.shape[0] > 0 or state[2] > 0, visited, scratch.candidates,
        searcher.top.keys, top_values, searcher.fresh, evicted, _ring_length(ef, use_codes), entry=current,
        layer=0, ef=ef, tag=tag)
    best_keys = searcher.best.keys
    best_values = searcher.best.values
    if use_codes:
        return _rank_exactly(queries, query_row, vectors, row_stride, row_offset, top_values, n_top, evicted,
                             n_evicted, best_keys, best_values, k)
    top_keys = searcher.top.keys
    while n_top > k:
        n_top = _heap_pop(top_keys, top_values, n_top)
    for r in range(n_top):  # a max-heap stays one when copied in order
        best_keys[r] = top_keys[r]
        best_values[r] = top_values[r]
    return n_top


@njit(cache=True, inline="always")
def _ring_length(ef, use_codes):
    """How many of the nodes a beam on the codes let go last are ranked exactly too."""
    return max(2, ef // 2) if use_codes else 0


@njit(cache=True, inline="always")
def _fit(searcher, ef, k):
    """The limits actually used for beams of ``ef`` and k results (ef and k beyond the slots change
    nothing), with the searcher's heaps and ring grown to fit them."""
    slots = max(searcher.graph.levels.shape[0], 1)
    k = min(k, slots)
    ef = min(max(ef, k), slots)
    if searcher.top.keys.shape[0] < ef + 1:
        searcher.top = Heap(keys=np.empty(ef + 1, dtype=np.float32), values=np.empty(ef + 1, dtype=np.int32))
    if searcher.best.keys.shape[0] < k + 1:
        searcher.best = Heap(keys=np.empty(k + 1, dtype=np.float32), values=np.empty(k + 1, dtype=np.int32))
    if searcher.evicted.shape[0] < _ring_length(ef, searcher.use_codes):
        searcher.evicted = np.empty(_ring_length(ef, searcher.use_codes), dtype=np.int32)
    return ef, k


@njit(nogil=True, cache=True)
def search_one(searcher, query, k, ef, out_ids, out_similarities):
    """The single-query fast path: the ids (``out_ids``, int64) and similarities of the k nearest live
    nodes to ``query`` (float32[dim], any strides), best first; returns how many were found (the rest
    of the outputs is left as it was). Same walk, same answer as a row of ``search_batch``. The
    outputs come from the caller: arrays made here would cost more to hand over to Python than the
    rest of a call."""
    query_buffer = searcher.query
    if query.shape[0] != query_buffer.shape[1] or k < 1 or out_ids.shape[0] < k or out_similarities.shape[0] < k:
        raise ValueError("the query must be (dim,), k >= 1 and both outputs (k,)")
    for i in range(query.shape[0]):
        query_buffer[0, i] = query[i]
    ef, k = _fit(searcher, ef, k)
    n = _search_query(query_buffer, 0, searcher, searcher.no_filter, ef, k)
    best_keys = searcher.best.keys
    best_values = searcher.best.values
    id_stride = searcher.id_stride
    id_offset = searcher.id_offset
    for r in range(n - 1, -1, -1):
        out_ids[r] = best_values[0] * id_stride + id_offset
        out_similarities[r] = -best_keys[0]
        _heap_pop(best_keys, best_values, r + 1)
    return n


@njit(nogil=True, cache=True)
def search_batch(searcher, queries, ef, allowed, out_nodes, out_similarities):
    """Answer each query row independently (see ``SearchRequest``): the best k of an ``ef`` beam
    into the outputs (see ``Results``), padded with -1 / -inf."""
    _group(SearchRequest, (queries, ef, allowed))
    _check_shapes(searcher.query.shape[1], queries, _group(Results, (out_nodes, out_similarities)))
    ef, k = _fit(searcher, ef, out_nodes.shape[1])
    best_keys = searcher.best.keys
    best_values = searcher.best.values
    for qi in range(queries.shape[0]):
        out_nodes[qi, :] = -1
        out_similarities[qi, :] = -np.inf
        n = _search_query(queries, qi, searcher, allowed, ef, k)
        for r in range(n - 1, -1, -1):
            out_nodes[qi, r] = best_values[0]
            out_similarities[qi, r] = -best_keys[0]
            _heap_pop(best_keys, best_values, r + 1)


@njit(nogil=True, cache=True)
def encode(source, codes, slots):
    """Write the codes and scales of ``slots`` from their vectors (see ``Codes``)."""
    source = _group(VectorSource, source)
    codes = _group(Codes, codes)
    vectors = source.vectors
    row_stride = source.row_stride
    row_offset = source.row_offset
    code_rows = codes.codes
    scales = codes.scales
    for t in range(slots.shape[0]):
        slot = slots[t]
        row = slot * row_stride + row_offset
        largest = np.float32(0.0)
        for i in range(vectors.shape[1]):
            largest = max(largest, abs(vectors[row, i]))
        if not largest > 0 or not np.isfinite(largest):
            code_rows[slot, :] = 0
            scales[slot] = 0
            continue
        inverse = np.float32(127.0) / largest
        for i in range(vectors.shape[1]):
            code_rows[slot, i] = np.int8(min(max(np.floor(vectors[row, i] * inverse + np.float32(0.5)), -127), 127))
        scales[slot] = largest / np.float32(127.0)


@njit(cache=True)
def new_searcher(source, graph, codes, use_codes, scratch, id_stride, id_offset):
    """A ``Searcher`` over these groups (checked here), for one concurrent search at a time."""
    source = _group(VectorSource, source)
    graph = _group(Graph, graph)
    codes = _group(Codes, codes)
    scratch = _group(Scratch, scratch)
    if codes.codes.shape[1] != source.vectors.shape[1] and use_codes:
        raise ValueError("the codes and the vectors differ in dimension")
    if use_codes and codes.codes.shape[0] < graph.levels.shape[0]:
        raise ValueError("codes must cover every slot")
    if scratch.visited.shape[0] < graph.levels.shape[0] or scratch.candidates.shape[0] <= graph.levels.shape[0]:
        raise ValueError("the scratch must cover every slot")
    initial = 65
    return Searcher(source, codes, use_codes, graph, scratch, id_stride, id_offset,
                    Heap(keys=np.empty(initial, dtype=np.float32), values=np.empty(initial, dtype=np.int32)),
                    Heap(keys=np.empty(initial, dtype=np.float32), values=np.empty(initial, dtype=np.int32)),
                    np.empty(graph.links0.shape[1] - 1, dtype=np.int32),
                    np.empty((1, source.vectors.shape[1]), dtype=np.float32), np.empty(initial, dtype=np.int32),
                    np.zeros(0, dtype=np.uint8))


@njit(nogil=True, cache=True)
def exact_search(source, queries, candidates, out_nodes, out_similarities):
    """Brute-force top-k over the ``candidates`` (slots; used when a filter leaves few of them)."""
    source = _group(VectorSource, source)
    _group(ExactRequest, (queries, candidates))
    _check_shapes(source.vectors.shape[1], queries, _group(Results, (out_nodes, out_similarities)))
    vectors = source.vectors
    row_stride = source.row_stride
    row_offset = source.row_offset
    k = out_nodes.shape[1]
    top_keys = np.empty(k + 1, dtype=np.float32)
    top_values = np.empty(k + 1, dtype=np.int32)
    for qi in range(queries.shape[0]):
        n_top = 0
        for c in range(candidates.shape[0]):
            node = candidates[c]
            distance = -_dot(vectors, node * row_stride + row_offset, queries, qi)
            if n_top < k or distance < top_keys[0]:
                n_top = _heap_push(top_keys, top_values, n_top, distance, node)
                if n_top > k:
                    n_top = _heap_pop(top_keys, top_values, n_top)
        out_nodes[qi, :] = -1
        out_similarities[qi, :] = -np.inf
        for r in range(n_top - 1, -1, -1):
            out_nodes[qi, r] = top_values[0]
            out_similarities[qi, r] = -top_keys[0]
            _heap_pop(top_keys, top_values, r + 1)


@njit(nogil=True, cache=True)
def repair_links(source, graph, scratch, first, stop):
    """For every live node in slots [first, stop) whose lists point at tombstones, rebuild those lists
    from its live neighbours and the live neighbours of its deleted ones. Tombstoned nodes keep their
    own lists (other nodes still read them) until the caller drops them after the last chunk."""
    source = _group(VectorSource, source)
    graph = _group(Graph, graph)
    scratch = _group(Scratch, scratch)
    vectors = source.vectors
    row_stride = source.row_stride
    row_offset = source.row_offset
    links0 = graph.links0
    upper = graph.upper
    upper_start = graph.upper_start
    levels = graph.levels
    deleted = graph.deleted
    visited = scratch.visited
    visit_state = scratch.visit_state
    max_links0 = links0.shape[1] - 1
    pool_capacity = max_links0 * (max_links0 + 1)
    pool_distances = np.empty(pool_capacity, dtype=np.float32)
    pool_nodes = np.empty(pool_capacity, dtype=np.int32)
    ranked = Neighbours(distances=np.empty(pool_capacity, dtype=np.float32),
                        nodes=np.empty(pool_capacity, dtype=np.int32))
    ranked_distances = ranked.distances
    ranked_nodes = ranked.nodes
    kept = np.empty(max_links0, dtype=np.int32)
    for node in range(first, stop):
        if levels[node] < 0 or deleted[node] != 0:
            continue
        node_row = node * row_stride + row_offset
        for layer in range(levels[node] + 1):
            lists = links0 if layer == 0 else upper
            row = _list_row(node, layer, upper_start)
            count = lists[row, 0]
            stale = False
            for j in range(1, count + 1):
                if deleted[lists[row, j]] != 0:
                    stale = True
                    break
            if not stale:
                continue
            tag = _next_visit_tag(visited, visit_state)
            visited[node] = tag
            n_pool = 0
            for j in range(1, count + 1):
                neighbour = lists[row, j]
                if deleted[neighbour] == 0:
                    if visited[neighbour] != tag:
                        visited[neighbour] = tag
                        pool_nodes[n_pool] = neighbour
                        n_pool += 1
                    continue
                second_row = _list_row(neighbour, layer, upper_start)
                for jj in range(1, lists[second_row, 0] + 1):
                    candidate = lists[second_row, jj]
                    if deleted[candidate] == 0 and visited[candidate] != tag:
                        visited[candidate] = tag
                        pool_nodes[n_pool] = candidate
                        n_pool += 1
            for p in range(n_pool):
                pool_distances[p] = -_dot(vectors, pool_nodes[p] * row_stride + row_offset, vectors, node_row)
            order = np.argsort(pool_distances[:n_pool])
            for p in range(n_pool):
                ranked_distances[p] = pool_distances[order[p]]
                ranked_nodes[p] = pool_nodes[order[p]]
            n_kept = _select_neighbours(ranked, source, kept, n_cand=n_pool, max_links=lists.shape[1] - 1)
            _set_links(lists, kept, row=row, n=n_kept)


def single_query_entry(searcher: Searcher, dim: int):
    """``search_one`` compiled for this searcher's type and a float32[dim] query of any strides, as the
    bare compiled function: numba's dispatcher types every argument on every call, which costs more
    than the rest of a call, and these types never change. The caller must pass exactly those types
    (a ``Searcher`` of this type, a native aligned float32 1-D array, two ints, a C-contiguous int64
    and float32 array of at least k items each): the bare function
    does not check them. Falls back to the dispatcher where numba keeps its compiled code elsewhere."""
    probe = np.zeros(2 * dim, dtype=np.float32)[::2]  # strided: typed with layout "A", which takes any
    out_ids, out_similarities = np.empty(1, dtype=np.int64), np.empty(1, dtype=np.float32)
    search_one(searcher, probe, 1, 1, out_ids, out_similarities)
    try:
        return search_one.overloads[(typeof(searcher), typeof(probe), types.int64, types.int64, typeof(out_ids),
                                     typeof(out_similarities))].entry_point
    except (KeyError, AttributeError):
        return search_one
