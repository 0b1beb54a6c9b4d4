"""The repairs a crash needs (shared/reconcile.py) on their own, on a catalog and a vectors store left as
a crash leaves them; tests/stack/test_faults.py runs them at a worker's start in the whole product."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from shared import catalog
from shared.reconcile import adopt_committed_rows, orphan_rows, reconcile, tombstone
from shared.settings import Settings
from shared.vectors import VectorStore, encode_video_owner
from tests.conftest import free_port


@pytest.fixture
def crashed(tmp_path):
    """A catalog and a vectors store as a crash leaves them: rows committed that the catalog does not record."""
    conn = catalog.connect(tmp_path / "catalog.sqlite3")
    store = VectorStore(tmp_path / "vectors", dim=4, model_id="test", writable=True)
    yield conn, store, tmp_path / "vectors"
    store.close()
    conn.close()


def add_media(conn: sqlite3.Connection, name: str, frames: int, kind: str = "image") -> tuple[int, list[int]]:
    with catalog.transaction(conn):
        media_id = catalog.insert_media(conn, sha256=name.ljust(64, "0"), kind=kind, mime="image/jpeg",
                                        path=f"media/{name}", name=name, size=1)
        frame_ids = [catalog.insert_frame(conn, media_id, f"f{n}", f"t{n}", 1, 1) for n in range(frames)]
    return media_id, frame_ids


def unit_rows(count: int) -> np.ndarray:
    return np.eye(4, dtype=np.float32)[np.arange(count) % 4]


def test_adoption_takes_committed_rows_for_frames_and_videos_without_one(crashed):
    conn, store, vectors_dir = crashed
    _, (photo_frame,) = add_media(conn, "photo", 1)
    video, video_frames = add_media(conn, "video", 2, kind="video")
    embedded = store.append(unit_rows(3), [photo_frame, *video_frames])
    catalog.set_frame_rows(conn, {video_frames[0]: embedded[1]})  # one frame was recorded before the crash
    pooled = store.append(unit_rows(1), [encode_video_owner(video)])
    assert adopt_committed_rows(conn, vectors_dir) == (2, 1)
    assert [catalog.get_frame(conn, f)["vector_row"] for f in (photo_frame, *video_frames)] == list(embedded)
    assert catalog.video_row(conn, video) == pooled.start
    assert adopt_committed_rows(conn, vectors_dir) == (0, 0)  # a second run changes nothing


def test_adoption_never_takes_the_row_of_a_deleted_item(crashed):
    conn, store, vectors_dir = crashed
    add_media(conn, "kept", 1)
    gone, (gone_frame,) = add_media(conn, "gone", 1)
    store.append(unit_rows(1), [gone_frame])
    catalog.delete_media(conn, gone)
    _, (new_frame,) = add_media(conn, "new", 1)
    assert new_frame != gone_frame  # ids are never reused, so the gone frame's row stays unowned
    assert adopt_committed_rows(conn, vectors_dir) == (0, 0)
    assert catalog.get_frame(conn, new_frame)["vector_row"] is None  # it will be embedded afresh


def test_rows_whose_owner_is_gone_are_found_and_a_shard_that_is_down_is_reported(crashed):
    conn, store, _ = crashed
    kept, (kept_frame,) = add_media(conn, "kept", 1, kind="video")
    gone, (gone_frame,) = add_media(conn, "gone", 1, kind="video")
    store.append(unit_rows(4), [kept_frame, gone_frame, encode_video_owner(kept), encode_video_owner(gone)])
    catalog.delete_media(conn, gone)
    assert orphan_rows(conn, store) == [1, 3]
    assert tombstone([1, 3], [f"http://127.0.0.1:{free_port()}"])[0].startswith("http://127.0.0.1:")


def test_reconcile_on_an_empty_data_dir_does_nothing(tmp_path):
    report = reconcile(Settings(data_dir=tmp_path, index_urls=[f"http://127.0.0.1:{free_port()}"]))
    assert (report.adopted_frames, report.adopted_videos, report.tombstoned, report.index_errors) == (0, 0, 0, [])
    assert not Path(tmp_path / "vectors").exists()
