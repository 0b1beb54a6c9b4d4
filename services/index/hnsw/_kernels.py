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
``Scratch``  one concurrent walk's working memory (hnswlib's visited-list pool): ``visited``
    uint16[slots] tags and ``visit_state`` int64[1], the last tag handed out, so nothing is cleared
    per query; ``cand_keys`` float32 / ``cand_values`` int32 [slots + 1], the candidate heap, with
    room for every slot (a node enters it at most once per walk), so it never grows
``Results``  the outputs of a search: per query row the best k ``nodes`` int32[n, k] and their
    ``similarities`` float32[n, k]

The kernels' entry points are ``insert_batch(source, graph, scratch, ...)``,
``search_batch(source, graph, scratch, ..., out_nodes, out_similarities)``,
``exact_search(source, ..., out_nodes, out_similarities)`` and
``repair_links(source, graph, scratch, first, stop)``. Their few other arguments are checked
together, as ``InsertRequest``, ``SearchRequest``, ``ExactRequest`` and ``Results``, whose fields
are each of a different kind, so that any order but the right one fails to compile (the queries and
the similarities, both float32 matrices, are told apart by their shapes at run time). M is never
passed (it is
``upper.shape[1] - 1``), nor k (the width of the outputs), nor whether there are tombstones
(``state[2]``). Inside, the walks group their buffers too (``Walk``, ``Heap``, ``Neighbours``,
``LinkBuffers``, ``Filter``), and calls between them pass by keyword the integers that could be
swapped (entry, layer, ef, tag, counts); keywords cost nothing in compiled code.

A group reaches an entry point as a plain tuple of its fields in field order (``HNSWIndex`` keeps
one for each long-lived group, made from the named tuple): numba's dispatcher types an exact tuple
about as fast as separate arguments, while a named tuple costs it some 0.15 µs per field on every
call. The entry point names it again with ``_group``, which checks at compile time that it is a
tuple of the right length whose fields have the declared dtypes and dimensions (a named tuple of the
right class is checked and taken as it is): a group passed in another's place, or a field of the
wrong kind, is a ``TypingError``, never a run over the wrong arrays. Grouping costs nothing once
compiled: the fields become plain values in registers.

Every link points at a node that is in the graph (``levels >= 0``). Distances are negated dot
products: lower is closer and similarity is exactly ``-distance``.

Hot loops address rows of 2-D arrays by index and never slice or reassign arrays, and fields are read
out of their groups once, before the loops: numba reference-counts array views and fields taken from
a group with atomic calls, which cost as much as the distance computations here. While expanding a
node, the unvisited neighbours are gathered first and their vectors prefetched together, so their
memory loads overlap.
"""

import typing
from typing import Annotated, NamedTuple

import numpy as np
from llvmlite import ir
from numba import from_dtype, njit, types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic, overload

FAR = np.float32(3.0e38)  # a finite "infinity": comparisons stay well defined under any math flags


class _Array(NamedTuple):
    """A field's declared kind: an array of this dtype and number of dimensions (any layout)."""

    dtype: type
    ndim: int


Int32Matrix = Annotated[np.ndarray, _Array(np.int32, 2)]
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


class Scratch(NamedTuple):
    """One concurrent walk's working memory, covering every slot."""

    visited: UInt16Vector
    visit_state: Int64Vector
    cand_keys: Float32Vector
    cand_values: Int32Vector


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
    """Insert ``nodes`` (slots) at the top layers ``node_levels`` with a beam of ``ef_construction``."""

    nodes: Int32Vector
    node_levels: Int64Vector
    ef_construction: int


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


class Filter(NamedTuple):
    """Which nodes a walk may return: not tombstoned, and allowed when ``use_allowed``.
    ``may_exclude``: some node may be ineligible, so the walk must go on until it has ``ef``."""

    allowed: UInt8Vector
    use_allowed: bool
    may_exclude: bool


class Walk(NamedTuple):
    """The buffers of one beam search: visited tags, the candidate heap, the result heap and room to
    gather the unvisited neighbours of one node."""

    visited: UInt16Vector
    candidates: Heap
    top: Heap
    fresh: Int32Vector


class LinkBuffers(NamedTuple):
    """Room for linking one node: its sorted candidates and picks, and the pool and picks used to
    re-prune a neighbour's overflowing list."""

    ranked: Neighbours
    selected: Int32Vector
    pool: Neighbours
    kept: Int32Vector


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


@intrinsic
def _prefetch(typingctx, matrix, row, column):
    """Hint the CPU to load the cache line holding ``matrix[row, column]`` (like _mm_prefetch)."""

    def codegen(context, builder, signature, args):
        matrix_type, row_type, column_type = signature.args
        matrix_value = context.make_array(matrix_type)(context, builder, args[0])
        indices = [context.cast(builder, args[1], row_type, types.intp),
                   context.cast(builder, args[2], column_type, types.intp)]
        pointer = cgutils.get_item_pointer2(
            context, builder, data=matrix_value.data,
            shape=cgutils.unpack_tuple(builder, matrix_value.shape),
            strides=cgutils.unpack_tuple(builder, matrix_value.strides),
            layout=matrix_type.layout, inds=indices, wraparound=False)
        byte_pointer = ir.IntType(8).as_pointer()
        int32 = ir.IntType(32)
        prefetch_type = ir.FunctionType(ir.VoidType(), [byte_pointer, int32, int32, int32])
        prefetch = cgutils.get_or_insert_function(builder.module, prefetch_type, "llvm.prefetch.p0")
        # read access, high temporal locality, data cache
        builder.call(prefetch, [builder.bitcast(pointer, byte_pointer), int32(0), int32(3), int32(1)])
        return context.get_dummy_value()

    return types.void(matrix, row, column), codegen


@njit(cache=True)
def _prefetch_vector(vectors, row):
    for column in range(0, min(vectors.shape[1], 32), 16):  # one 64-byte line per 16 floats
        _prefetch(vectors, row, column)


@njit(cache=True, fastmath={"reassoc", "contract"})
def _dot(a, a_row, b, b_row):
    # rows are addressed by index, not sliced: a view per call would cost reference counting;
    # reassociation lets LLVM spread the sum over several SIMD accumulators
    total = np.float32(0.0)
    for i in range(a.shape[1]):
        total += a[a_row, i] * b[b_row, i]
    return total


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
    i = 0
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


@njit(cache=True)
def _next_visit_tag(visited, visit_state):
    """A fresh tag for ``visited`` so that no per-query clearing is needed (hnswlib's VisitedList)."""
    tag = visit_state[0] + 1
    if tag > 65535:
        visited[:] = 0
        tag = 1
    visit_state[0] = tag
    return tag


@njit(cache=True)
def _new_walk(scratch, ef, max_links0):
    """The buffers of beam searches keeping ``ef`` results over lists of up to ``max_links0`` links."""
    return Walk(visited=scratch.visited,
                candidates=Heap(keys=scratch.cand_keys, values=scratch.cand_values),
                top=Heap(keys=np.empty(ef + 1, dtype=np.float32), values=np.empty(ef + 1, dtype=np.int32)),
                fresh=np.empty(max_links0, dtype=np.int32))


@njit(cache=True)
def _search_layer(queries, query_row, source, graph, walk, filter, entry, layer, ef, tag):
    """Beam search of one layer from ``entry`` for row ``query_row`` of ``queries``, over nodes that
    carry ``tag`` in ``walk.visited`` once seen. Leaves the best ``ef`` eligible nodes in the max-heap
    ``walk.top`` (ineligible ones, tombstoned or filtered out, are walked through but not kept) and
    returns their count. The candidate heap holds at most one entry per visited node, so capacity for
    every slot means it never has to grow."""
    vectors = source.vectors
    row_stride = source.row_stride
    row_offset = source.row_offset
    lists = graph.links0 if layer == 0 else graph.upper
    upper_start = graph.upper_start
    deleted = graph.deleted
    allowed = filter.allowed
    use_allowed = filter.use_allowed
    may_exclude = filter.may_exclude
    visited = walk.visited
    cand_keys = walk.candidates.keys
    cand_values = walk.candidates.values
    top_keys = walk.top.keys
    top_values = walk.top.values
    fresh = walk.fresh

    distance = -_dot(vectors, entry * row_stride + row_offset, queries, query_row)
    visited[entry] = tag
    n_top = 0
    if deleted[entry] == 0 and (not use_allowed or allowed[entry] != 0):
        n_top = _heap_push(top_keys, top_values, 0, distance, entry)
    lower_bound = top_keys[0] if n_top > 0 else FAR
    # the candidate queue is a min-heap by distance, stored as a max-heap of negated distances
    n_cand = _heap_push(cand_keys, cand_values, 0, -distance, entry)
    while n_cand > 0:
        if -cand_keys[0] > lower_bound and (n_top == ef or not may_exclude):
            break
        current = cand_values[0]
        n_cand = _heap_pop(cand_keys, cand_values, n_cand)
        if n_cand > 0:  # the next candidate's list is read soon
            _prefetch(lists, _list_row(cand_values[0], layer, upper_start), 0)
        row = _list_row(current, layer, upper_start)
        # first gather the unvisited neighbours and request all their vectors, so that the memory
        # loads overlap, then compute the distances
        n_fresh = 0
        for j in range(1, lists[row, 0] + 1):
            node = lists[row, j]
            if visited[node] != tag:
                visited[node] = tag
                fresh[n_fresh] = node
                n_fresh += 1
                _prefetch_vector(vectors, node * row_stride + row_offset)
        for f in range(n_fresh):
            node = fresh[f]
            distance = -_dot(vectors, node * row_stride + row_offset, queries, query_row)
            if n_top < ef or distance < lower_bound:
                n_cand = _heap_push(cand_keys, cand_values, n_cand, -distance, node)
                if deleted[node] == 0 and (not use_allowed or allowed[node] != 0):
                    if n_top < ef:
                        n_top = _heap_push(top_keys, top_values, n_top, distance, node)
                    else:  # full, and closer than the worst kept: it takes the worst one's place
                        _heap_replace_top(top_keys, top_values, n_top, distance, node)
                    lower_bound = top_keys[0]
    return n_top


@njit(cache=True)
def _greedy_descent(queries, query_row, source, graph, entry, from_layer, to_layer):
    """Walk to the closest node on each upper layer from ``from_layer`` down to ``to_layer`` >= 1."""
    vectors = source.vectors
    row_stride = source.row_stride
    row_offset = source.row_offset
    upper = graph.upper
    upper_start = graph.upper_start
    current = entry
    current_distance = -_dot(vectors, entry * row_stride + row_offset, queries, query_row)
    for layer in range(from_layer, to_layer - 1, -1):
        changed = True
        while changed:
            changed = False
            row = upper_start[current] + layer - 1
            for j in range(1, upper[row, 0] + 1):
                node = upper[row, j]
                distance = -_dot(vectors, node * row_stride + row_offset, queries, query_row)
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
def _connect(source, graph, top, buffers, node, layer, n_top):
    """Link ``node`` to the heuristic's pick among the ``n_top`` found on ``layer`` (the max-heap
    ``top``, emptied here) and link them back, re-pruning any neighbour list that overflows. Returns
    the closest pick (the next entry)."""
    vectors = source.vectors
    row_stride = source.row_stride
    row_offset = source.row_offset
    lists = graph.links0 if layer == 0 else graph.upper
    upper_start = graph.upper_start
    m = graph.upper.shape[1] - 1
    top_keys = top.keys
    top_values = top.values
    ranked = buffers.ranked
    ranked_distances = ranked.distances
    ranked_nodes = ranked.nodes
    selected = buffers.selected
    pool = buffers.pool
    pool_distances = pool.distances
    pool_nodes = pool.nodes
    kept = buffers.kept
    for r in range(n_top - 1, -1, -1):
        ranked_distances[r] = top_keys[0]
        ranked_nodes[r] = top_values[0]
        _heap_pop(top_keys, top_values, r + 1)
    n_selected = _select_neighbours(ranked, source, selected, n_cand=n_top, max_links=m)
    _set_links(lists, selected, row=_list_row(node, layer, upper_start), n=n_selected)
    max_links = lists.shape[1] - 1
    node_row = node * row_stride + row_offset
    for s in range(n_selected):
        other = selected[s]
        row = _list_row(other, layer, upper_start)
        count = lists[row, 0]
        if count < max_links:
            lists[row, 1 + count] = node
            lists[row, 0] = count + 1
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
    return selected[0]


@njit(nogil=True, cache=True)
def insert_batch(source, graph, scratch, nodes, node_levels, ef_construction):
    """Insert ``nodes`` one after another (hnswlib's addPoint; see ``InsertRequest``). Their
    upper-layer rows must be allocated in ``upper_start`` and zeroed; their vectors must already be
    readable."""
    source = _group(VectorSource, source)
    graph = _group(Graph, graph)
    scratch = _group(Scratch, scratch)
    _group(InsertRequest, (nodes, node_levels, ef_construction))
    vectors = source.vectors
    row_stride = source.row_stride
    row_offset = source.row_offset
    links0 = graph.links0
    upper = graph.upper
    upper_start = graph.upper_start
    levels = graph.levels
    state = graph.state
    visited = scratch.visited
    visit_state = scratch.visit_state
    m = upper.shape[1] - 1
    max_links0 = links0.shape[1] - 1
    walk = _new_walk(scratch, ef_construction, max_links0)
    top = walk.top
    buffers = LinkBuffers(
        ranked=Neighbours(distances=np.empty(ef_construction + 1, dtype=np.float32),
                          nodes=np.empty(ef_construction + 1, dtype=np.int32)),
        selected=np.empty(m, dtype=np.int32),
        pool=Neighbours(distances=np.empty(max_links0 + 1, dtype=np.float32),
                        nodes=np.empty(max_links0 + 1, dtype=np.int32)),
        kept=np.empty(max_links0, dtype=np.int32))
    no_filter = Filter(allowed=np.zeros(0, dtype=np.uint8), use_allowed=False, may_exclude=state[2] > 0)
    for t in range(nodes.shape[0]):
        node = nodes[t]
        level = node_levels[t]
        links0[node, 0] = 0
        for layer in range(1, level + 1):
            upper[upper_start[node] + layer - 1, 0] = 0
        levels[node] = level
        entry = state[0]
        max_level = state[1]
        if entry < 0:
            state[0] = node
            state[1] = level
            continue
        node_row = node * row_stride + row_offset
        current = entry
        if level < max_level:
            current = _greedy_descent(vectors, node_row, source, graph,
                                      entry=entry, from_layer=max_level, to_layer=level + 1)
        for layer in range(min(level, max_level), -1, -1):
            tag = _next_visit_tag(visited, visit_state)
            visited[node] = tag  # never link a node to itself
            n_top = _search_layer(vectors, node_row, source, graph, walk, no_filter,
                                  entry=current, layer=layer, ef=ef_construction, tag=tag)
            if n_top > 0:
                current = _connect(source, graph, top, buffers, node=node, layer=layer, n_top=n_top)
        if level > max_level:
            state[0] = node
            state[1] = level


@njit(cache=True)
def _check_shapes(source, queries, results):
    """The one swap that types cannot tell, of the queries and the similarities (float32 matrices
    both), shows in their shapes unless k equals the dimension."""
    if (queries.shape[1] != source.vectors.shape[1] or results.nodes.shape != results.similarities.shape
            or results.nodes.shape[0] != queries.shape[0]):
        raise ValueError("queries must be (n, dim) and both outputs (n, k)")


@njit(nogil=True, cache=True)
def search_batch(source, graph, scratch, queries, ef, allowed, out_nodes, out_similarities):
    """Answer each query row independently (see ``SearchRequest``): the best k of an ``ef`` beam
    into the outputs (see ``Results``)."""
    source = _group(VectorSource, source)
    graph = _group(Graph, graph)
    scratch = _group(Scratch, scratch)
    _group(SearchRequest, (queries, ef, allowed))
    _check_shapes(source, queries, _group(Results, (out_nodes, out_similarities)))
    k = out_nodes.shape[1]
    ef = max(ef, k)
    walk = _new_walk(scratch, ef, graph.links0.shape[1] - 1)
    top_keys = walk.top.keys
    top_values = walk.top.values
    use_allowed = allowed.shape[0] > 0
    filter = Filter(allowed=allowed, use_allowed=use_allowed, may_exclude=use_allowed or graph.state[2] > 0)
    visited = scratch.visited
    visit_state = scratch.visit_state
    entry = graph.state[0]
    max_level = graph.state[1]
    for qi in range(queries.shape[0]):
        out_nodes[qi, :] = -1
        out_similarities[qi, :] = -np.inf
        if entry < 0:
            continue
        current = _greedy_descent(queries, qi, source, graph, entry=entry, from_layer=max_level, to_layer=1)
        tag = _next_visit_tag(visited, visit_state)
        n_top = _search_layer(queries, qi, source, graph, walk, filter, entry=current, layer=0, ef=ef, tag=tag)
        while n_top > k:
            n_top = _heap_pop(top_keys, top_values, n_top)
        for r in range(n_top - 1, -1, -1):
            out_nodes[qi, r] = top_values[0]
            out_similarities[qi, r] = -top_keys[0]
            _heap_pop(top_keys, top_values, r + 1)


@njit(nogil=True, cache=True)
def exact_search(source, queries, candidates, out_nodes, out_similarities):
    """Brute-force top-k over the ``candidates`` (slots; used when a filter leaves few of them)."""
    source = _group(VectorSource, source)
    _group(ExactRequest, (queries, candidates))
    _check_shapes(source, queries, _group(Results, (out_nodes, out_similarities)))
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
