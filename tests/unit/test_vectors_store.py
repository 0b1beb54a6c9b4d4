import numpy as np
import pytest

from shared.vectors import VectorStore, VectorStoreError, decode_owner, encode_video_owner
from tests.samples import unit_rows


def test_rows_are_visible_only_once_committed_and_survive_reopen(tmp_path):
    writer = VectorStore(tmp_path, dim=8, model_id="m", writable=True)
    reader = VectorStore(tmp_path)
    assert reader.committed() == 0
    first = writer.append(unit_rows(3, 8), [10, 11, 12])
    assert list(first) == [0, 1, 2]
    vectors, owners = reader.view()
    assert vectors.shape == (3, 8) and owners.tolist() == [10, 11, 12]
    # Growing past the initial capacity keeps earlier rows intact.
    big = unit_rows(5000, 8, seed=1)
    rows = writer.append(big, np.arange(5000))
    assert rows.start == 3 and rows.stop == 5003
    vectors, _ = reader.view()
    np.testing.assert_array_equal(vectors[3:], big)
    writer.close()
    again = VectorStore(tmp_path, dim=8, model_id="m", writable=True)
    assert again.committed() == 5003


def test_second_writer_and_other_model_are_refused(tmp_path):
    writer = VectorStore(tmp_path, dim=8, model_id="m", writable=True)
    with pytest.raises(VectorStoreError, match="another process"):
        VectorStore(tmp_path, dim=8, model_id="m", writable=True)
    writer.close()
    with pytest.raises(VectorStoreError, match="mixing them"):
        VectorStore(tmp_path, dim=16, model_id="other", writable=True)


def test_truncated_header_is_refused(tmp_path):
    (tmp_path / "vectors.f32").write_bytes(b"MSVE")
    with pytest.raises(VectorStoreError, match="truncated"):
        VectorStore(tmp_path)


def test_video_owner_round_trip():
    assert decode_owner(encode_video_owner(0)) == ("video", 0)
    assert decode_owner(encode_video_owner(41)) == ("video", 41)
    assert decode_owner(7) == ("frame", 7)
