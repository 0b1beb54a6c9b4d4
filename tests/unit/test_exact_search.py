"""The index shard's exact scan: the reference `mediasearch bench` validates the graph against."""

import numpy as np
import pytest

from services.index.shard import Shard
from shared.vectors import VectorStore
from tests.samples import unit_rows


def test_the_exact_scan_is_the_true_top_k_of_the_shards_own_live_rows(tmp_path):
    store = VectorStore(tmp_path / "vectors", dim=16, model_id="m", writable=True)
    try:
        data = unit_rows(300, 16)
        store.append(data, np.arange(300))
        shards = [Shard(tmp_path / "vectors", tmp_path / f"shard{i}", i, 2) for i in range(2)]
        for shard in shards:
            shard.catch_up()
        shards[1].delete([1, 3])
        query = unit_rows(1, 16, seed=7)[0]
        for shard_id, shard in enumerate(shards):
            live = [row for row in range(shard_id, 300, 2) if row not in (1, 3) or shard_id == 0]
            truth = sorted(live, key=lambda row: -float(data[row] @ query))[:10]
            rows, sims = shard.exact_search(query * 3, k=10)  # any length: the query is made unit
            assert rows == truth
            assert sims == pytest.approx([float(data[row] @ query) for row in truth], abs=1e-5)
        # More than the shard holds: all of its live rows, best first.
        assert len(shards[1].exact_search(query, k=1000)[0]) == 148
        with pytest.raises(ValueError, match="non-zero"):
            shards[0].exact_search(np.zeros(16), k=1)
    finally:
        store.close()


def test_a_shard_with_nothing_embedded_answers_empty(tmp_path):
    shard = Shard(tmp_path / "vectors", tmp_path / "shard0")
    shard.catch_up()
    assert shard.exact_search(np.ones(16), k=5) == ([], [])
