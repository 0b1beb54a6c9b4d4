"""The public API end to end on the shared live stack (real Redis, embedder with a tiny CLIP, index,
Celery worker, gateway): upload, job progress, search by text/image/frame, filters, grouping, media
files and deletion. The stack is shared, so these tests only rely on what they put in themselves."""

from __future__ import annotations

import io
import json
import subprocess
import uuid

import numpy as np
import pytest
from PIL import Image

from tests.conftest import PHOTOS, VIDEOS
from tests.samples import INT8_NOISE

ALL_PHOTOS = sorted(PHOTOS.glob("*.JPEG"))
# A spread other test files are unlikely to pick, so these are new content to the shared catalog.
OUR_PHOTOS = ALL_PHOTOS[13::83][:12]
SOURCE_VIDEO = VIDEOS / "bottle-detection.mp4"
RESULT_FIELDS = {"frame_id", "media_id", "video_id", "timestamp", "similarity", "kind", "name", "frame_url",
                 "thumb_url", "media_url"}


def noise_jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(96, 128, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photo_job(live_stack) -> dict:
    """Our 12 photos plus three bad files, uploaded as one folder and finished."""
    folder = f"gw-{uuid.uuid4().hex[:8]}"
    truncated = ALL_PHOTOS[1].read_bytes()
    files = [(f"{folder}/{path.name}", path.read_bytes()) for path in OUR_PHOTOS]
    files += [(f"{folder}/bad/empty.jpg", b""), (f"{folder}/bad/notes.jpg", b"just some text, not a photo\n" * 20),
              (f"{folder}/bad/truncated.jpg", truncated[: len(truncated) // 3])]
    job = live_stack.wait_job(live_stack.upload(files))
    return {"folder": folder, "job": job}


def search_image(live_stack, data: bytes, **params) -> dict:
    reply = live_stack.client.post("/search/image", files={"file": ("query.jpg", data)}, params=params)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_upload_indexes_the_photos_and_names_each_bad_file(photo_job):
    job = photo_job["job"]
    assert job["status"] == "done" and job["total"] == 15 and job["processed"] == 15
    assert job["folder"] == photo_job["folder"]
    assert job["indexed"] + job["duplicates"] == 12 and job["failed"] == 3
    reasons = {error["file"].rsplit("/", 1)[-1]: error["reason"] for error in job["errors"]}
    assert set(reasons) == {"empty.jpg", "notes.jpg", "truncated.jpg"}
    for reason in reasons.values():
        assert reason and "Traceback" not in reason and len(reason) < 500


def test_search_by_an_uploaded_photo_finds_it_first(live_stack, photo_job):
    for path in (OUR_PHOTOS[0], OUR_PHOTOS[7]):
        found = search_image(live_stack, path.read_bytes(), k=5)
        best = found["results"][0]
        assert best["name"].endswith(path.name) and best["similarity"] >= 0.99
        assert found["partial"] is False


def test_text_search_returns_k_complete_results(live_stack, photo_job):
    reply = live_stack.client.get("/search", params={"q": "a dog", "k": 7})
    assert reply.status_code == 200, reply.text
    found = reply.json()
    assert found["query"] == "a dog" and found["k"] == 7 and len(found["results"]) == 7
    similarities = [r["similarity"] for r in found["results"]]
    assert similarities == sorted(similarities, reverse=True)
    # Where the time went (what `make bench-search` reads), beside the security headers.
    spans = {entry.split(";")[0].strip() for entry in reply.headers["server-timing"].split(",")}
    assert spans == {"embed", "index", "total"}
    assert reply.headers["x-content-type-options"] == "nosniff"
    for result in found["results"]:
        assert RESULT_FIELDS <= set(result)
        assert result["frame_url"] == f"/frame/{result['frame_id']}"
        assert result["thumb_url"] == f"/thumb/{result['frame_id']}"
    photo = next(r for r in found["results"] if r["kind"] == "image")
    assert photo["media_url"] == f"/media/{photo['media_id']}/original" and photo["video_id"] is None
    frame = live_stack.client.get(photo["frame_url"])
    assert frame.status_code == 200 and frame.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(frame.content)).format == "JPEG"
    assert live_stack.client.get(photo["thumb_url"]).content[:3] == b"\xff\xd8\xff"
    assert live_stack.client.get(photo["media_url"]).status_code == 200
    info = live_stack.client.get(f"/media/{photo['media_id']}").json()
    assert info["kind"] == "image" and photo["frame_id"] in [f["frame_id"] for f in info["frames"]]


def test_bad_search_requests_get_4xx_with_a_message(live_stack):
    for params in ({"q": "dog", "k": 0}, {"q": "dog", "k": 100000}, {"q": ""}):
        reply = live_stack.client.get("/search", params=params)
        assert reply.status_code == 422 and reply.json()["detail"]
    unknown = live_stack.client.get("/jobs/does-not-exist")
    assert unknown.status_code == 404 and "does-not-exist" in unknown.json()["detail"]
    not_image = live_stack.client.post("/search/image", files={"file": ("q.jpg", b"plain text")})
    assert 400 <= not_image.status_code < 500 and not_image.json()["detail"]


def test_pages_threshold_and_folder_filter(live_stack, photo_job):
    query = OUR_PHOTOS[3].read_bytes()
    whole = search_image(live_stack, query, k=6)["results"]
    first, second = (search_image(live_stack, query, k=3, offset=offset)["results"] for offset in (0, 3))
    assert [r["frame_id"] for r in first + second] == [r["frame_id"] for r in whole]
    threshold = whole[2]["similarity"]
    above = search_image(live_stack, query, k=50, min_similarity=threshold)["results"]
    assert len(above) >= 3 and all(r["similarity"] >= threshold for r in above)
    # The filter is applied inside the index search: all k come from the folder, even though other
    # media are more similar to a text query than some of ours.
    ours = live_stack.client.get("/search", params={"q": "a photo", "k": 12, "folder": photo_job["folder"]}).json()
    assert len(ours["results"]) == 12
    assert all(r["name"].startswith(photo_job["folder"] + "/") for r in ours["results"])
    nothing = live_stack.client.get("/search", params={"q": "a photo", "folder": "no-such-folder"}).json()
    assert nothing["results"] == []
    images = live_stack.client.get("/search", params={"q": "a photo", "k": 20, "type": "image"}).json()
    assert images["results"] and all(r["kind"] == "image" for r in images["results"])
    future = live_stack.client.get("/search", params={"q": "a photo", "created_after": "2999-01-01T00:00:00Z"})
    assert future.json()["results"] == []


def test_more_like_this_and_text_plus_image(live_stack, photo_job):
    anchor = search_image(live_stack, OUR_PHOTOS[5].read_bytes(), k=1)["results"][0]
    similar = live_stack.client.get(f"/search/similar/{anchor['frame_id']}", params={"k": 5}).json()
    assert len(similar["results"]) == 5
    assert anchor["frame_id"] not in [r["frame_id"] for r in similar["results"]]

    # Text and image together: the query is the normalised mean of both unit vectors, so for every
    # photo similarity(combined) * |u_image + u_text| == similarity(image) + similarity(text).
    scope = {"k": 12, "folder": photo_job["folder"]}
    query = OUR_PHOTOS[5].read_bytes()
    by_image = {r["frame_id"]: r["similarity"] for r in search_image(live_stack, query, **scope)["results"]}
    by_text = {r["frame_id"]: r["similarity"]
               for r in live_stack.client.get("/search", params={"q": "a photo", **scope}).json()["results"]}
    reply = live_stack.client.post("/search/image", files={"file": ("q.jpg", query)}, data={"q": "a photo"},
                                   params=scope).json()
    assert reply["query"].endswith("+ a photo")
    combined = {r["frame_id"]: r["similarity"] for r in reply["results"]}
    assert len(combined) == 12 and set(combined) == set(by_image) == set(by_text)
    assert_linear(combined, {f: by_image[f] + by_text[f] for f in combined})
    # Weighted: the words' share of the query is text_weight.
    weighted = live_stack.client.post("/search/image", files={"file": ("q.jpg", query)},
                                      data={"q": "a photo", "text_weight": "0.8"}, params=scope).json()["results"]
    assert_linear({r["frame_id"]: r["similarity"] for r in weighted},
                  {f: 0.2 * by_image[f] + 0.8 * by_text[f] for f in combined})
    refused = live_stack.client.post("/search/image", files={"file": ("q.jpg", query)},
                                     data={"q": "a photo", "text_weight": "2"})
    assert refused.status_code == 422 and "text_weight" in refused.text


def assert_linear(similarities: dict[int, float], expected: dict[int, float]) -> None:
    """Each similarity is the expected combination of others up to one positive factor (the combined query
    vector's length before it was normalised), fitted by least squares."""
    assert set(similarities) == set(expected)
    frames = sorted(similarities)
    got, want = (np.array([values[f] for f in frames]) for values in (similarities, expected))
    factor = float(got @ want / (got @ got))
    assert factor > 0 and np.allclose(got * factor, want, atol=2e-3), (got * factor, want)


def test_a_minus_term_subtracts_its_concept(live_stack, photo_job):
    """`a photo -dog`: the query is u("a photo") - u("dog"), normalised."""
    scope = {"k": 12, "folder": photo_job["folder"]}

    def similarities(q: str) -> dict[int, float]:
        reply = live_stack.client.get("/search", params={"q": q, **scope})
        assert reply.status_code == 200, reply.text
        return {r["frame_id"]: r["similarity"] for r in reply.json()["results"]}

    photo, dog = similarities("a photo"), similarities("dog")
    without = similarities("a photo -dog")
    assert set(photo) == set(dog) == set(without)
    assert_linear(without, {f: photo[f] - dog[f] for f in without})
    assert similarities('a "photo -dog"') != without  # quoted: words to look for, minus and all
    for q in ("-dog", '-"a dog" -cat'):
        reply = live_stack.client.get("/search", params={"q": q})
        assert reply.status_code == 422 and "subtract" in reply.json()["detail"]


@pytest.fixture(scope="module")
def video_bytes(tmp_path_factory) -> bytes:
    """15 s cut from a real clip (stream copy, our own tag): content no other test uploads."""
    target = tmp_path_factory.mktemp("video") / "cut.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-ss", "3", "-t", "15", "-i", str(SOURCE_VIDEO), "-c", "copy",
                    "-metadata", "comment=mediasearch gateway test", str(target)], check=True, timeout=120)
    return target.read_bytes()


@pytest.fixture(scope="module")
def video_job(live_stack, video_bytes) -> dict:
    job = live_stack.wait_job(live_stack.upload([("gw-video/bottles.mp4", video_bytes)]))
    assert job["status"] == "done" and job["indexed"] + job["duplicates"] == 1, job
    found = live_stack.client.get("/search", params={"q": "a hand", "k": 50, "type": "video", "folder": "gw-video"})
    media_id = found.json()["results"][0]["media_id"]
    return {"job": job, "media": live_stack.client.get(f"/media/{media_id}").json()}


def test_video_range_requests_return_the_right_bytes(live_stack, video_job, video_bytes):
    data = video_bytes
    url = video_job["media"]["media_url"]
    assert url == f"/video/{video_job['media']['id']}"
    part = live_stack.client.get(url, headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == data[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(data)}"
    assert live_stack.client.get(url, headers={"Range": f"bytes={len(data) + 5}-"}).status_code == 416


def test_group_by_video_collapses_frames_into_moments(live_stack, video_job):
    frames = video_job["media"]["frames"]
    assert len(frames) >= 2 and all(f["timestamp"] is not None for f in frames)
    query = live_stack.client.get(frames[0]["frame_url"]).content
    flat = search_image(live_stack, query, k=len(frames), type="video", folder="gw-video")["results"]
    assert len(flat) == len(frames) and {r["media_id"] for r in flat} == {video_job["media"]["id"]}
    grouped = search_image(live_stack, query, k=5, group="video", type="video", folder="gw-video")["results"]
    assert len(grouped) == 1
    video = grouped[0]
    assert video["kind"] == "video" and video["video_id"] == video_job["media"]["id"]
    moments = video["moments"]
    assert len(moments) == len(frames)
    assert moments[0]["frame_id"] == video["frame_id"]
    # the queried frame at the top, or within int8 noise of it (activations are scaled per forward pass)
    itself = next(m for m in moments if m["frame_id"] == frames[0]["frame_id"])
    assert itself["similarity"] >= moments[0]["similarity"] - INT8_NOISE
    assert [m["similarity"] for m in moments] == sorted((m["similarity"] for m in moments), reverse=True)
    assert {m["timestamp"] for m in moments} == {f["timestamp"] for f in frames}


def test_job_events_stream_progress_until_done(live_stack):
    job_id = live_stack.upload([(f"gw-events/{n}.jpg", noise_jpeg(1000 + n)) for n in range(3)])
    statuses = []
    with live_stack.client.stream("GET", f"/jobs/{job_id}/events") as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        for line in events.iter_lines():
            if line.startswith("data: "):
                statuses.append(json.loads(line[6:]))
    assert statuses[-1]["status"] == "done" and statuses[-1]["indexed"] == 3
    processed = [s["processed"] for s in statuses]
    assert processed == sorted(processed) and len(set(map(json.dumps, statuses))) == len(statuses)


def test_delete_media_removes_it_from_search_and_disk(live_stack):
    data = noise_jpeg(7)
    job = live_stack.wait_job(live_stack.upload([("gw-delete/noise.jpg", data)]))
    assert job["indexed"] == 1
    best = search_image(live_stack, data, k=1)["results"][0]
    assert best["name"] == "gw-delete/noise.jpg"
    deleted = live_stack.client.delete(f"/media/{best['media_id']}")
    assert deleted.status_code == 200 and deleted.json()["rows"] >= 1 and deleted.json()["partial"] is False
    assert live_stack.client.get(f"/media/{best['media_id']}").status_code == 404
    assert live_stack.client.get(best["frame_url"]).status_code == 404
    after = search_image(live_stack, data, k=20)["results"]
    assert best["media_id"] not in [r["media_id"] for r in after]


def test_health_sums_the_stack(live_stack, photo_job):
    reply = live_stack.client.get("/health")
    assert reply.status_code == 200
    health = reply.json()
    assert health["status"] == "ok", health
    assert health["media"] >= 12 and health["frames"] >= 12 and health["index_nodes"] >= 12
    assert health["dim"] == 64 and health["real_weights"] is False and health["model_id"]
    assert {s["name"] for s in health["services"]} == {"embedder", "index-0", "redis"}
    assert all(s["ok"] for s in health["services"])


def test_folder_ingest_refuses_traversal(live_stack):
    root = str(live_stack.settings.ingest_roots[0])
    for path in (f"{root}/../../etc", f"{root}/photos/../../../", "/etc/passwd"):
        reply = live_stack.client.post("/ingest", json={"path": path})
        assert reply.status_code == 403 and "outside the ingest roots" in reply.json()["detail"]
