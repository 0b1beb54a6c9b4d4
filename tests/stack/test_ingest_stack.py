"""The ingest worker with the real product around it: a private stack (Redis, embedder with a tiny CLIP,
index, Celery worker, gateway) whose ingest roots include a scratch folder. Some tests go through the
gateway and the Celery worker; others call ``ingest_item`` directly against the same catalog and embedder,
to drive the idempotency and resume paths step by step."""

from __future__ import annotations

import os
import shutil
import sqlite3
from itertools import pairwise
from pathlib import Path

import httpx
import pytest
from PIL import Image

from services.ingest_worker.pipeline import IngestContext, TransientFault, ingest_item
from shared import catalog
from shared.clients import EmbedderClient
from tests.conftest import free_port, running_stack, wait_for
from tests.samples import INT8_NOISE, PHOTOS, SHARED_DATA, VIDEOS, bomb_png, ffmpeg, jpeg

ALL_PHOTOS = sorted(PHOTOS.glob("*.JPEG"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_clip_dir):
    tmp = tmp_path_factory.mktemp("ingest-stack")
    inbox = tmp / "inbox"
    inbox.mkdir()
    with running_stack(tmp, tiny_clip_dir, "ingest", MEDIASEARCH_INGEST_ROOTS=f"{SHARED_DATA},{inbox}",
                     MEDIASEARCH_INGEST_RETRY_BASE_S="0.2", MEDIASEARCH_INGEST_RETRY_MAX_S="1",
                     MEDIASEARCH_INGEST_MAX_RETRIES="200") as running:
        running.inbox = inbox
        yield running


@pytest.fixture
def ctx(stack):
    context = IngestContext.open(stack.settings)
    yield context
    context.close()


def photo_bytes(index: int, size: tuple[int, int] | None = None, mark: int = 0) -> bytes:
    """A real photo as JPEG bytes; ``mark`` changes one pixel, making new content that looks the same."""
    with Image.open(ALL_PHOTOS[index]) as photo:
        image = photo.convert("RGB")
    if size:
        image = image.resize(size)
    image.putpixel((0, 0), (mark % 251, 17, 29))
    return jpeg(image)


def folder_job(stack, path: Path) -> dict:
    reply = stack.client.post("/ingest", json={"path": str(path)})
    assert reply.status_code == 202, reply.text
    return stack.wait_job(reply.json()["job_id"])


def committed_rows(stack) -> int:
    reply = httpx.get(f"{stack.settings.embedder_url}/health", headers=stack.internal_headers, timeout=10)
    return reply.json()["committed_rows"]


def table_sizes(conn: sqlite3.Connection) -> tuple[int, int, int]:
    return tuple(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                 for table in ("media", "frames", "video_vectors"))


def items_of(conn: sqlite3.Connection, job_id: str) -> dict[str, sqlite3.Row]:
    return {row["file"]: row for row in conn.execute("SELECT * FROM job_items WHERE job_id=?", (job_id,))}


def run_direct(ctx: IngestContext, files: list[tuple[str, str]], folder: str = "direct"):
    job_id, item_ids = catalog.create_job(ctx.conn, "folder", folder, files)
    return job_id, item_ids


# -- through the gateway and the Celery worker ------------------------------------------------------
def test_the_videos_folder_gives_frames_for_every_clip(stack, ctx):
    job = folder_job(stack, VIDEOS)
    assert job["status"] == "done"
    assert job["errors"] == [{"file": "LICENSE.intel-sample-videos.txt",
                              "reason": "not an image or video (content looks like text)"}]
    clips = sorted(p.relative_to(VIDEOS).as_posix() for p in VIDEOS.rglob("*") if p.suffix in (".mp4", ".mkv"))
    assert job["indexed"] == len(clips) == 23
    # Named after the folder (a one-off library, "videos") and their paths in it.
    media = {row["name"].removeprefix("videos/"): row for row in ctx.conn.execute("SELECT * FROM media WHERE kind='video'")}
    assert sorted(media) == clips
    total_frames = total_due = 0
    for name, video in media.items():
        assert video["status"] == "indexed" and video["mime"] in ("video/mp4", "video/x-matroska")
        assert video["width"] > 0 and video["height"] > 0 and video["fps"] > 0 and video["duration"] > 1
        frames = catalog.frames_of_media(ctx.conn, video["id"])
        times = [frame["timestamp"] for frame in frames]
        assert frames and times[0] == 0.0, name
        assert all(a < b for a, b in pairwise(times)), name
        assert times[-1] < video["duration"], name
        assert all(frame["vector_row"] is not None for frame in frames), name
        assert catalog.video_row(ctx.conn, video["id"]) is not None, name
        due = video["duration"] * stack.settings.video_sample_fps
        assert len(frames) <= due + 1, name
        total_frames += len(frames)
        total_due += due
    assert total_frames < 0.9 * total_due  # still scenes keep fewer frames than one per second
    # Indexed in place: nothing copied, the original served from the folder.
    assert all(video["path"] == "" for video in media.values())
    served = stack.client.get(f"/video/{media['bottle-detection.mp4']['id']}", headers={"Range": "bytes=0-999"})
    assert served.status_code == 206 and served.content == (VIDEOS / "bottle-detection.mp4").read_bytes()[:1000]
    # Every frame is served, and a search by a frame finds that very moment first.
    for name in ("bottle-detection.mp4", "car-detection.mp4", "one-by-one-person-detection.mp4"):
        video = media[name]
        for frame in catalog.frames_of_media(ctx.conn, video["id"])[::7]:
            served = stack.client.get(f"/frame/{frame['id']}")
            assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
            assert served.content[:3] == b"\xff\xd8\xff"
            found = stack.client.post("/search/image", files={"file": ("frame.jpg", served.content)},
                                      params={"k": 5}).json()["results"]
            assert found[0]["video_id"] == video["id"], name
            # The very moment, at the top or within int8 noise of it (an int8 pass scales its activations per
            # batch: a query embedded alone and a frame embedded in a batch differ by ~1e-4, and still scenes
            # hold near-identical frames)
            itself = next(hit for hit in found if hit["frame_id"] == frame["id"])
            assert (itself["video_id"], itself["timestamp"]) == (video["id"], frame["timestamp"]), name
            assert itself["similarity"] >= found[0]["similarity"] - INT8_NOISE, name


def test_bad_files_fail_alone_with_their_reasons(stack, ctx):
    bad = stack.inbox / "mixed"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "notes.jpg").write_text("this is not a photo, it is a shopping list\n")
    photo = ALL_PHOTOS[10].read_bytes()
    (bad / "cut.jpg").write_bytes(photo[: len(photo) // 2])
    (bad / "noise.mp4").write_bytes(os.urandom(64 * 1024))
    (bad / "bomb.png").write_bytes(bomb_png(100_000, 100_000))
    (bad / "good-1.jpg").write_bytes(photo_bytes(11))
    (bad / "good-2.jpg").write_bytes(photo_bytes(12))
    job = folder_job(stack, bad)
    reasons = {error["file"]: error["reason"] for error in job["errors"]}
    assert reasons.pop("empty.jpg") == "empty file"
    assert reasons.pop("notes.jpg") == "not an image or video (content looks like text)"
    assert reasons.pop("cut.jpg") == "truncated or corrupt image"
    assert reasons.pop("noise.mp4") == "not an image or video (unrecognised content)"
    assert reasons.pop("bomb.png").startswith("image too large: it declares 10000000000 pixels")
    assert reasons == {}
    assert (job["status"], job["indexed"], job["failed"]) == ("done", 2, 5)
    assert stack.stack.service("worker-0").process.poll() is None  # the worker is still alive


def test_an_unreadable_entry_of_a_folder_is_reported_not_skipped(stack):
    # Running as root, permissions cannot make a file unreadable; a dangling symlink can.
    folder = stack.inbox / "dangling"
    folder.mkdir()
    (folder / "gone.jpg").symlink_to(folder / "no-such-file.jpg")
    (folder / "good.jpg").write_bytes(photo_bytes(13))
    job = folder_job(stack, folder)
    assert [error["file"] for error in job["errors"]] == ["gone.jpg"], (
        "the gateway's folder listing must turn entries it cannot ingest into failed items, not drop them")
    assert job["errors"][0]["reason"].startswith("unreadable")
    assert (job["indexed"], job["failed"]) == (1, 1)


def test_the_same_folder_twice_adds_no_rows(stack, ctx):
    folder = stack.inbox / "twice"
    folder.mkdir()
    for number in range(3):
        (folder / f"photo-{number}.jpg").write_bytes(photo_bytes(20 + number))
    shutil.copy(VIDEOS / "asl_gestures" / "yes.mkv", folder / "yes.mkv")
    first = folder_job(stack, folder)
    assert (first["indexed"], first["duplicates"], first["failed"]) == (3, 1, 0)  # yes.mkv came with the videos
    sizes, rows = table_sizes(ctx.conn), committed_rows(stack)
    second = folder_job(stack, folder)  # nothing changed: nothing to do
    assert (second["status"], second["total"]) == ("done", 0)
    assert table_sizes(ctx.conn) == sizes
    assert committed_rows(stack) == rows


def test_an_upload_is_linked_into_the_store_and_duplicates_in_it_are_dropped(stack, ctx):
    data = photo_bytes(30)
    job_id = stack.upload([("trip/a.jpg", data), ("trip/same-as-a.jpg", data), ("trip/b.jpg", photo_bytes(31))])
    job = stack.wait_job(job_id)
    assert (job["indexed"], job["duplicates"], job["failed"]) == (2, 1, 0)
    items = items_of(ctx.conn, job_id)
    assert items["trip/a.jpg"]["media_id"] == items["trip/same-as-a.jpg"]["media_id"]
    media = catalog.get_media(ctx.conn, items["trip/a.jpg"]["media_id"])
    assert (media["name"], media["folder"], media["mime"]) in (("trip/a.jpg", "trip", "image/jpeg"),
                                                               ("trip/same-as-a.jpg", "trip", "image/jpeg"))
    assert (stack.settings.data_path / media["path"]).read_bytes() == data
    assert not (stack.settings.uploads_dir / job_id).exists()  # nothing left behind in uploads/


def test_a_resized_copy_is_recorded_as_a_near_duplicate(stack, ctx):
    original, copy = photo_bytes(40), photo_bytes(40, size=(250, 187), mark=3)
    job = stack.wait_job(stack.upload([("near/original.jpg", original)]))
    assert job["indexed"] == 1
    job = stack.wait_job(stack.upload([("near/small-copy.jpg", copy)]))
    assert job["indexed"] == 1  # still indexed and searchable
    by_name = {row["name"]: row for row in ctx.conn.execute("SELECT * FROM media WHERE folder='near'")}
    first, second = by_name["near/original.jpg"], by_name["near/small-copy.jpg"]
    assert first["near_duplicate_of"] is None
    assert second["near_duplicate_of"] == first["id"]
    assert catalog.frames_of_media(ctx.conn, second["id"])[0]["vector_row"] is not None
    groups = {group["original"]["id"]: [m["id"] for m in group["duplicates"]]
              for group in catalog.near_duplicates(ctx.conn)}
    assert groups[first["id"]] == [second["id"]]


# -- the pipeline called directly: idempotency and resuming -----------------------------------------
def test_a_redelivered_task_for_a_finished_item_does_nothing(stack, ctx):
    path = stack.inbox / "redelivered.jpg"
    path.write_bytes(photo_bytes(50))
    _, (item_id,) = run_direct(ctx, [("redelivered.jpg", str(path))])
    first = ingest_item(item_id, ctx)
    assert first.status == "indexed"
    sizes, rows = table_sizes(ctx.conn), committed_rows(stack)
    assert ingest_item(item_id, ctx) == first
    assert (table_sizes(ctx.conn), committed_rows(stack)) == (sizes, rows)


def test_unfinished_media_is_resumed_not_duplicated(stack, ctx):
    path = stack.inbox / "resumed.mp4"  # Matroska content under an .mp4 name: the content decides
    ffmpeg("-i", str(VIDEOS / "asl_gestures" / "please.mkv"), "-vf", "scale=320:-2", "-c:v", "mjpeg", "-f", "matroska",
           str(path))
    _, (item_id,) = run_direct(ctx, [("resumed.mp4", str(path))])
    # A real fault: nothing listens on this port, so the embedder cannot be reached.
    offline = IngestContext(ctx.settings, ctx.conn, ctx.store, EmbedderClient(f"http://127.0.0.1:{free_port()}"),
                            ctx.index_http)
    with pytest.raises(TransientFault, match="embedder unreachable"):
        ingest_item(item_id, offline)
    item = catalog.get_item(ctx.conn, item_id)
    media = catalog.get_media(ctx.conn, item["media_id"])
    assert (item["status"], media["status"], media["mime"]) == ("running", "pending", "video/x-matroska")
    frames = catalog.frames_of_media(ctx.conn, media["id"])
    assert frames and all(frame["vector_row"] is None for frame in frames)
    # The same content arriving meanwhile in another job waits for the first (no second media row).
    twin = stack.inbox / "twin.mkv"
    shutil.copy(path, twin)
    _, (twin_id,) = run_direct(ctx, [("twin.mkv", str(twin))])
    assert ingest_item(twin_id, ctx).status == "duplicate"
    sizes = table_sizes(ctx.conn)
    outcome = ingest_item(item_id, ctx)  # the redelivered task, with the embedder back
    assert (outcome.status, outcome.media_id) == ("indexed", media["id"])
    assert table_sizes(ctx.conn)[:2] == sizes[:2]
    assert catalog.get_media(ctx.conn, media["id"])["status"] == "indexed"
    assert all(frame["vector_row"] is not None for frame in catalog.frames_of_media(ctx.conn, media["id"]))
    assert catalog.video_row(ctx.conn, media["id"]) is not None


def test_items_of_a_cancelled_job_are_skipped(stack, ctx):
    path = stack.inbox / "cancelled.jpg"
    path.write_bytes(photo_bytes(60))
    job_id, item_ids = run_direct(ctx, [("cancelled.jpg", str(path))])
    catalog.cancel_job(ctx.conn, job_id)
    sizes = table_sizes(ctx.conn)
    assert ingest_item(item_ids[0], ctx).status == "cancelled"
    assert table_sizes(ctx.conn) == sizes


def test_unreadable_entries_and_paths_outside_the_roots_fail_with_a_reason(stack, ctx, tmp_path):
    folder = stack.inbox / "unreadable"
    folder.mkdir()
    (folder / "dangling.jpg").symlink_to(folder / "missing.jpg")
    (folder / "a-folder.jpg").mkdir()
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(photo_bytes(70))
    _, item_ids = run_direct(ctx, [("dangling.jpg", str(folder / "dangling.jpg")),
                                   ("a-folder.jpg", str(folder / "a-folder.jpg")),
                                   ("outside.jpg", str(outside)),
                                   ("climbing", "uploads/../../etc/passwd")])
    reasons = [ingest_item(item_id, ctx).reason for item_id in item_ids]
    assert reasons == ["unreadable: a symbolic link whose target does not exist",
                       "unreadable: a folder, not a file",
                       "the file is outside the configured ingest roots",
                       "'uploads/../../etc/passwd' is outside the data directory"]


# -- last: it stops the embedder ---------------------------------------------------------------------
def test_an_item_waits_and_retries_while_the_embedder_is_down(stack, ctx):
    stack.stack.kill("embedder")
    try:
        job_id = stack.upload([("retry/photo.jpg", photo_bytes(80))])
        wait_for(lambda: (items_of(ctx.conn, job_id)["retry/photo.jpg"]["reason"] or "").startswith(
            "waiting to retry: embedder unreachable"), 60, message="the item to wait for a retry")
    finally:
        stack.stack.restart("embedder")
    job = stack.wait_job(job_id)
    assert (job["indexed"], job["failed"]) == (1, 0)
    assert items_of(ctx.conn, job_id)["retry/photo.jpg"]["reason"] is None
