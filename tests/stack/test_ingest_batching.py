"""Ingest batched across files: a job's photos in flight at once, their frames meeting in the embedder's
forward passes. The stack's embedder collects for up to a second (8 frames a pass), so the files of one
upload reliably share passes; what is checked is that batching loses nothing and mixes nothing up, and
that a bad file still fails alone. The worker decodes one file at a time (one decode slot): a file holds
its slot only while it decodes, not while its frames wait for the embedder, or no pass would be shared."""

from __future__ import annotations

import httpx
import pytest

from shared import catalog
from shared.metrics import Samples
from shared.vectors import VectorStore
from tests.conftest import running_stack
from tests.samples import PHOTOS

PHOTO_COUNT = 12


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_clip_dir):
    with running_stack(tmp_path_factory.mktemp("batching-stack"), tiny_clip_dir, "batching",
                       MEDIASEARCH_EMBED_MAX_BATCH="8", MEDIASEARCH_EMBED_MAX_WAIT_MS="1000",
                       MEDIASEARCH_WORKER_CONCURRENCY="16", MEDIASEARCH_WORKER_DECODE_SLOTS="1") as running:
        yield running


def image_passes(stack) -> tuple[float, float]:
    """(images through the model, forward passes) so far, from the embedder's metrics."""
    text = httpx.get(f"{stack.settings.embedder_url}/metrics", headers=stack.internal_headers, timeout=30).text
    samples = Samples(text)
    return (samples.value("mediasearch_embedder_batch_size_sum", kind="image"),
            samples.value("mediasearch_embedder_batch_size_count", kind="image"))


def test_files_batched_together_each_keep_their_own_vector_and_a_bad_one_fails_alone(stack):
    photos = sorted(PHOTOS.glob("*.JPEG"))[:PHOTO_COUNT]
    files = [(photo.name, photo.read_bytes()) for photo in photos]
    files.insert(5, ("truncated.jpg", photos[0].read_bytes()[:2000]))  # a JPEG cut short: it fails decoding
    files.insert(9, ("not-a-photo.jpg", b"plain text, not an image"))
    images_before, passes_before = image_passes(stack)
    job = stack.wait_job(stack.upload(files, folder="batched"))
    images, passes = (after - before for after, before in zip(image_passes(stack), (images_before, passes_before)))

    assert job["status"] == "done" and job["indexed"] == PHOTO_COUNT and job["failed"] == 2, job
    assert {error["file"] for error in job["errors"]} == {"truncated.jpg", "not-a-photo.jpg"}
    assert all(error["reason"] for error in job["errors"])
    assert images == PHOTO_COUNT  # every frame through the model once: none lost, none sent twice
    assert passes < PHOTO_COUNT  # and files shared passes

    # Each photo's frame holds the vector of that photo: its own image search finds it first.
    conn = catalog.connect(stack.settings.catalog_path)
    try:
        rows = {row["name"].rsplit("/", 1)[-1]: row for row in conn.execute(
            "SELECT m.name, f.id AS frame_id, f.vector_row FROM media m JOIN frames f ON f.media_id = m.id "
            "WHERE m.job_id = ?", (job["id"],))}
    finally:
        conn.close()
    assert sorted(rows) == sorted(photo.name for photo in photos)
    store = VectorStore(stack.settings.vectors_dir)
    try:
        owners = [int(store.view()[1][row["vector_row"]]) for row in rows.values()]
    finally:
        store.close()
    assert owners == [row["frame_id"] for row in rows.values()]  # each row is its own frame's, once
    for photo in photos:
        reply = stack.client.post("/search/image", files={"file": (photo.name, photo.read_bytes())},
                                  params={"k": 1})
        assert reply.status_code == 200, reply.text
        assert reply.json()["results"][0]["frame_id"] == rows[photo.name]["frame_id"], photo.name
