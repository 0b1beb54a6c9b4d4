"""A full disk is a reason, not a crash: uploads that would not leave MEDIASEARCH_DISK_RESERVE_BYTES free
are refused up front with 507, an upload that fills the disk while it is written is a 507 with its files
removed, and /health warns while the data volume runs low. Against the gateway app in-process.

The up-front refusal needs no tricks (a reserve larger than the free space). Filling the disk mid-write
needs a small tmpfs mounted on the uploads folder (root in a container that allows mounts), else skipped.
"""

from __future__ import annotations

import errno
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.gateway import uploads
from shared import durable
from shared.durable import disk_usage, is_disk_full
from shared.media_store import MediaStore
from shared.organise import views
from shared.safe_open import open_beneath
from tests.service.test_request_limits import MULTIPART, chunks, multipart, part

PHOTO_BYTES = b"x" * 600_000


def upload(client, *files: tuple[str, bytes], streamed: bool = False):
    body = multipart(*(part("files", data, name) for name, data in files))
    return client.post("/uploads", content=chunks(body) if streamed else body, headers=MULTIPART)


def left_in(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


def sqlite_full() -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("database or disk is full")
    error.sqlite_errorcode = sqlite3.SQLITE_FULL
    return error


def test_an_upload_that_would_eat_into_the_reserve_is_refused_up_front_with_507(make_client, tmp_path):
    free = disk_usage(tmp_path).free
    client = make_client(disk_reserve_bytes=free + 1024**3)
    for streamed in (False, True):  # with a Content-Length, and chunked (the reserve is already gone)
        reply = upload(client, ("a.jpg", PHOTO_BYTES), streamed=streamed)
        assert reply.status_code == 507, reply.text
        detail = reply.json()["detail"]
        assert detail.startswith("disk full: no room for the upload") and "MEDIASEARCH_DISK_RESERVE_BYTES" in detail
    assert left_in(client.app.state.gateway.settings.uploads_dir) == []
    health = client.get("/health").json()
    assert health["status"] == "degraded" and health["disk"]["full"] and health["disk"]["low"]
    assert health["disk"]["warning"].startswith("disk full:")


def test_a_server_folder_is_not_copied_so_only_a_volume_already_under_the_reserve_refuses_it(make_client, tmp_path):
    folder = tmp_path / "root" / "trip"
    folder.mkdir(parents=True)
    with open(folder / "a.jpg", "wb") as sparse:  # larger than the free space, taking none of it
        sparse.truncate(disk_usage(tmp_path).free + 100 * 1024**3)
    accepted = make_client(disk_reserve_bytes=1).post("/ingest", json={"path": str(folder)})
    assert accepted.status_code == 202, accepted.text  # indexed in place: only its frames take room
    refused = make_client(disk_reserve_bytes=disk_usage(tmp_path).free + 1024**3).post("/ingest",
                                                                                       json={"path": str(folder)})
    assert refused.status_code == 507 and "no room for the frames of" in refused.json()["detail"], refused.text


def test_the_reserve_counts_the_declared_size_of_the_upload(make_client, monkeypatch):
    # A volume with 21 MB free (whatever else runs on this machine), 20 MB of them kept in reserve.
    monkeypatch.setattr(durable, "disk_usage", lambda _path: durable.DiskUsage(total=10**12, free=21 * 1024**2))
    client = make_client(disk_reserve_bytes=20 * 1024**2)
    assert upload(client, ("small.jpg", b"x" * 1000)).status_code == 202
    reply = upload(client, ("big.jpg", b"x" * 2 * 1024**2))
    assert reply.status_code == 507 and "no room for the upload (2097" in reply.json()["detail"], reply.text


def test_health_reports_the_disk_and_warns_before_it_is_full(make_client, tmp_path):
    roomy = make_client(disk_reserve_bytes=1).get("/health").json()["disk"]
    assert roomy["free_bytes"] > 0 and roomy["total_bytes"] >= roomy["free_bytes"]
    assert (roomy["low"], roomy["full"], roomy["warning"]) == (False, False, None)
    free = disk_usage(tmp_path).free
    low = make_client(disk_reserve_bytes=free * 3 // 4).get("/health").json()["disk"]
    assert (low["low"], low["full"]) == (True, False) and low["warning"].startswith("the data volume is nearly full")


def test_a_catalog_that_is_full_is_507_and_the_upload_is_removed(client, monkeypatch):
    def full(*_args, **_kwargs):
        raise sqlite_full()

    monkeypatch.setattr(uploads, "create_and_enqueue", full)
    reply = upload(client, ("a.jpg", b"x" * 1000))
    assert reply.status_code == 507 and "the catalog could not record the upload" in reply.json()["detail"]
    assert left_in(client.app.state.gateway.settings.uploads_dir) == []


@pytest.mark.parametrize("error, status", [
    (OSError(errno.ENOSPC, "No space left on device"), 507),
    (sqlite_full(), 507),
    (OSError(errno.EACCES, "Permission denied"), 500),
])
def test_any_write_that_finds_the_disk_full_is_507_not_500(client, monkeypatch, error, status):
    def fails(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(views, "create_collection", fails)
    reply = client.post("/collections", json={"name": "trip", "media_ids": []})
    assert reply.status_code == status, reply.text
    assert reply.json()["detail"].startswith("disk full:" if status == 507 else "internal error (PermissionError)")


def test_is_disk_full_knows_enospc_edquot_and_sqlite_full(tmp_path):
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    conn = sqlite3.connect(tmp_path / "tiny.sqlite3")
    conn.execute("CREATE TABLE t (x BLOB)")
    conn.execute("PRAGMA max_page_count = 4")
    with pytest.raises(sqlite3.OperationalError) as full:
        for _ in range(100):
            conn.execute("INSERT INTO t VALUES (?)", (b"x" * 4096,))
    assert is_disk_full(full.value)
    assert not is_disk_full(sqlite3.OperationalError("database is locked"))


@pytest.fixture
def tiny_volume(tmp_path) -> Iterator[Path]:
    """A 1 MB tmpfs mounted where the gateway writes uploads (data/uploads), unmounted afterwards."""
    folder = tmp_path / "data" / "uploads"
    folder.mkdir(parents=True)
    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot make a small volume to fill")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a 1 MB tmpfs to fill (needs root in a container that allows mounts): "
                    f"{mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_an_upload_that_fills_the_disk_while_written_is_507_and_removed_and_the_next_one_fits(
        tiny_volume, make_client):
    client = make_client(disk_reserve_bytes=0)
    # Chunked, so its size is not known up front: the disk fills while the second file is written.
    reply = upload(client, ("a.jpg", PHOTO_BYTES), ("b.jpg", PHOTO_BYTES), streamed=True)
    assert reply.status_code == 507, reply.text
    assert reply.json()["detail"].startswith("disk full: the data volume filled up while the upload was stored")
    assert left_in(tiny_volume) == []
    # The space is back: the gateway goes on as before.
    assert upload(client, ("a.jpg", PHOTO_BYTES), streamed=True).status_code == 202


def test_the_media_store_leaves_no_half_written_file_on_a_full_disk(tiny_volume, tmp_path):
    store = MediaStore(tiny_volume)  # as the ingest worker writes originals, frames and thumbnails
    big = b"x" * (2 * 1024**2)
    source = tmp_path / "big.jpg"
    source.write_bytes(big)
    with open_beneath(source, [tmp_path]) as opened:
        for write in (lambda: store.write_atomic("media/frame.jpg", big),
                      lambda: store.adopt(opened, "media/original.jpg", link=False)):
            with pytest.raises(OSError) as full:
                write()
            assert is_disk_full(full.value)
            assert left_in(tiny_volume) == []
