import numpy as np
import pytest

from services.index.shard import Shard
from shared.vectors import VectorStore
from tests.test_vectors_store import unit_rows


def test_shards_split_rows_and_find_nearest(tmp_path):
    store = VectorStore(tmp_path / "vectors", dim=16, model_id="m", writable=True)
    data = unit_rows(200, 16)
    store.append(data, np.arange(200))
    shards = [Shard(tmp_path / "vectors", tmp_path / f"s{i}", i, 2) for i in range(2)]
    assert [s.catch_up() for s in shards] == [100, 100]
    for row in (0, 1, 137):
        owner = shards[row % 2]
        rows, sims = owner.search(data[row], k=3)
        assert rows[0] == row and sims[0] == pytest.approx(1.0, abs=1e-5)
        other_rows, _ = shards[1 - row % 2].search(data[row], k=3)
        assert row not in other_rows
    # New commits are picked up; deletes and allow-lists are obeyed.
    store.append(unit_rows(10, 16, seed=5), np.arange(200, 210))
    assert shards[0].catch_up() == 5
    shards[0].delete([0])
    assert 0 not in shards[0].search(data[0], k=10)[0]
    allowed = [2, 4, 6]
    assert sorted(shards[0].search(data[0], k=10, allow_rows=allowed)[0]) == allowed


def test_bad_query_is_refused(tmp_path):
    store = VectorStore(tmp_path / "vectors", dim=4, model_id="m", writable=True)
    store.append(unit_rows(3, 4), [0, 1, 2])
    shard = Shard(tmp_path / "vectors", tmp_path / "s")
    shard.catch_up()
    with pytest.raises(ValueError, match="dimensions"):
        shard.search(np.ones(5), k=1)
    with pytest.raises(ValueError, match="non-zero"):
        shard.search(np.zeros(4), k=1)
