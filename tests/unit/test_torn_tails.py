"""A crash in the middle of an append leaves a torn last record; every append-only file is read at start
up to its last whole record, the torn rest is cut off with a warning, and appending goes on cleanly:
the index's deleted rows, the HNSW log, and the vectors store (rows past the committed count). Redis's
own append-only file is loaded truncated as well (aof-load-truncated, tools/stack.py)."""

from __future__ import annotations

import logging

import numpy as np

from services.index.hnsw import HNSWIndex
from services.index.shard import DELETED_FILE, Shard
from shared.vectors import HEADER_BYTES, VectorStore
from tests.samples import unit_rows

DIM = 8


def test_a_torn_deleted_row_is_cut_off_and_later_deletes_stay_whole(tmp_path, caplog):
    store = VectorStore(tmp_path / "vectors", dim=DIM, model_id="m", writable=True)
    store.append(unit_rows(10, DIM), np.arange(10))
    shard = Shard(tmp_path / "vectors", tmp_path / "shard")
    shard.catch_up()
    shard.delete([1, 2])
    shard.close()
    deleted = tmp_path / "shard" / DELETED_FILE
    with open(deleted, "ab") as handle:
        handle.write(np.int64(3).tobytes()[:3])  # the crash came three bytes into the next row
    with caplog.at_level(logging.WARNING, logger="mediasearch.index"):
        shard = Shard(tmp_path / "vectors", tmp_path / "shard")
    assert shard.deleted == {1, 2}
    assert deleted.stat().st_size == 16
    assert "torn last record" in caplog.text
    shard.catch_up()
    shard.delete([7])
    shard.close()
    assert Shard(tmp_path / "vectors", tmp_path / "shard").deleted == {1, 2, 7}
    store.close()


def test_a_torn_hnsw_log_record_is_cut_off_with_a_warning(tmp_path, caplog):
    path = tmp_path / "graph.hnsw"
    vectors = unit_rows(40, DIM)
    index = HNSWIndex.open(path, dim=DIM)
    index.add(vectors[:30])
    index.close()
    log = tmp_path / "graph.hnsw.log"
    whole = log.stat().st_size
    with open(log, "ab") as handle:
        handle.write(b"\x40\x00\x00\x00\x12\x34")  # a record prefix whose body never made it
    with caplog.at_level(logging.WARNING, logger="mediasearch.index"):
        index = HNSWIndex.open(path)
    assert len(index) == 30 and log.stat().st_size == whole
    assert "torn last record (6 bytes)" in caplog.text
    index.add(vectors[30:])
    index.close()
    assert len(HNSWIndex.load(path)) == 40


def test_rows_torn_past_the_committed_count_are_never_read_and_are_overwritten(tmp_path):
    writer = VectorStore(tmp_path, dim=DIM, model_id="m", writable=True)
    first = unit_rows(3, DIM)
    writer.append(first, [10, 11, 12])
    writer.close()
    # A crash mid-append: rows 3 and 4 half written in both files, the header's count never moved on.
    with open(tmp_path / "vectors.f32", "r+b") as handle:
        handle.seek(HEADER_BYTES + 3 * DIM * 4)
        handle.write(b"\x7f" * (DIM * 4 + 5))
    with open(tmp_path / "vectors.ids", "r+b") as handle:
        handle.seek(3 * 8)
        handle.write(b"\x7f" * 11)
    reader = VectorStore(tmp_path)
    vectors, owners = reader.view()
    np.testing.assert_array_equal(vectors, first)
    assert owners.tolist() == [10, 11, 12]
    writer = VectorStore(tmp_path, dim=DIM, model_id="m", writable=True)
    assert writer.committed() == 3
    second = unit_rows(2, DIM, seed=1)
    assert list(writer.append(second, [13, 14])) == [3, 4]
    vectors, owners = reader.view()
    np.testing.assert_array_equal(vectors[3:], second)
    assert owners.tolist() == [10, 11, 12, 13, 14]
    writer.close()
    reader.close()
