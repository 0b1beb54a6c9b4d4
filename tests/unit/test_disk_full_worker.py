"""A full data volume is a wait, not a failure: an item whose outputs hit ENOSPC (or that would leave less
than disk_reserve_bytes free) is put back to wait with the reason "disk full: ...", its attempt given
back, and is indexed by the next try once there is room. ENOSPC is simulated by patching the media store's
write (a full disk cannot be caused portably); decoding runs inline instead of in its child process so
that the patch reaches it, and a stand-in embedder answers.
"""

from __future__ import annotations

import errno
import sqlite3

import httpx
import pytest
from PIL import Image

from services.ingest_worker import pipeline
from services.ingest_worker.pipeline import (
    DiskFull,
    IngestContext,
    TransientFault,
    ingest_item,
    wait_for_retry,
)
from shared import catalog
from shared.durable import DISK_FULL
from shared.media_store import MediaStore
from shared.settings import Settings
from tests.conftest import free_port
from tests.stand_ins import StandInEmbedder


@pytest.fixture
def world(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "run_isolated", lambda function, args, time_limit: function(*args))
    photos = tmp_path / "photos"
    photos.mkdir()
    photo = photos / "beach.jpg"
    Image.new("RGB", (64, 48), (200, 120, 40)).save(photo)
    settings = Settings(data_dir=tmp_path / "data", ingest_roots=[photos], disk_reserve_bytes=0,
                        index_urls=[f"http://127.0.0.1:{free_port()}"])
    conn = catalog.connect(settings.catalog_path)
    _, (item_id,) = catalog.create_job(conn, "folder", "photos", [(photo.name, str(photo))])
    context = IngestContext(settings, conn, MediaStore(settings.data_path), StandInEmbedder(),
                            httpx.Client(timeout=1))
    yield context, item_id
    context.close()


def run_like_the_worker(item_id: int, context: IngestContext) -> TransientFault:
    with pytest.raises(TransientFault) as caught:
        ingest_item(item_id, context)
    wait_for_retry(item_id, context, str(caught.value), counted=False)  # as celery_app does
    return caught.value


def test_enospc_while_writing_frames_waits_as_disk_full_and_resumes_when_space_returns(world, monkeypatch):
    context, item_id = world

    def no_room(self, relative, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(MediaStore, "write_atomic", no_room)
        fault = run_like_the_worker(item_id, context)
        assert isinstance(fault, DiskFull)
        item = catalog.get_item(context.conn, item_id)
        assert item["status"] == "queued"
        assert item["reason"].startswith(DISK_FULL)
        assert item["attempts"] == 0  # the attempt was given back
        fault = run_like_the_worker(item_id, context)  # still full: waits again, still no attempt spent
        assert isinstance(fault, DiskFull)
        assert catalog.get_item(context.conn, item_id)["attempts"] == 0
    assert not list(context.settings.media_dir.rglob("*.tmp"))  # no partial outputs left behind

    outcome = ingest_item(item_id, context)  # space is back
    assert outcome.status == "indexed"
    assert catalog.get_item(context.conn, item_id)["status"] == "indexed"


def test_too_little_room_over_the_reserve_waits_before_writing_anything(world):
    context, item_id = world
    context.settings = context.settings.model_copy(update={"disk_reserve_bytes": 1 << 62})
    fault = run_like_the_worker(item_id, context)
    assert isinstance(fault, DiskFull)
    item = catalog.get_item(context.conn, item_id)
    assert (item["status"], item["attempts"]) == ("queued", 0)
    assert item["reason"].startswith(f"{DISK_FULL}: no room for 'beach.jpg'")
    assert not context.settings.media_dir.exists() or not any(context.settings.media_dir.rglob("*.jpg"))


def test_a_full_catalog_is_disk_full_too_not_an_internal_error(world, monkeypatch):
    context, item_id = world
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = sqlite3.SQLITE_FULL

    def catalog_full(*args, **kwargs):
        raise full

    monkeypatch.setattr(pipeline.catalog, "insert_media", catalog_full)
    fault = run_like_the_worker(item_id, context)
    assert isinstance(fault, DiskFull)
    assert catalog.get_item(context.conn, item_id)["reason"].startswith(DISK_FULL)
