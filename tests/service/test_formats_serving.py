"""Formats end to end through the gateway in-process: an upload holding an iPhone Live Photo (a HEIC and its
MOV) and an HEVC video becomes two items, the worker's pipeline (run here on the same catalog and data
volume, with the stand-in embedder) stores the photo with its motion clip and the video with an H.264
preview, and the gateway serves the clip at /media/{id}/motion and the preview at /video/{id}, both with
HTTP Range; deleting the media removes them."""

from __future__ import annotations

import io

import httpx
from PIL import Image

from services.ingest_worker.pipeline import IngestContext, ingest_item
from shared import catalog
from shared.media_store import MediaStore
from tests.samples import PHOTOS, codec_of, colour_change_clip, exif_orientation, phone_clip
from tests.stand_ins import StandInEmbedder


def video_codec(data: bytes, tmp_path) -> str:
    path = tmp_path / "served"
    path.write_bytes(data)
    return codec_of(path)


def test_a_live_photo_and_an_hevc_video_are_served_with_their_clip_and_preview(client, tmp_path):
    heic = io.BytesIO()
    Image.open(PHOTOS / "n01440764_tench.JPEG").save(heic, "HEIF", quality=70, exif=exif_orientation(6))
    motion = phone_clip(tmp_path, "IMG_0001.MOV", -90, seconds=2.5).read_bytes()
    hevc = tmp_path / "party.mov"
    colour_change_clip(hevc, "-c:v", "libx265", "-tag:v", "hvc1", "-x265-params", "log-level=error", "-c:a", "aac")
    reply = client.post("/uploads", files=[("files", ("phone/IMG_0001.HEIC", heic.getvalue())),
                                           ("files", ("phone/IMG_0001.MOV", motion)),
                                           ("files", ("phone/party.mov", hevc.read_bytes()))])
    assert reply.status_code == 202, reply.text
    job_id = reply.json()["job_id"]
    assert client.get(f"/jobs/{job_id}").json()["total"] == 2  # the Live Photo's clip is not an item of its own

    gateway = client.app.state.gateway
    worker = IngestContext(gateway.settings, catalog.connect(gateway.settings.catalog_path),
                           MediaStore(gateway.settings.data_path), StandInEmbedder(), httpx.Client(timeout=1))
    try:
        item_ids = [row[0] for row in worker.conn.execute("SELECT id FROM job_items WHERE job_id=?", (job_id,))]
        media = {ingest_item(item_id, worker).media_id for item_id in item_ids}
    finally:
        worker.close()
    job = client.get(f"/jobs/{job_id}").json()
    assert (job["status"], job["indexed"]) == ("done", 2), job
    infos = {info["kind"]: info for info in (client.get(f"/media/{media_id}").json() for media_id in media)}
    photo, video = infos["image"], infos["video"]

    assert (photo["name"], photo["width"], photo["height"]) == ("phone/IMG_0001.HEIC", 375, 500)
    assert photo["motion_url"] == f"/media/{photo['id']}/motion" and video["motion_url"] is None
    clip = client.get(photo["motion_url"])
    assert clip.status_code == 200 and clip.content == motion and clip.headers["content-type"] == "video/quicktime"
    part = client.get(photo["motion_url"], headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.content == motion[100:1100]
    assert client.get(photo["original_url"]).content == heic.getvalue()

    played = client.get(video["media_url"])
    assert played.status_code == 200 and played.headers["content-type"] == "video/mp4"
    assert video_codec(played.content, tmp_path) == "h264"
    part = client.get(video["media_url"], headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == played.content[:100]
    original = client.get(video["original_url"])
    assert original.content == hevc.read_bytes() and video_codec(original.content, tmp_path) == "hevc"
    missing = client.get(f"/media/{video['id']}/motion")
    assert missing.status_code == 404 and "no motion clip" in missing.json()["detail"]

    stored = {path for path in gateway.settings.media_dir.rglob("*") if path.is_file()}
    motion_file, preview_file = (next(p for p in stored if f"/{kind}/" in str(p)) for kind in ("motion", "previews"))
    assert client.delete(f"/media/{photo['id']}").status_code == 200
    assert client.delete(f"/media/{video['id']}").status_code == 200
    assert not motion_file.exists() and not preview_file.exists()
