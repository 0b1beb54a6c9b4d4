"""Libraries through the gateway in-process (its create_app over a real Redis, a real catalog and real
folders; no worker, embedder or index): adding one (only under the ingest roots), listing, scanning, the
errors list, originals served from the library with HTTP Range (503 while its folder is missing),
deleting a library item (its file stays, excluded) and a library (its files stay), and POST /ingest as a
one-off scan in place, without a cap on the number of files."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
import redis

from services.watcher.watcher import Watcher, plan_watches
from shared import catalog
from shared.catalog import libraries as catalog_libraries
from shared.clients import IndexShards
from shared.libraries import requests
from shared.libraries.forget import forget_media
from shared.libraries.scan import ScanServices, scan_library
from shared.queue import SCAN_LIBRARY_TASK
from tests.conftest import wait_for
from tests.samples import PHOTOS, VIDEOS

PHOTO = PHOTOS / "n01440764_tench.JPEG"
VIDEO = VIDEOS / "asl_gestures" / "bird.mkv"


def queued_tasks(redis_url: str) -> list[tuple[str, list]]:
    """``(task name, args)`` of the messages waiting in the Celery queue."""
    tasks = []
    for raw in redis.Redis.from_url(redis_url).lrange("celery", 0, -1):
        message = json.loads(raw)
        body = json.loads(base64.b64decode(message["body"]))
        tasks.append((message["headers"]["task"], body[0]))
    return tasks


@pytest.fixture
def root(tmp_path) -> Path:
    """The ingest root of the service tests' gateways (tests/service/conftest.py), with a photo folder."""
    album = tmp_path / "root" / "Family Photos"
    (album / "2020").mkdir(parents=True)
    shutil.copy(PHOTO, album / "2020" / "tench.jpg")
    shutil.copy(VIDEO, album / "bird.mkv")
    (album / "@eaDir").mkdir()
    (album / "@eaDir" / "thumb.jpg").write_bytes(b"nas clutter")
    (album / "gone.jpg").symlink_to(album / "missing.jpg")
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "root" / "escape").symlink_to(outside)
    (tmp_path / "root" / "a-file.jpg").write_bytes(b"x")
    return tmp_path / "root"


def run_scan(client, library_id: int) -> None:
    """The scan the queued task would run on a worker."""
    gateway = client.app.state.gateway
    conn = gateway.catalog()
    shards = IndexShards(gateway.settings.index_urls, timeout=1)  # down: tombstones wait for a worker's start
    services = ScanServices(conn, gateway.settings, gateway.store, lambda items: None,
                            lambda ids: forget_media(conn, gateway.store, shards, ids))
    scan_library(library_id, services)
    shards.close()


def ingested_as(client, library_id: int, relative: str, data: bytes, kind: str = "image",
                mime: str = "image/jpeg") -> int:
    """The media a worker would have made of a library file (no frames: none are needed here)."""
    conn = client.app.state.gateway.catalog()
    location = catalog_libraries.location_by_path(conn, library_id, relative)
    sha = hashlib.sha256(data).hexdigest()
    media_id = catalog.insert_media(conn, sha256=sha, kind=kind, mime=mime, path="", name=f"lib/{relative}",
                                    folder="lib", size=len(data), status="indexed")
    catalog_libraries.bind_location(conn, location["id"], media_id, sha, location["size"], location["mtime_ns"])
    return media_id


# -- adding and reading ---------------------------------------------------------------------------------------
def test_a_folder_under_the_roots_becomes_a_library_and_its_first_scan_is_queued(client, root, redis_url):
    before = queued_tasks(redis_url)
    reply = client.post("/libraries", json={"path": str(root / "Family Photos")})
    assert reply.status_code == 201, reply.text
    library = reply.json()
    assert (library["name"], library["path"], library["status"]) == (
        "Family Photos", str((root / "Family Photos").resolve()), "scanning")
    assert (library["media"], library["failed"], library["errors"], library["one_off"]) == (0, 0, [], False)
    assert not library["watching"] and "no watcher is running" in library["watch_note"]
    assert queued_tasks(redis_url) == [*before, (SCAN_LIBRARY_TASK, [library["id"]])]
    # Asked again while that scan waits in the queue: one waiting is enough.
    assert client.post(f"/libraries/{library['id']}/scan").status_code == 202
    assert queued_tasks(redis_url) == [*before, (SCAN_LIBRARY_TASK, [library["id"]])]

    run_scan(client, library["id"])
    listed = client.get("/libraries").json()["libraries"]
    assert [entry["id"] for entry in listed] == [library["id"]]
    read = client.get(f"/libraries/{library['id']}").json()
    assert read["status"] == "scanning" and read["last_scan_at"] is not None  # its files wait for a worker
    (job,) = client.get("/jobs").json()["jobs"]
    assert (job["source"], job["total"], job["failed"]) == ("library", 3, 1)
    client.post(f"/jobs/{job['id']}/cancel")
    read = client.get(f"/libraries/{library['id']}").json()
    assert read["status"] == "ready"
    assert (read["failed"], read["errors"]) == (1, [
        {"file": "gone.jpg", "reason": "unreadable: a symbolic link whose target does not exist"}])
    assert client.get("/libraries/999").status_code == 404


@pytest.mark.parametrize("path, status", [
    ("{root}/../outside", 403),
    ("{root}/escape", 403),  # a symlink inside the root that leads out
    ("/etc", 403),
    ("Family Photos", 400),  # relative paths are ambiguous
    ("{root}/missing", 404),
    ("{root}/a-file.jpg", 400),
    ("{root}/Family Photos/..\u0000", 400),
])
def test_only_existing_folders_under_the_ingest_roots_can_be_libraries(client, root, path, status):
    reply = client.post("/libraries", json={"path": path.format(root=root)})
    assert reply.status_code == status, reply.text
    assert reply.json()["detail"]


def test_names_are_unique_and_a_folder_is_one_library(client, root, make_client):
    (root / "other").mkdir()
    first = client.post("/libraries", json={"path": str(root / "Family Photos"), "name": "Family"})
    assert first.status_code == 201 and first.json()["name"] == "Family"
    again = client.post("/libraries", json={"path": str(root / "Family Photos" / "2020" / "..")})
    assert again.status_code == 409 and "is a library already" in again.json()["detail"]
    taken = client.post("/libraries", json={"path": str(root / "other"), "name": "Family"})
    assert taken.status_code == 409 and "named 'Family' already" in taken.json()["detail"]
    slash = client.post("/libraries", json={"path": str(root / "other"), "name": "a/b"})
    assert slash.status_code == 400 and "without '/'" in slash.json()["detail"]
    off = make_client(ingest_roots=[]).post("/libraries", json={"path": str(root / "other")})
    assert off.status_code == 403 and "MEDIASEARCH_INGEST_ROOTS" in off.json()["detail"]


# -- originals served from the library ------------------------------------------------------------------------
def test_originals_are_served_from_the_library_with_ranges_and_503_while_its_folder_is_missing(client, root):
    library_id = client.post("/libraries", json={"path": str(root / "Family Photos"), "name": "lib"}).json()["id"]
    run_scan(client, library_id)
    data = VIDEO.read_bytes()
    media_id = ingested_as(client, library_id, "bird.mkv", data, kind="video", mime="video/x-matroska")
    whole = client.get(f"/video/{media_id}")
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    part = client.get(f"/media/{media_id}/original", headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.content == data[100:1100]
    info = client.get(f"/media/{media_id}").json()
    assert info["locations"] == [{"library_id": library_id, "library": "lib", "path": "bird.mkv"}]
    assert client.get(f"/libraries/{library_id}").json()["media"] == 1
    # Nothing of it is in the data volume.
    settings = client.app.state.gateway.settings
    assert not any(path.is_file() and path.stat().st_size == len(data) for path in settings.data_path.rglob("*"))

    os.rename(root / "Family Photos", root / "unmounted")
    missing = client.get(f"/video/{media_id}")
    assert missing.status_code == 503
    assert "'lib' is unavailable" in missing.json()["detail"] and "missing" in missing.json()["detail"]
    os.rename(root / "unmounted", root / "Family Photos")
    assert client.get(f"/video/{media_id}").status_code == 200


def test_deleting_a_library_item_excludes_it_and_never_deletes_the_file(client, root):
    library_id = client.post("/libraries", json={"path": str(root / "Family Photos")}).json()["id"]
    run_scan(client, library_id)
    media_id = ingested_as(client, library_id, "2020/tench.jpg", PHOTO.read_bytes())
    reply = client.delete(f"/media/{media_id}")
    assert reply.status_code == 200, reply.text
    assert (root / "Family Photos" / "2020" / "tench.jpg").read_bytes() == PHOTO.read_bytes()
    conn = client.app.state.gateway.catalog()
    location = catalog_libraries.location_by_path(conn, library_id, "2020/tench.jpg")
    assert (location["excluded"], location["media_id"]) == (1, None)
    assert client.get(f"/media/{media_id}").status_code == 404


def test_deleting_a_library_forgets_its_media_and_never_touches_its_files(client, root):
    library_id = client.post("/libraries", json={"path": str(root / "Family Photos")}).json()["id"]
    run_scan(client, library_id)
    media_id = ingested_as(client, library_id, "2020/tench.jpg", PHOTO.read_bytes())
    files = sorted(str(path) for path in (root / "Family Photos").rglob("*"))
    reply = client.delete(f"/libraries/{library_id}")
    assert reply.status_code == 200, reply.text
    assert reply.json()["media"] == 1 and reply.json()["partial"] is False  # it had no frames: no rows to tell
    assert client.get(f"/media/{media_id}").status_code == 404
    assert client.get(f"/libraries/{library_id}").status_code == 404
    assert sorted(str(path) for path in (root / "Family Photos").rglob("*")) == files
    assert client.delete(f"/libraries/{library_id}").status_code == 404


# -- POST /ingest: a one-off scan in place -----------------------------------------------------------------------
def test_ingest_scans_a_folder_once_in_place_without_a_cap(make_client, root, redis_url):
    client = make_client(max_upload_files=2)  # the cap of uploads; a folder has none
    folder = root / "Family Photos"
    for number in range(3):
        shutil.copy(PHOTO, folder / "2020" / f"copy-{number}.jpg")
    reply = client.post("/ingest", json={"path": str(folder)})
    assert reply.status_code == 202, reply.text
    job_id, library_id = reply.json()["job_id"], reply.json()["library_id"]
    job = client.get(f"/jobs/{job_id}").json()
    assert (job["source"], job["folder"], job["total"], job["failed"]) == ("folder", str(folder), 6, 1)
    assert job["errors"] == [{"file": "gone.jpg", "reason": "unreadable: a symbolic link whose target does not exist"}]
    library = client.get(f"/libraries/{library_id}").json()
    assert (library["one_off"], library["watching"], library["name"]) == (True, False, "Family Photos")
    stored = [tuple(row) for row in client.app.state.gateway.catalog().execute(
        "SELECT file, stored_path FROM job_items WHERE job_id=? AND status='queued' ORDER BY file", (job_id,))]
    assert stored == [(name, str(folder / name)) for name in
                      ("2020/copy-0.jpg", "2020/copy-1.jpg", "2020/copy-2.jpg", "2020/tench.jpg", "bird.mkv")]
    # Again, nothing changed: an empty job, nothing queued twice.
    again = client.post("/ingest", json={"path": str(folder)}).json()
    assert again["library_id"] == library_id
    assert client.get(f"/jobs/{again['job_id']}").json()["total"] == 0
    # Made a library, it is watched from now on.
    made = client.post("/libraries", json={"path": str(folder), "name": "Family"})
    assert made.status_code == 201 and (made.json()["id"], made.json()["one_off"]) == (library_id, False)


def test_ingest_refuses_an_empty_folder_and_paths_outside_the_roots(client, root):
    (root / "empty").mkdir()
    empty = client.post("/ingest", json={"path": str(root / "empty")})
    assert empty.status_code == 400 and "holds no files" in empty.json()["detail"]
    assert client.get("/libraries").json()["libraries"] == []
    assert client.post("/ingest", json={"path": str(root / "escape")}).status_code == 403


# -- the watcher ------------------------------------------------------------------------------------------------
def test_the_watcher_asks_for_scans_when_a_folder_changes_goes_and_comes_back_and_runs_alone(client, root, redis_url):
    folder = root / "Family Photos"
    library_id = client.post("/libraries", json={"path": str(folder)}).json()["id"]
    settings = client.app.state.gateway.settings
    conn = catalog.connect(settings.catalog_path)
    catalog_libraries.finish_scan(conn, library_id, 3, time.time())  # scanned just now: no periodic scan due
    store = redis.Redis.from_url(redis_url)
    requests.run_exclusively(store, library_id, lambda keep_alive: None)  # the queued first scan, run
    asked: list[int] = []
    watcher = Watcher(settings, redis.Redis.from_url(redis_url), asked.append)
    stopping = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stopping,))
    thread.start()
    try:
        wait_for(lambda: client.get(f"/libraries/{library_id}").json()["watching"], 20, message="watching")
        assert asked == []
        standby = Watcher(settings, redis.Redis.from_url(redis_url), asked.append)
        assert not standby.hold_lock()  # one watcher at a time

        (folder / "2020" / "new.jpg").write_bytes(PHOTO.read_bytes())
        wait_for(lambda: asked == [library_id], 20, message="a scan asked for after a change")
        requests.run_exclusively(store, library_id, lambda keep_alive: None)  # that scan, run

        os.rename(folder, root / "unmounted")
        wait_for(lambda: asked == [library_id] * 2, 20, message="a scan asked for when its folder went")
        requests.run_exclusively(store, library_id, lambda keep_alive: None)
        wait_for(lambda: "missing" in (client.get(f"/libraries/{library_id}").json()["watch_note"] or ""), 20)
        os.rename(root / "unmounted", folder)
        wait_for(lambda: asked == [library_id] * 3, 20, message="a scan asked for when its folder came back")
        wait_for(lambda: client.get(f"/libraries/{library_id}").json()["watching"], 20)
    finally:
        stopping.set()
        thread.join(30)
    assert not store.exists(requests.WATCHER_LOCK)  # a watcher that stops lets a standby take over at once
    assert standby.hold_lock()
    standby.release_lock()


def test_libraries_beyond_the_inotify_limit_are_rescanned_instead_and_say_why(tmp_path):
    big, small, gone = tmp_path / "big", tmp_path / "small", tmp_path / "gone"
    big.mkdir()
    small.mkdir()
    libraries = [{"id": 1, "path": str(big), "folders": 900}, {"id": 2, "path": str(small), "folders": 50},
                 {"id": 3, "path": str(gone), "folders": 10}]
    plan = plan_watches(libraries, limit=1000, rescan_minutes=15)  # 800 of the 1000 watches for libraries
    assert plan.roots == {2: small} and plan.present == {1, 2}
    assert plan.notes[2] is None
    assert plan.notes[1] == ("its 900 folders are beyond what the OS lets one user watch (1000 inotify watches in "
                             "all: fs.inotify.max_user_watches): rescanned every 15 min instead")
    assert plan.notes[3] == "its folder is missing: rescanned every 15 min until it is back"
    assert plan_watches(libraries, limit=None, rescan_minutes=15).roots == {}  # no inotify: periodic rescans only
