"""The index shard over the HNSW graph: sharding, deletes, filters, and recovery from its files."""

import numpy as np
import pytest

from services.index.shard import DELETED_FILE, GRAPH_FILE, Shard
from shared.errors import BadInput
from shared.vectors import VectorStore
from tests.samples import unit_rows


@pytest.fixture
def store(tmp_path):
    writer = VectorStore(tmp_path / "vectors", dim=16, model_id="m", writable=True)
    yield writer
    writer.close()


def open_shard(tmp_path, shard_id=0, shard_count=1) -> Shard:
    return Shard(tmp_path / "vectors", tmp_path / f"shard{shard_id}", shard_id, shard_count)


def test_shards_split_rows_and_find_nearest(tmp_path, store):
    data = unit_rows(200, 16)
    store.append(data, np.arange(200))
    shards = [open_shard(tmp_path, i, 2) for i in range(2)]
    assert [s.catch_up() for s in shards] == [100, 100]
    for row in (0, 1, 137):
        rows, sims = shards[row % 2].search(data[row], k=3)
        assert rows[0] == row and sims[0] == pytest.approx(1.0, abs=1e-5)
        assert row not in shards[1 - row % 2].search(data[row], k=3)[0]
    # New commits are picked up; deletes and allow-lists are obeyed.
    store.append(unit_rows(10, 16, seed=5), np.arange(200, 210))
    assert shards[0].catch_up() == 5
    shards[0].delete([0])
    assert 0 not in shards[0].search(data[0], k=10)[0]
    allowed = [2, 4, 6, 7]  # 7 belongs to the other shard
    assert sorted(shards[0].search(data[0], k=10, allow_rows=allowed)[0]) == [2, 4, 6]


def test_bad_query_is_refused(tmp_path, store):
    store.append(unit_rows(3, 16), [0, 1, 2])
    shard = open_shard(tmp_path)
    shard.catch_up()
    with pytest.raises(ValueError, match="dimensions"):
        shard.search(np.ones(5), k=1)
    with pytest.raises(ValueError, match="non-zero"):
        shard.search(np.zeros(16), k=1)


def test_unclean_stop_replays_the_log_and_deletes_stay_deleted(tmp_path, store):
    data = unit_rows(300, 16)
    store.append(data, np.arange(300))
    shard = open_shard(tmp_path)
    shard.catch_up()
    shard.snapshot()
    store.append(unit_rows(50, 16, seed=9), np.arange(300, 350))
    shard.catch_up()  # only in the log, no snapshot since
    shard.delete([5, 320])
    expected = shard.search(data[7], k=10)
    # No close(): the process died. A new shard recovers from the snapshot plus the log.
    again = open_shard(tmp_path)
    assert again.catch_up() == 0
    assert len(again) == 348
    assert again.search(data[7], k=10) == expected
    assert 5 not in again.search(data[5], k=20)[0]
    # A purged delete is not re-added from the store after another restart either.
    again.index.purge_deleted()
    again.close()
    third = open_shard(tmp_path)
    third.catch_up()
    assert len(third) == 348 and 320 not in third.search(store.view()[0][320], k=20)[0]


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_missing_or_corrupt_graph_is_rebuilt_from_the_store(tmp_path, store, damage):
    data = unit_rows(120, 16)
    store.append(data, np.arange(120))
    shard = open_shard(tmp_path)
    shard.catch_up()
    shard.close()
    graph = tmp_path / "shard0" / GRAPH_FILE
    if damage == "missing":
        graph.unlink()
    else:
        graph.write_bytes(graph.read_bytes()[:100])
    rebuilt = open_shard(tmp_path)
    assert rebuilt.catch_up() == 120
    assert rebuilt.search(data[42], k=1)[0] == [42]


def test_deletes_of_rows_not_committed_are_refused_whole(tmp_path, store):
    shard = open_shard(tmp_path, 0, 2)
    with pytest.raises(BadInput, match="store has 0 rows"):  # nothing embedded yet: every row is in the future
        shard.delete([0])
    data = unit_rows(10, 16)
    store.append(data, np.arange(10))
    shard.catch_up()
    # A forged delete of rows to come (10, 12) must not hide those photos once they arrive; one row past the
    # end refuses the whole request, owned or not.
    for rows in ([10], [2, 12], [3, 11], list(range(10, 10**6, 2))):
        with pytest.raises(BadInput, match="not committed"):
            shard.delete(rows)
    assert shard.deleted == set() and not (tmp_path / "shard0" / DELETED_FILE).exists()
    assert shard.delete([2, 3, 9, -1]) == 1  # committed: 2 is this shard's, 3 and 9 the other's
    store.append(unit_rows(4, 16, seed=2), np.arange(10, 14))
    assert shard.catch_up() == 2 and shard.delete([10]) == 1
    assert 12 in shard.search(store.view()[0][12], k=3)[0]  # arrived and searchable


def test_a_small_graph_with_no_upper_layers_left_is_snapshotted_and_reopened(tmp_path, store):
    # 8 rows with two deleted: the upper-layer table can be empty, which the snapshot must still write
    data = unit_rows(8, 16)
    store.append(data, np.arange(8))
    shard = open_shard(tmp_path)
    shard.catch_up()
    shard.delete([1, 7])
    shard.close()
    reopened = open_shard(tmp_path)
    reopened.catch_up()
    rows, _ = reopened.search(data[3], k=8)
    assert rows[0] == 3 and not {1, 7} & set(rows)


def test_a_shard_inserting_on_two_threads_finds_every_row_it_was_given(tmp_path, store):
    data = unit_rows(3000, 16, seed=3)
    store.append(data, np.arange(3000))
    shard = Shard(tmp_path / "vectors", tmp_path / "shard0", insert_threads=2)
    assert shard.catch_up() == 3000 and len(shard) == 3000
    assert shard.index.insert_threads == 2
    misses = [row for row in range(0, 3000, 7) if shard.search(data[row], k=1, ef=64)[0] != [row]]
    assert len(misses) <= 3, misses  # each vector is its own nearest; a graph may lose a rare one
    shard.close()
    reopened = Shard(tmp_path / "vectors", tmp_path / "shard0", insert_threads=2)
    reopened.catch_up()
    assert len(reopened) == 3000
    reopened.close()
