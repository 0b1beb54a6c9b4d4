"""Compiled hot loops of the HNSW graph (numba, nopython, GIL released, cached on disk).

The structure mirrors hnswlib's ``hnswalg.h``: ``_search_layer`` is ``searchBaseLayer(ST)``,
``_select_neighbours`` is ``getNeighborsByHeuristic2``, ``_connect`` is ``mutuallyConnectNewElement``
and ``insert_batch`` is ``addPoint``. ``repair_links`` drops tombstoned nodes from neighbour lists
(FreshDiskANN-style consolidation: candidates are the live neighbours plus the live neighbours of
the deleted ones, pruned with the same heuristic).

Graph arrays (owned and grown by ``HNSWIndex``; every kernel gets them explicitly):

``links0``       int32[slots, 1 + 2M]  layer-0 neighbour lists; column 0 holds the count
``upper``        int32[rows, 1 + M]    upper-layer lists; node i's list for layer l >= 1 is row
                                       ``upper_start[i] + l - 1``
``upper_start``  int32[slots]
``levels``       int8[slots]           top layer of each node; -1 while the slot is not in the graph
``deleted``      uint8[slots]          tombstones: still traversed, never returned
``state``        int64[2]              entry point (-1 when empty) and its level

Every link points at a node that is in the graph (``levels >= 0``). The vector of slot ``s`` is
row ``s * row_stride + row_offset`` of ``vectors`` (an external matrix shared with other processes,
or the index's own storage with stride 1 and offset 0).

Distances are negated dot products: lower is closer and similarity is exactly ``-distance``.

Each concurrent walk brings its own scratch (hnswlib's visited-list pool): ``visited`` uint16 tags
with a counter, so nothing is cleared per query, and a candidate heap with room for every slot (a
node enters it at most once per walk), so it never grows. Hot loops address rows of 2-D arrays by
index and never slice or reassign arrays: numba reference-counts array views with atomic calls,
which cost as much as the distance computations here. While expanding a node, the unvisited
neighbours are gathered first and their vectors prefetched together, so their memory loads overlap.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

FAR = np.float32(3.0e38)  # a finite "infinity": comparisons stay well defined under any math flags


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
def _search_layer(queries, query_row, entry, layer, ef, vectors, row_stride, row_offset, lists, upper_start,
                  deleted, allowed, use_allowed, may_exclude, visited, tag,
                  cand_keys, cand_values, top_keys, top_values, fresh):
    """Beam search of one layer (``lists`` is ``links0`` or ``upper``) from ``entry``. Leaves the best
    ``ef`` eligible nodes in the max-heap ``top_keys``/``top_values`` (ineligible ones, tombstoned or
    filtered out, are walked through but not kept) and returns their count. The candidate heap holds
    at most one entry per visited node, so capacity for every slot means it never has to grow."""
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
def _greedy_descent(queries, query_row, entry, from_layer, to_layer, vectors, row_stride, row_offset,
                    upper, upper_start):
    """Walk to the closest node on each upper layer from ``from_layer`` down to ``to_layer`` >= 1."""
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
def _select_neighbours(cand_distances, cand_nodes, n_cand, max_links, vectors, row_stride, row_offset,
                       selected):
    """The neighbour-selection heuristic: walking candidates from the closest, keep one only if it is
    closer to the base than to every node already kept. Candidates must be sorted by distance."""
    if n_cand <= max_links:
        for i in range(n_cand):
            selected[i] = cand_nodes[i]
        return n_cand
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
def _set_links(lists, row, nodes, n):
    for i in range(n):
        lists[row, 1 + i] = nodes[i]
    lists[row, 0] = n


@njit(cache=True)
def _connect(node, layer, m, n_top, top_keys, top_values, vectors, row_stride, row_offset, lists,
             upper_start, sorted_distances, sorted_nodes, selected, pool_distances, pool_nodes, kept):
    """Link ``node`` to the heuristic's pick among the ``n_top`` found on ``layer`` and link them
    back, re-pruning any neighbour list that overflows. Returns the closest pick (the next entry)."""
    for r in range(n_top - 1, -1, -1):
        sorted_distances[r] = top_keys[0]
        sorted_nodes[r] = top_values[0]
        _heap_pop(top_keys, top_values, r + 1)
    n_selected = _select_neighbours(sorted_distances, sorted_nodes, n_top, m, vectors, row_stride,
                                    row_offset, selected)
    _set_links(lists, _list_row(node, layer, upper_start), selected, n_selected)
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
        n_kept = _select_neighbours(pool_distances, pool_nodes, count + 1, max_links, vectors,
                                    row_stride, row_offset, kept)
        _set_links(lists, row, kept, n_kept)
    return selected[0]


@njit(nogil=True, cache=True)
def insert_batch(new_nodes, new_levels, m, ef_construction, vectors, row_stride, row_offset,
                 links0, upper, upper_start, levels, deleted, state, has_tombstones,
                 visited, visit_state, cand_keys, cand_values):
    """Insert nodes one after another (hnswlib's addPoint). Their upper-layer rows must be allocated
    in ``upper_start`` and zeroed; their vectors must already be readable."""
    max_links0 = links0.shape[1] - 1
    top_keys = np.empty(ef_construction + 1, dtype=np.float32)
    top_values = np.empty(ef_construction + 1, dtype=np.int32)
    sorted_distances = np.empty(ef_construction + 1, dtype=np.float32)
    sorted_nodes = np.empty(ef_construction + 1, dtype=np.int32)
    selected = np.empty(m, dtype=np.int32)
    pool_distances = np.empty(max_links0 + 1, dtype=np.float32)
    pool_nodes = np.empty(max_links0 + 1, dtype=np.int32)
    kept = np.empty(max_links0, dtype=np.int32)
    no_filter = np.zeros(1, dtype=np.uint8)
    fresh = np.empty(max_links0, dtype=np.int32)
    for t in range(new_nodes.shape[0]):
        node = new_nodes[t]
        level = new_levels[t]
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
            current = _greedy_descent(vectors, node_row, entry, max_level, level + 1, vectors, row_stride,
                                      row_offset, upper, upper_start)
        for layer in range(min(level, max_level), -1, -1):
            lists = links0 if layer == 0 else upper
            tag = _next_visit_tag(visited, visit_state)
            visited[node] = tag  # never link a node to itself
            n_top = _search_layer(
                vectors, node_row, current, layer, ef_construction, vectors, row_stride, row_offset, lists,
                upper_start, deleted, no_filter, False, has_tombstones, visited, tag,
                cand_keys, cand_values, top_keys, top_values, fresh)
            if n_top > 0:
                current = _connect(node, layer, m, n_top, top_keys, top_values, vectors, row_stride,
                                   row_offset, lists, upper_start, sorted_distances, sorted_nodes,
                                   selected, pool_distances, pool_nodes, kept)
        if level > max_level:
            state[0] = node
            state[1] = level


@njit(nogil=True, cache=True)
def search_batch(queries, k, ef, vectors, row_stride, row_offset, links0, upper, upper_start, deleted,
                 state, allowed, use_allowed, may_exclude, visited, visit_state, cand_keys, cand_values,
                 out_nodes, out_similarities):
    """Answer each query row independently; rows of the outputs are padded with -1 / -inf."""
    ef = max(ef, k)
    top_keys = np.empty(ef + 1, dtype=np.float32)
    top_values = np.empty(ef + 1, dtype=np.int32)
    fresh = np.empty(links0.shape[1] - 1, dtype=np.int32)
    entry = state[0]
    max_level = state[1]
    for qi in range(queries.shape[0]):
        out_nodes[qi, :] = -1
        out_similarities[qi, :] = -np.inf
        if entry < 0:
            continue
        current = _greedy_descent(queries, qi, entry, max_level, 1, vectors, row_stride, row_offset,
                                  upper, upper_start)
        tag = _next_visit_tag(visited, visit_state)
        n_top = _search_layer(
            queries, qi, current, 0, ef, vectors, row_stride, row_offset, links0, upper_start, deleted,
            allowed, use_allowed, may_exclude, visited, tag, cand_keys, cand_values, top_keys, top_values,
            fresh)
        while n_top > k:
            n_top = _heap_pop(top_keys, top_values, n_top)
        for r in range(n_top - 1, -1, -1):
            out_nodes[qi, r] = top_values[0]
            out_similarities[qi, r] = -top_keys[0]
            _heap_pop(top_keys, top_values, r + 1)


@njit(nogil=True, cache=True)
def exact_search(queries, k, candidates, vectors, row_stride, row_offset, out_nodes, out_similarities):
    """Brute-force top-k over the listed slots (used when a filter leaves few of them)."""
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
def repair_links(first, stop, m, vectors, row_stride, row_offset, links0, upper, upper_start, levels,
                 deleted, visited, visit_state):
    """For every live node in slots [first, stop) whose lists point at tombstones, rebuild those lists
    from its live neighbours and the live neighbours of its deleted ones. Tombstoned nodes keep their
    own lists (other nodes still read them) until the caller drops them after the last chunk."""
    max_links0 = links0.shape[1] - 1
    pool_capacity = max_links0 * (max_links0 + 1)
    pool_distances = np.empty(pool_capacity, dtype=np.float32)
    pool_nodes = np.empty(pool_capacity, dtype=np.int32)
    sorted_distances = np.empty(pool_capacity, dtype=np.float32)
    sorted_nodes = np.empty(pool_capacity, dtype=np.int32)
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
                sorted_distances[p] = pool_distances[order[p]]
                sorted_nodes[p] = pool_nodes[order[p]]
            n_kept = _select_neighbours(sorted_distances, sorted_nodes, n_pool, lists.shape[1] - 1, vectors,
                                        row_stride, row_offset, kept)
            _set_links(lists, row, kept, n_kept)
