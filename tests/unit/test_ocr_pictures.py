"""What the text reader reads (services/ingest_worker/ocr.py ``pictures``): originals decoded again in a
decoder process, at up to ocr_max_side pixels; a file that no longer decodes fails that item alone."""

from __future__ import annotations

import pytest
from PIL import Image

from services.ingest_worker.ocr import pictures
from services.ingest_worker.sniff import BadInput
from shared.safe_open import open_beneath
from shared.settings import Settings
from tests.samples import VIDEOS, jpeg

SETTINGS = Settings(ocr_max_side=1024)


def read(path, kind: str, frames: list[dict]) -> list[tuple[int, Image.Image]]:
    with open_beneath(path, [path.parent]) as source:
        return list(pictures(source, {"kind": kind, "id": 1}, frames, SETTINGS))


def test_a_photo_is_read_from_its_original_at_the_reading_size(tmp_path):
    photo = tmp_path / "receipt.jpg"
    photo.write_bytes(jpeg(Image.new("RGB", (3000, 2000), "white")))
    (frame_id, picture), = read(photo, "image", [{"id": 7, "timestamp": None}])
    assert frame_id == 7 and picture.size == (1024, 683) and picture.mode == "RGB"


def test_a_video_s_kept_frames_are_read_at_their_timestamps_in_chunks(tmp_path):
    frames = [{"id": 100 + n, "timestamp": float(n)} for n in range(10)]  # more than one decoder call
    read_back = read(VIDEOS / "car-detection.mp4", "video", frames)
    assert [frame_id for frame_id, _ in read_back] == [frame["id"] for frame in frames]
    assert all(max(picture.size) <= 1024 for _, picture in read_back)


def test_an_original_that_no_longer_decodes_fails_alone(tmp_path):
    changed = tmp_path / "changed.jpg"
    changed.write_bytes(jpeg(Image.new("RGB", (64, 64)))[:200])  # truncated since it was indexed
    with pytest.raises(BadInput):
        read(changed, "image", [{"id": 1, "timestamp": None}])
