"""Acceptance tests of our HNSW index (services.index.hnsw)."""

import threading

import numpy as np
import pytest
from numba.core.errors import TypingError

from services.index.hnsw import HNSWIndex, IndexFileError
from services.index.hnsw import _kernels as kernels

DIM = 256
N = 20_000


def clustered_unit_vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    """Topic clusters in a 64-d latent space projected to ``dim``, plus a common component and noise,
    normalised: the shape of CLIP embeddings (random pairs ~0.4 cosine, neighbours ~0.75)."""
    rng = np.random.default_rng(seed)
    latent = 64
    topics = rng.standard_normal((max(10, n // 100), latent), dtype=np.float32)
    points = topics[rng.integers(0, len(topics), n)] + rng.standard_normal((n, latent), dtype=np.float32)
    projection = rng.standard_normal((latent, dim), dtype=np.float32) / np.sqrt(latent)
    common = rng.standard_normal(dim, dtype=np.float32) * 1.2
    vectors = common + points @ projection + 0.5 * rng.standard_normal((n, dim), dtype=np.float32)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def exact_top_k(base: np.ndarray, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> np.ndarray:
    scores = queries @ base.T
    if allowed is not None:
        blocked = np.ones(len(base), dtype=bool)
        blocked[allowed] = False
        scores[:, blocked] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return sum(len(np.intersect1d(f, t)) for f, t in zip(found, truth)) / truth.size


@pytest.fixture(scope="module")
def data():
    vectors = clustered_unit_vectors(N + 300)
    return vectors[:N], vectors[N:]


@pytest.fixture(scope="module")
def built(data, tmp_path_factory):
    """The 20k index, built once, and a snapshot of it that tests load private copies from."""
    base, _ = data
    index = HNSWIndex(DIM)
    assert list(index.add(base)) == list(range(N))
    path = tmp_path_factory.mktemp("built") / "index.hnsw"
    index.save(path)
    return index, path


def test_recall_at_default_ef(data, built):
    base, queries = data
    index, _ = built
    ids, similarities = index.search(queries, k=10)
    assert ids.shape == similarities.shape == (len(queries), 10)
    assert recall(ids, exact_top_k(base, queries, 10)) >= 0.95
    np.testing.assert_allclose(similarities[:, 0], np.sum(base[ids[:, 0]] * queries, axis=1), rtol=1e-5)
    assert np.all(np.diff(similarities, axis=1) <= 0)
    one_ids, one_similarities = index.search(queries[0], k=10)
    assert one_ids.shape == (10,) and np.array_equal(one_ids, ids[0])
    assert np.array_equal(one_similarities, similarities[0])


def test_single_query_fast_path_answers_as_a_batch_row_does(data, built):
    """One float32 vector per call takes the fast path; every answer equals the batched one exactly,
    whatever the query's strides, k and ef, with tombstones, and over a sharded external matrix."""
    base, queries = data
    index = HNSWIndex.load(built[1])
    index.delete(np.arange(0, N, 97))  # tombstones, walked through but never returned

    def check(index, queries, k, ef):
        batch_ids, batch_similarities = index.search(queries, k=k, ef=ef)
        for row, query in enumerate(queries):
            ids, similarities = index.search(query, k=k, ef=ef)
            found = batch_ids[row] >= 0
            assert ids.dtype == np.int64 and similarities.dtype == np.float32
            assert np.array_equal(ids, batch_ids[row][found])
            assert np.array_equal(similarities, batch_similarities[row][found])

    for k, ef in ((1, None), (10, 10), (10, 64), (25, 12)):
        check(index, queries[:60], k, ef)
    strided = np.asfortranarray(queries[:40])  # each row a strided view
    readonly = queries[:40].copy()
    readonly.flags.writeable = False
    for rows in (strided, readonly):
        for row, query in enumerate(rows):
            assert np.array_equal(index.search(query, k=10)[0], index.search(queries[row], k=10)[0])
    # other dtypes and lists go the general way, to the same answer
    assert np.array_equal(index.search(queries[0].astype(np.float64), k=10)[0], index.search(queries[0], k=10)[0])
    assert np.array_equal(index.search(list(queries[0]), k=10)[0], index.search(queries[0], k=10)[0])
    assert np.array_equal(index.search(queries[0], k=np.int64(10))[0], index.search(queries[0], k=10)[0])
    with pytest.raises(ValueError, match="k must be"):
        index.search(queries[0], k=0)
    # exact walks (quantized=False) answer alike on both paths too
    check(HNSWIndex.load(built[1], quantized=False), queries[:30], 10, 32)
    # a shard over an external matrix: ids are rows, mapped in the kernel the same way
    shard = HNSWIndex(DIM, vectors=base, id_stride=3, id_offset=2)
    shard.add(ids=np.arange(2, 3000, 3))
    check(shard, queries[:30], 10, 32)
    assert (shard.search(queries[0], k=10)[0] % 3 == 2).all()
    # fewer nodes than k: only those found
    tiny = HNSWIndex(DIM)
    tiny.add(base[:4])
    ids, similarities = tiny.search(queries[0], k=10)
    assert sorted(ids) == [0, 1, 2, 3] and len(similarities) == 4
    assert len(HNSWIndex(DIM).search(queries[0], k=10)[0]) == 0  # empty index


def test_quantized_walk_and_exact_ranking_keep_recall(data, built):
    """The walk on 8-bit codes, then exact ranking of what it keeps, loses next to no recall against
    a walk on the float32 vectors, on the same graph, and returns exact similarities."""
    base, queries = data
    truth = exact_top_k(base, queries, 10)
    quantized, exact = HNSWIndex.load(built[1]), HNSWIndex.load(built[1], quantized=False)
    assert quantized.codes_nbytes == N * (DIM + 4) and exact.codes_nbytes == 0
    for ef in (10, 16, 32, 64):
        ids, similarities = quantized.search(queries, k=10, ef=ef)
        assert recall(ids, truth) >= recall(exact.search(queries, k=10, ef=ef)[0], truth) - 0.01
        np.testing.assert_allclose(similarities, np.sum(base[ids] * queries[:, None, :], axis=2), rtol=1e-5, atol=1e-6)
    assert recall(quantized.search(queries, k=10)[0], truth) >= 0.95


def test_codes_follow_inserts_reinserts_and_loads(tmp_path):
    """Codes are made on insert (a re-added id gets its new vector's), on load, and cover every slot."""
    vectors = clustered_unit_vectors(600, dim=32, seed=7)
    index = HNSWIndex(32)
    index.add(vectors[:300])
    index.delete([5])
    index.add(vectors[300:301], ids=[5])  # id 5 now holds another vector
    assert list(index.add(vectors[301:])) == list(range(300, 599))
    codes, scales = index._codes.codes[:599], index._codes.scales[:599]
    expected = np.concatenate([vectors[:300], vectors[301:]])
    expected[5] = vectors[300]
    step = np.abs(expected).max(axis=1) / 127  # one code step; rounding errs by half of it at most
    assert (np.abs(codes * scales[:, None] - expected) <= 0.5001 * step[:, None]).all()
    assert index.search(vectors[300], k=1)[0][0] == 5
    index.save(tmp_path / "index.hnsw")
    loaded = HNSWIndex.load(tmp_path / "index.hnsw")
    live = index.contains(np.arange(599))
    assert live.all() and np.array_equal(loaded._codes.codes[:599], codes)
    assert np.array_equal(loaded.search(vectors[:50], k=10)[0], index.search(vectors[:50], k=10)[0])


def test_read_lock_fast_path_and_writers_exclude_each_other():
    from services.index.hnsw.locking import ReadWriteLock

    lock = ReadWriteLock()
    events: list[str] = []
    first = lock.acquire_read()
    assert first is True  # no writer about: the fast path
    writer_in = threading.Event()

    def writer():
        with lock.write():
            events.append("write")
            writer_in.set()
            late_reader.start()
            threading.Event().wait(0.05)  # the late reader must not get in meanwhile
            events.append("write done")

    def read_late():
        with lock.read():
            events.append("late read")

    late_reader = threading.Thread(target=read_late)
    writing = threading.Thread(target=writer)
    writing.start()
    assert not writer_in.wait(0.1)  # a fast-path reader is inside: the writer waits
    events.append("read done")
    lock.release_read(first)
    writing.join(5)
    late_reader.join(5)
    assert events == ["read done", "write", "write done", "late read"]
    assert lock.acquire_read() is True  # the fast path is open again
    lock.release_read(True)


def test_save_load_round_trip_returns_identical_results(data, built, tmp_path):
    _, queries = data
    index, path = built
    loaded = HNSWIndex.load(path)
    assert len(loaded) == len(index) == N
    for ef in (16, 64):
        expected = index.search(queries, k=10, ef=ef)
        got = loaded.search(queries, k=10, ef=ef)
        assert np.array_equal(expected[0], got[0]) and np.array_equal(expected[1], got[1])
    loaded.save(tmp_path / "again.hnsw")
    assert (tmp_path / "again.hnsw").read_bytes() == path.read_bytes()


def test_deleted_ids_never_come_back(data, built):
    base, queries = data
    index = HNSWIndex.load(built[1])
    rng = np.random.default_rng(1)
    nearest = index.search(queries, k=10)[0]
    first = np.unique(nearest[:, :3])  # the best answers: certain to be met during searches
    assert index.delete(first) == len(first)
    assert index.delete(first) == 0  # already gone
    found = index.search(queries, k=10, ef=32)[0]
    assert not np.isin(found, first).any() and (found >= 0).all()
    assert not index.contains(first).any() and len(index) == N - len(first)
    # past the purge threshold the tombstones leave the graph and the links around them are rebuilt
    second = rng.choice(np.setdiff1d(np.arange(N), first), 3000, replace=False)
    index.delete(second)
    gone = np.concatenate([first, second])
    assert len(index) == N - len(gone)
    found = index.search(queries, k=10)[0]
    assert not np.isin(found, gone).any()
    live = np.setdiff1d(np.arange(N), gone)
    assert recall(found, live[exact_top_k(base[live], queries, 10)]) >= 0.95
    # a deleted id can be added again, and is then found
    index.add(base[first[:5]], ids=first[:5])
    assert index.contains(first[:5]).all()
    assert index.search(base[first[0]], k=1)[0][0] == first[0]
    with pytest.raises(ValueError, match="already in the index"):
        index.add(base[:1], ids=[first[0]])


def test_filter_is_obeyed_and_still_returns_k(data, built):
    base, queries = data
    index, _ = built
    rng = np.random.default_rng(2)
    # selective: an allow-list of 40 ids (answered by an exact scan over them)
    allowed = rng.choice(N, 40, replace=False)
    ids, similarities = index.search(queries[:20], k=10, filter=allowed)
    assert np.isin(ids, allowed).all()
    assert np.array_equal(ids, exact_top_k(base, queries[:20], 10, allowed))
    # broad: a boolean mask over 40 % of the ids (answered by the graph walk with the filter)
    mask = rng.random(N) < 0.4
    ids, similarities = index.search(queries, k=10, filter=mask)
    assert (ids >= 0).all() and mask[ids].all()
    assert recall(ids, exact_top_k(base, queries, 10, np.flatnonzero(mask))) >= 0.95
    # fewer allowed than k: all of them, then padding
    ids, similarities = index.search(queries[:2], k=10, filter=[7, 3, 11])
    assert sorted(ids[0, :3]) == [3, 7, 11] and (ids[:, 3:] == -1).all() and np.isneginf(similarities[:, 3:]).all()
    assert len(index.search(queries[0], k=10, filter=[7, 3, 11])[0]) == 3
    assert len(index.search(queries[0], k=10, filter=[])[0]) == 0


def test_damaged_snapshot_is_refused(built, tmp_path):
    original = built[1].read_bytes()
    cases = [
        ("truncated", original[: len(original) // 2]),
        ("truncated", original[:5]),
        ("checksum", original[:-100] + bytes([original[-100] ^ 0xFF]) + original[-99:]),
        ("bad magic", b"NOTHNSW!" + original[8:]),
        ("header is corrupted", original[:20] + bytes([original[20] ^ 0x01]) + original[21:]),
    ]
    for reason, content in cases:
        path = tmp_path / "damaged.hnsw"
        path.write_bytes(content)
        with pytest.raises(IndexFileError, match=reason):
            HNSWIndex.load(path)


@pytest.mark.parametrize("insert_threads", [1, 2])
def test_inserting_while_searching_is_safe(data, insert_threads):
    base, _ = data
    vectors = base[:6000]
    index = HNSWIndex(DIM, ef_construction=100, insert_threads=insert_threads)
    index.add(vectors[:500])
    inserted_through = 500
    searches = [0, 0]
    failures: list[BaseException] = []
    done = threading.Event()

    def search_forever(number: int):
        try:
            while not done.is_set():
                limit = inserted_through  # read before searching: every id below it is present
                if number == 0:  # batched
                    ids, similarities = index.search(vectors[limit - 50:limit], k=10, ef=32)
                else:  # one query per call (the fast path), as the service searches
                    found = [index.search(vector, k=10, ef=32) for vector in vectors[limit - 50:limit]]
                    assert all(len(row_ids) == 10 for row_ids, _ in found)
                    ids, similarities = np.array([f[0] for f in found]), np.array([f[1] for f in found])
                assert (ids >= 0).all() and (ids < len(vectors)).all()
                assert np.all(np.diff(similarities, axis=1) <= 0)
                assert (ids[:, 0] == np.arange(limit - 50, limit)).mean() >= 0.9  # queries find themselves
                searches[number] += 1
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            failures.append(exc)

    searchers = [threading.Thread(target=search_forever, args=(number,)) for number in range(2)]
    for searcher in searchers:
        searcher.start()
    try:
        before = sum(searches)
        index.add(vectors[500:3500])  # one long call: searches go on between its chunks
        searches_during_long_add = sum(searches) - before
        inserted_through = 3500
        for start in range(3500, len(vectors), 250):  # many short calls
            index.add(vectors[start:start + 250])
            inserted_through = min(start + 250, len(vectors))
    finally:
        done.set()
        for searcher in searchers:
            searcher.join()
    assert not failures, failures[0]
    assert searches_during_long_add >= 10 and min(searches) >= 1
    assert len(index) == len(vectors)
    assert (index.search(vectors, k=1, ef=32)[0][:, 0] == np.arange(len(vectors))).mean() >= 0.99
    assert_graph_is_sound(index)


def assert_graph_is_sound(index: HNSWIndex) -> None:
    """Every list holds distinct nodes of the graph that reach its layer, never the node itself, and
    the entry point is on the top layer."""
    graph, slots = index._graph, index._slots
    levels = graph.levels[:slots].astype(np.int64)
    nodes = np.flatnonzero(levels >= 0)
    lists = [(graph.links0[nodes], nodes, 0)]
    for layer in range(1, int(levels.max()) + 1):
        owners = np.flatnonzero(levels >= layer)
        lists.append((graph.upper[graph.upper_start[owners].astype(np.int64) + layer - 1], owners, layer))
    for rows, owners, layer in lists:
        counts = rows[:, 0]
        width = rows.shape[1] - 1
        assert (counts >= 0).all() and (counts <= width).all()
        if len(owners) > 1:
            assert (counts > 0).all(), f"a node without links on layer {layer}"
        used = np.arange(width)[None, :] < counts[:, None]
        links = np.where(used, rows[:, 1:], -1)
        targets = links[used]
        assert (levels[targets] >= layer).all(), f"a link on layer {layer} to a node not on it"
        assert not (links == owners[:, None]).any(), "a node linked to itself"
        ordered = np.sort(links, axis=1)
        assert not ((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)).any(), "a link twice in a list"
    entry, top = graph.state[0], graph.state[1]
    assert levels[entry] == top == levels.max()


def test_parallel_inserts_build_as_good_a_graph(data, built):
    """Inserts split over threads (per-node locks) give a sound graph as good as one thread's."""
    base, queries = data
    truth = exact_top_k(base, queries, 10)
    index = HNSWIndex(DIM, insert_threads=2)
    index.add(base[:3])  # a tiny start, then a large add into it
    index.add(base[3:])
    assert len(index) == N
    assert_graph_is_sound(index)
    serial = built[0]
    assert_graph_is_sound(serial)
    for ef in (16, 64):
        assert recall(index.search(queries, k=10, ef=ef)[0], truth) >= recall(
            serial.search(queries, k=10, ef=ef)[0], truth) - 0.01
    assert recall(index.search(queries, k=10)[0], truth) >= 0.95


def test_log_replay_recovers_every_acknowledged_change(data, tmp_path):
    base, queries = data
    vectors = base[:3000]
    path = tmp_path / "durable.hnsw"
    index = HNSWIndex.open(path, dim=DIM, ef_construction=100)
    for start in range(0, 2000, 500):
        index.add(vectors[start:start + 500])
    index.delete([3, 1500, 1999])
    # no snapshot was ever written: the "crash" leaves only the log
    assert not path.exists()
    recovered = HNSWIndex.load(path)
    assert len(recovered) == 1997 and not recovered.contains([3, 1500, 1999]).any()
    assert np.array_equal(recovered.search(queries, k=10)[0], index.search(queries, k=10)[0])

    # a snapshot, then more changes, then a torn record at the end of the log
    index.save()
    index.add(vectors[2000:2500])
    index.delete([10])
    index.close()
    with open(f"{path}.log", "ab") as log:
        log.write(b"\x40\x00\x00\x00\x12\x34")  # a record prefix whose body never made it
    recovered = HNSWIndex.open(path)
    assert len(recovered) == 2496 and recovered.contains(np.arange(2000, 2500)).all()
    assert np.array_equal(recovered.search(queries, k=10)[0], index.search(queries, k=10)[0])
    # reopening cut the torn tail off, so appending goes on cleanly
    recovered.add(vectors[2500:])
    recovered.close()
    assert len(HNSWIndex.load(path)) == 2996

    # damage in the middle of the log is not mistaken for a torn tail
    log_path = tmp_path / "durable.hnsw.log"
    intact = log_path.read_bytes()
    for position in (60, 100):  # the first record's size field, then its body
        damaged = bytearray(intact)
        damaged[position] ^= 0xFF
        log_path.write_bytes(bytes(damaged))
        with pytest.raises(IndexFileError, match="corrupted"):
            HNSWIndex.load(path)


def test_external_vectors_are_read_in_place_and_never_persisted(tmp_path):
    rows = clustered_unit_vectors(2000, seed=3)
    store = np.lib.format.open_memmap(tmp_path / "vectors.npy", mode="w+", dtype=np.float32, shape=rows.shape)
    store[:1000] = rows[:1000]
    store.flush()
    readonly = np.load(tmp_path / "vectors.npy", mmap_mode="r")
    # a shard owning the odd rows
    path = tmp_path / "shard.hnsw"
    index = HNSWIndex.open(path, dim=DIM, vectors=readonly[:1000], id_stride=2, id_offset=1)
    index.add(ids=np.arange(1, 1000, 2))
    with pytest.raises(ValueError, match="beyond the attached vectors"):
        index.add(ids=[1001])
    with pytest.raises(ValueError, match="not of the form"):
        index.add(ids=[4])
    store[1000:] = rows[1000:]
    index.attach_vectors(readonly)
    index.add(ids=np.arange(1001, 2000, 2))
    ids, similarities = index.search(rows[[5, 1501]], k=3)
    assert list(ids[:, 0]) == [5, 1501] and np.allclose(similarities[:, 0], 1.0, atol=1e-5)
    assert (ids % 2 == 1).all()
    index.save()
    assert path.stat().st_size < 1000 * DIM  # the graph only: 1000 vectors would take 1000 KB
    index.close()
    loaded = HNSWIndex.load(path, vectors=readonly)
    assert np.array_equal(loaded.search(rows[:50], k=5)[0], index.search(rows[:50], k=5)[0])
    with pytest.raises(ValueError, match="pass vectors="):
        HNSWIndex.load(path)


def test_kernel_arguments_that_do_not_fit_fail_to_compile():
    """Kernels take named groups of arguments, checked at compile time: a group in another's place, a
    field of the wrong kind or per-call arguments out of order are type errors, never a run over the
    wrong arrays."""
    vectors = clustered_unit_vectors(50, dim=16, seed=4)
    index = HNSWIndex(16)
    index.add(vectors)
    queries = vectors[:2]
    nodes, similarities = np.empty((2, 3), dtype=np.int32), np.empty((2, 3), dtype=np.float32)
    source, graph, codes = index._source_args, index._graph_args, index._codes_args
    scratch = index._take_scratch()
    no_filter = np.zeros(0, dtype=np.uint8)
    searcher = kernels.new_searcher(source, graph, codes, True, scratch, 1, 0)
    kernels.search_batch(searcher, queries, 32, no_filter, nodes, similarities)
    assert list(nodes[:, 0]) == [0, 1]

    float_links0 = (graph[0].astype(np.float32),) + graph[1:]
    for reason, arguments in [
        ("a VectorSource is a tuple", (graph, source, codes, True, scratch, 1, 0)),
        ("Graph.links0 must be an array of int32, 2-D", (source, float_links0, codes, True, scratch, 1, 0)),
        ("a Codes is a tuple", (source, graph, scratch, True, codes, 1, 0)),
    ]:
        with pytest.raises(TypingError, match=reason):
            kernels.new_searcher(*arguments)
    cases = [
        (TypingError, "SearchRequest.ef must be an integer", (searcher, queries, no_filter, 32, nodes, similarities)),
        (TypingError, "Results.nodes must be an array of int32", (searcher, queries, 32, no_filter, similarities, nodes)),
        # the queries and the similarities are both float32 matrices: their shapes tell them apart
        (ValueError, "queries must be", (searcher, similarities, 32, no_filter, nodes, queries)),
    ]
    for error, reason, arguments in cases:
        nodes[:] = -7
        with pytest.raises(error, match=reason):
            kernels.search_batch(*arguments)
        assert (nodes == -7).all()  # nothing ran
    # a named tuple is checked the same way: the right one is taken as it is, another one refused
    kernels.exact_search(kernels.VectorSource(*source), queries, np.arange(50, dtype=np.int32), nodes,
                         similarities)
    assert list(nodes[:, 0]) == [0, 1]
    with pytest.raises(TypingError, match="a Graph was passed where a VectorSource belongs"):
        kernels.exact_search(kernels.Graph(*graph), queries, np.arange(50, dtype=np.int32), nodes, similarities)
