"""The gateway app in-process (its create_app, a real Redis, a real SQLite catalog and real files) for
what needs no embedder, index or worker: request validation, limits, folder rules, headers,
media files with HTTP Range, and degraded health when the internal services are down."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import redis

from shared import catalog
from tests.samples import PHOTOS, VIDEOS

VIDEO = VIDEOS / "asl_gestures" / "bird.mkv"
PHOTO = PHOTOS / "n01440764_tench.JPEG"


def queued_messages(redis_url: str) -> int:
    return redis.Redis.from_url(redis_url).llen("celery")


# -- uploads -----------------------------------------------------------------------------------------
def test_upload_streams_files_to_the_job_folder_and_fails_unusable_names_alone(client, redis_url):
    before = queued_messages(redis_url)
    data = PHOTO.read_bytes()
    reply = client.post("/uploads", files=[("files", ("trip/a.jpg", data)), ("files", ("trip/../../etc/x.jpg", b"x")),
                                           ("files", ("trip/sub/b.jpg", b"second"))])
    assert reply.status_code == 202, reply.text
    job_id = reply.json()["job_id"]
    job = client.get(f"/jobs/{job_id}").json()
    assert job["source"] == "upload" and job["folder"] == "trip" and job["total"] == 3
    assert job["failed"] == 1 and "climbs out of its folder" in job["errors"][0]["reason"]
    settings = client.app.state.gateway.settings
    job_dir = settings.uploads_dir / job_id
    # Stored by position, never by the client's name; the refused file was not written at all.
    assert sorted(p.name for p in job_dir.iterdir()) == ["0", "2"]
    assert (job_dir / "0").read_bytes() == data and (job_dir / "2").read_bytes() == b"second"
    assert queued_messages(redis_url) == before + 2
    items = catalog.connect(settings.catalog_path).execute(
        "SELECT file, stored_path, status FROM job_items WHERE job_id=? ORDER BY id", (job_id,)).fetchall()
    assert [tuple(i) for i in items] == [("trip/a.jpg", f"uploads/{job_id}/0", "queued"),
                                         ("trip/../../etc/x.jpg", "", "failed"),
                                         ("trip/sub/b.jpg", f"uploads/{job_id}/2", "queued")]


def test_upload_folder_field_names_the_job_and_names_keep_their_unicode(client):
    reply = client.post("/uploads", files=[("files", ("Été/café ☕.jpg", b"1")), ("files", ("a\\b.jpg", b"2"))],
                        data={"folder": "Holidays 2024"})
    assert reply.status_code == 202
    job_id = reply.json()["job_id"]
    assert client.get(f"/jobs/{job_id}").json()["folder"] == "Holidays 2024"
    names = catalog.connect(client.app.state.gateway.settings.catalog_path).execute(
        "SELECT file FROM job_items WHERE job_id=? ORDER BY id", (job_id,)).fetchall()
    assert [n[0] for n in names] == ["Été/café ☕.jpg", "a/b.jpg"]


@pytest.mark.parametrize("limit, files, message", [
    ({"max_upload_files": 2}, [("a", b"1"), ("b", b"2"), ("c", b"3")], "too many files"),
    ({"max_file_bytes": 10}, [("a", b"small"), ("big.jpg", b"x" * 11)], "'big.jpg' is larger than"),
    ({"max_upload_bytes": 100}, [("a", b"x" * 200)], "upload is larger than"),
])
def test_upload_limits_give_413_and_leave_nothing_behind(make_client, limit, files, message):
    client = make_client(**limit)
    reply = client.post("/uploads", files=[("files", f) for f in files])
    assert reply.status_code == 413 and message in reply.json()["detail"]
    uploads_dir = client.app.state.gateway.settings.uploads_dir
    assert not uploads_dir.exists() or not any(uploads_dir.iterdir())
    assert client.get("/jobs").json()["jobs"] == []


def test_upload_refuses_malformed_requests_with_a_message(client):
    not_multipart = client.post("/uploads", json={"files": []})
    assert not_multipart.status_code == 415 and "multipart/form-data" in not_multipart.json()["detail"]
    no_files = client.post("/uploads", data={"folder": "x"}, files=[])
    assert no_files.status_code in (400, 415)
    only_field = client.post("/uploads", content=b'--b\r\nContent-Disposition: form-data; name="folder"\r\n\r\nx\r\n--b--\r\n',
                             headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert only_field.status_code == 400 and "no files" in only_field.json()["detail"]
    wrong_field = client.post("/uploads", files=[("photo", ("a.jpg", b"1"))])
    assert wrong_field.status_code == 400 and "'files'" in wrong_field.json()["detail"]
    garbage = client.post("/uploads", content=b"--b\r\nthis is not a part header\r\n\r\n",
                          headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert 400 <= garbage.status_code < 500 and garbage.json()["detail"]


# -- server-side folders -------------------------------------------------------------------------------
@pytest.fixture
def ingest_root(tmp_path) -> Path:
    root = tmp_path / "root"
    (root / "album" / "nested").mkdir(parents=True)
    (root / "album" / ".hidden").mkdir()
    shutil.copy(PHOTO, root / "album" / "fish.jpg")
    (root / "album" / "nested" / "note.jpg").write_bytes(b"not really")
    (root / "album" / ".DS_Store").write_bytes(b"x")
    (root / "album" / ".hidden" / "secret.jpg").write_bytes(b"x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.jpg").write_bytes(b"private")
    (root / "album" / "leak.jpg").symlink_to(outside / "private.jpg")
    (root / "album" / "gone.jpg").symlink_to(root / "album" / "missing.jpg")
    (root / "escape").symlink_to(outside)
    return root


def test_folder_ingest_walks_visible_files_and_refuses_links_out(client, ingest_root, redis_url):
    before = queued_messages(redis_url)
    reply = client.post("/ingest", json={"path": str(ingest_root / "album")})
    assert reply.status_code == 202, reply.text
    job = client.get(f"/jobs/{reply.json()['job_id']}").json()
    assert job["source"] == "folder" and job["folder"] == str(ingest_root / "album")
    assert job["total"] == 4 and job["failed"] == 2
    reasons = {error["file"]: error["reason"] for error in job["errors"]}
    assert "outside the library's folder" in reasons["leak.jpg"] and reasons["gone.jpg"].startswith("unreadable")
    assert queued_messages(redis_url) == before + 2
    stored = catalog.connect(client.app.state.gateway.settings.catalog_path).execute(
        "SELECT file, stored_path FROM job_items WHERE job_id=? AND status='queued' ORDER BY file",
        (job["id"],)).fetchall()
    assert [tuple(s) for s in stored] == [("fish.jpg", str(ingest_root / "album" / "fish.jpg")),
                                          ("nested/note.jpg", str(ingest_root / "album" / "nested" / "note.jpg"))]


@pytest.mark.parametrize("path, status", [
    ("{root}/album/../../outside", 403),
    ("{root}/../outside", 403),
    ("{root}/escape", 403),  # a symlink inside the root that leads out
    ("/etc", 403),
    ("album", 400),  # relative paths are ambiguous
    ("{root}/missing", 404),
    ("{root}/album/fish.jpg", 400),
    ("{root}/album/.hidden/..\u0000", 400),
])
def test_folder_ingest_refuses_paths_outside_the_roots(client, ingest_root, path, status):
    reply = client.post("/ingest", json={"path": path.format(root=ingest_root)})
    assert reply.status_code == status, reply.text
    assert reply.json()["detail"]


def test_folder_ingest_is_off_without_roots(make_client, ingest_root):
    reply = make_client(ingest_roots=[]).post("/ingest", json={"path": str(ingest_root)})
    assert reply.status_code == 403 and "MEDIASEARCH_INGEST_ROOTS" in reply.json()["detail"]


# -- jobs ------------------------------------------------------------------------------------------------
def test_unknown_job_is_404_with_a_message(client):
    for reply in (client.get("/jobs/nope"), client.post("/jobs/nope/cancel"), client.get("/jobs/nope/events")):
        assert reply.status_code == 404 and reply.json() == {"detail": "no job with id 'nope'"}


def test_cancel_then_events_end_with_the_final_status(client):
    job_id = client.post("/uploads", files=[("files", ("a.jpg", b"1")), ("files", ("b.jpg", b"2"))]).json()["job_id"]
    cancelled = client.post(f"/jobs/{job_id}/cancel").json()
    assert cancelled["status"] == "cancelled"
    with client.stream("GET", f"/jobs/{job_id}/events") as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        messages = [line for line in events.iter_lines() if line.startswith("data: ")]
    assert len(messages) == 1 and '"status":"cancelled"' in messages[0]
    listed = client.get("/jobs", params={"limit": 1}).json()["jobs"]
    assert [j["id"] for j in listed] == [job_id]


# -- search validation (before any service is asked) -------------------------------------------------------
@pytest.mark.parametrize("params, fragment", [
    ({"q": "dog", "k": 0}, "k"),
    ({"q": "dog", "k": 100000}, "k must be between 1 and 1000"),
    ({"q": ""}, "empty"),
    ({"q": "   "}, "empty"),
    ({}, "q: Field required"),
    ({"q": "dog", "k": "many"}, "k"),
    ({"q": "dog", "type": "audio"}, "type"),
    ({"q": "dog", "created_after": "yesterday"}, "created_after"),
    ({"q": "dog", "group": "album"}, "group"),
    ({"q": "x" * 1001}, "longer than"),
])
def test_search_rejects_bad_parameters_with_readable_422(client, params, fragment):
    reply = client.get("/search", params=params)
    assert reply.status_code == 422
    detail = reply.json()["detail"]
    assert isinstance(detail, str) and fragment in detail


def test_search_without_embedder_is_503_with_a_message(client):
    reply = client.get("/search", params={"q": "a dog"})
    assert reply.status_code == 503 and "embedder is unavailable" in reply.json()["detail"]


def test_image_search_rejects_missing_and_empty_files(client):
    missing = client.post("/search/image", data={"q": "dog"})
    assert missing.status_code == 422 and "file" in missing.json()["detail"]
    empty = client.post("/search/image", files={"file": ("q.jpg", b"")})
    assert empty.status_code == 400 and "empty" in empty.json()["detail"]


def test_similar_to_unknown_frame_is_404(client):
    reply = client.get("/search/similar/12345")
    assert reply.status_code == 404 and "no frame" in reply.json()["detail"]


# -- health --------------------------------------------------------------------------------------------------
def test_health_is_200_degraded_and_names_what_is_down(client):
    reply = client.get("/health")
    assert reply.status_code == 200
    health = reply.json()
    assert health["status"] == "degraded" and health["dim"] is None
    states = {s["name"]: s for s in health["services"]}
    assert set(states) == {"embedder", "index-0", "redis"}
    assert states["redis"]["ok"] and not states["embedder"]["ok"] and not states["index-0"]["ok"]
    assert "unreachable" in states["embedder"]["detail"]


# -- media files ------------------------------------------------------------------------------------------------
@pytest.fixture
def stored_video(client) -> dict:
    """A video and one frame put into the catalog and media store the way the ingest worker does."""
    gateway = client.app.state.gateway
    data = VIDEO.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    original = gateway.store.original_path(sha, ".mkv")
    gateway.store.write_atomic(original, data)
    frame, thumb = gateway.store.frame_path(sha, 0), gateway.store.thumb_path(sha, 0)
    gateway.store.write_atomic(frame, PHOTO.read_bytes())
    gateway.store.write_atomic(thumb, PHOTO.read_bytes())
    conn = gateway.catalog()
    media_id = catalog.insert_media(conn, sha256=sha, kind="video", mime="video/x-matroska", path=original,
                                    name="signs/bird.mkv", folder="signs", size=len(data), duration=2.0, fps=25.0)
    frame_id = catalog.insert_frame(conn, media_id, frame, thumb, 500, 375, timestamp=0.5)
    return {"media_id": media_id, "frame_id": frame_id, "data": data}


def test_video_serves_http_ranges(client, stored_video):
    url, data = f"/video/{stored_video['media_id']}", stored_video["data"]
    whole = client.get(url)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["accept-ranges"] == "bytes" and whole.headers["content-type"] == "video/x-matroska"
    part = client.get(url, headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.content == data[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(data)}"
    tail = client.get(url, headers={"Range": "bytes=-500"})
    assert tail.status_code == 206 and tail.content == data[-500:]
    open_ended = client.get(url, headers={"Range": f"bytes={len(data) - 10}-"})
    assert open_ended.status_code == 206 and open_ended.content == data[-10:]
    beyond = client.get(url, headers={"Range": f"bytes={len(data)}-{len(data) + 10}"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(data)}"


def test_frames_and_thumbs_are_cached_jpegs_with_etags(client, stored_video):
    reply = client.get(f"/frame/{stored_video['frame_id']}")
    assert reply.status_code == 200 and reply.headers["content-type"] == "image/jpeg"
    assert reply.content[:3] == b"\xff\xd8\xff"
    assert reply.headers["cache-control"] == "private, max-age=31536000, immutable"  # signed-in users only
    again = client.get(f"/frame/{stored_video['frame_id']}", headers={"If-None-Match": reply.headers["etag"]})
    assert again.status_code == 304 and not again.content
    assert client.get(f"/thumb/{stored_video['frame_id']}").content[:3] == b"\xff\xd8\xff"
    assert client.get("/frame/999999").status_code == 404


def test_media_metadata_original_and_video_route_only_for_videos(client, stored_video):
    info = client.get(f"/media/{stored_video['media_id']}").json()
    assert info["kind"] == "video" and info["name"] == "signs/bird.mkv" and info["media_url"].startswith("/video/")
    assert [f["timestamp"] for f in info["frames"]] == [0.5] and info["frames"][0]["indexed"] is False
    original = client.get(info["original_url"])
    assert original.content == stored_video["data"] and 'filename="bird.mkv"' in original.headers["content-disposition"]
    assert client.get("/media/999999").status_code == 404
    assert client.get("/video/999999").json()["detail"] == "no media with id 999999"


def test_delete_media_removes_catalog_rows_and_files_even_with_index_down(client, stored_video):
    gateway = client.app.state.gateway
    media = catalog.get_media(gateway.catalog(), stored_video["media_id"])
    reply = client.delete(f"/media/{stored_video['media_id']}")
    assert reply.status_code == 200 and reply.json()["rows"] == 0
    assert catalog.get_media(gateway.catalog(), stored_video["media_id"]) is None
    assert not gateway.store.resolve(media["path"]).exists()
    assert client.delete(f"/media/{stored_video['media_id']}").status_code == 404


# -- API key, CORS and headers ---------------------------------------------------------------------------------------
def test_security_headers_and_closed_cors(client, make_client):
    reply = client.get("/health", headers={"Origin": "https://evil.example"})
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["x-frame-options"] == "DENY"
    assert reply.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'self'" in reply.headers["content-security-policy"]
    assert "access-control-allow-origin" not in reply.headers
    open_client = make_client(cors_origins=["https://app.example"])
    preflight = open_client.options("/search", headers={"Origin": "https://app.example",
                                                        "Access-Control-Request-Method": "GET",
                                                        "Access-Control-Request-Headers": "X-API-Key"})
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"


def test_unknown_paths_and_methods_are_readable_4xx(client):
    assert client.get("/no/such/thing").json() == {"detail": "Not Found"}
    wrong_method = client.put("/jobs")
    assert wrong_method.status_code == 405 and wrong_method.json()["detail"]
    bad_json = client.post("/ingest", content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 422 and "JSON" in bad_json.json()["detail"]


def test_api_docs_are_served_without_a_cdn(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "/openapi.json" in page.text
    assert "http://" not in page.text and "https://" not in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/docs/assets/{asset}" in page.text
        served = client.get(f"/docs/assets/{asset}")
        assert served.status_code == 200 and len(served.content) > 10_000
