"""The "holiday" folder the organise tests upload to a running stack (tests/stack/test_organise_stack.py
and tests/browser/test_organise_browser.py): a photo uploaded twice under two names, a resized and a
re-encoded copy of it, three unrelated photos and a short video."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from tests.conftest import RunningStack
from tests.samples import PHOTOS, VIDEOS, jpeg

# The tiny random CLIP puts unrelated photos much closer together than real CLIP does (cosines up to
# ~0.85 for the photos below, against >= 0.99 for a photo's copies), so albums use a higher threshold
# with it. The visual-duplicate threshold keeps its default.
ALBUM_THRESHOLD = 0.93
STACK_ENV = {"MEDIASEARCH_CLUSTER_THRESHOLD": str(ALBUM_THRESHOLD), "MEDIASEARCH_RECLUSTER_DEBOUNCE_S": "0.5"}
BIRD = PHOTOS / "n01537544_indigo_bunting.JPEG"
UNRELATED = {"lolly.jpg": "n07615774_ice_lolly.JPEG", "bridge.jpg": "n04311004_steel_arch_bridge.JPEG",
             "cello.jpg": "n02992211_cello.JPEG"}
VIDEO = VIDEOS / "asl_gestures" / "brother.mkv"
JOB_TIMEOUT = 300


@dataclass
class Holiday:
    job_id: str
    collection: int
    media: dict[str, int]  # file name (without the folder) -> media id; the exact copy maps to the stored one
    bird: int  # the stored photo behind bunting.jpg and bunting-copy.jpg
    bird_name: str  # which of the two names was stored (the other is its exact duplicate)
    copies: list[int]  # the resized and the re-encoded copy


def upload_holiday(stack: RunningStack) -> Holiday:
    """Uploads the folder, waits for its job and checks its counts."""
    original = BIRD.read_bytes()
    with Image.open(BIRD) as photo:
        image = photo.convert("RGB")
    files = [("bunting.jpg", original), ("bunting-copy.jpg", original),
             ("bunting-small.jpg", jpeg(image.resize((image.width // 2, image.height // 2)), 88)),
             ("bunting-q40.jpg", jpeg(image, 40)), ("clips/brother.mkv", VIDEO.read_bytes())]
    files += [(name, (PHOTOS / source).read_bytes()) for name, source in UNRELATED.items()]
    job = stack.wait_job(stack.upload([(f"holiday/{name}", data) for name, data in files]), timeout=JOB_TIMEOUT)
    assert (job["status"], job["indexed"], job["duplicates"], job["failed"]) == ("done", 7, 1, 0), job
    collections = stack.client.get("/collections").json()["collections"]
    (folder,) = [c for c in collections if c["job_id"] == job["id"]]
    detail = stack.client.get(f"/collections/{folder['id']}").json()
    media = {m["name"].removeprefix("holiday/"): m["media_id"] for m in detail["members"]}
    # The two identical uploads race: whichever a worker took first is stored, the other is its duplicate.
    bird_name = "bunting.jpg" if "bunting.jpg" in media else "bunting-copy.jpg"
    bird = media[bird_name]
    for name in ("bunting.jpg", "bunting-copy.jpg"):
        media[name] = bird
    return Holiday(job["id"], folder["id"], media, bird, bird_name,
                   [media["bunting-small.jpg"], media["bunting-q40.jpg"]])
