"""Libraries, tried as a new user would, on the whole product (Redis, embedder with a tiny CLIP, index,
a Celery worker, the watcher and the gateway): a folder under an ingest root becomes a library; adding,
changing, renaming and deleting a file, and unmounting and remounting its folder (renaming it away and
back), each give the expected result within 60 s with no click, checked by the frames and vectors they
add (renames and remounts add none); the data volume never holds a copy of a library original."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from shared import catalog
from tests.conftest import running_stack, wait_for
from tests.samples import VIDEOS, jpeg

CHANGE_S = 60  # what the issue allows for a change to show


def photo(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    return jpeg(Image.fromarray(pixels))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_clip_dir):
    tmp = tmp_path_factory.mktemp("libraries-stack")
    roots = tmp / "roots"
    roots.mkdir()
    with running_stack(tmp, tiny_clip_dir, "libraries", MEDIASEARCH_INGEST_ROOTS=str(roots),
                       MEDIASEARCH_LIBRARY_RESCAN_MINUTES="15") as running:
        running.roots = roots
        running.conn = catalog.connect(running.settings.catalog_path)
        yield running
        running.conn.close()


def committed_rows(stack) -> int:
    reply = httpx.get(f"{stack.settings.embedder_url}/health", headers=stack.internal_headers, timeout=10)
    return reply.json()["committed_rows"]


def index_matches_catalog(stack) -> bool:
    """Every vector the catalog knows (frames, videos' pooled vectors) is live in the index, and no other:
    what left the catalog was tombstoned there."""
    known = (stack.conn.execute("SELECT COUNT(*) FROM frames WHERE vector_row IS NOT NULL").fetchone()[0]
             + stack.conn.execute("SELECT COUNT(*) FROM video_vectors").fetchone()[0])
    url = stack.settings.index_urls[0]
    return httpx.get(f"{url}/health", headers=stack.internal_headers, timeout=10).json()["nodes"] == known


def counts(stack) -> tuple[int, int, int]:
    """Media, frames (embedded) and vector rows committed: what a change adds."""
    found = catalog.counts(stack.conn)
    return found["media"], found["frames"], committed_rows(stack)


def library(stack, library_id: int) -> dict:
    return stack.client.get(f"/libraries/{library_id}").json()


def settled(stack, library_id: int, media: int):
    """A condition: the library is ready (nothing scanning or waiting) and holds ``media`` items."""
    def check():
        found = library(stack, library_id)
        return found if found["status"] == "ready" and found["media"] == media else None
    return check


def media_at(stack, library_id: int, relative: str) -> int | None:
    found = stack.conn.execute("SELECT media_id FROM locations WHERE library_id=? AND path=?",
                               (library_id, relative)).fetchone()
    return found[0] if found else None


def search_ids(stack) -> set[int]:
    reply = stack.client.get("/search", params={"q": "a photo", "k": 100})
    assert reply.status_code == 200, reply.text
    return {result["media_id"] for result in reply.json()["results"]}


def no_copies_in_the_data_volume(stack, folder: Path) -> None:
    originals = {sha256(path.read_bytes()) for path in folder.rglob("*") if path.is_file()}
    stored = {sha256(path.read_bytes()) for path in stack.settings.data_path.rglob("*")
              if path.is_file() and path.stat().st_size < 50 * 1024**2}
    assert not originals & stored, "a library original was copied into the data volume"


def test_a_library_follows_its_folder_without_a_click(stack):
    folder = stack.roots / "family"
    (folder / "2020").mkdir(parents=True)
    (folder / "a.jpg").write_bytes(photo(1))
    (folder / "b.jpg").write_bytes(photo(2))
    (folder / "2020" / "c.jpg").write_bytes(photo(3))
    shutil.copy(VIDEOS / "asl_gestures" / "bird.mkv", folder / "2020" / "bird.mkv")
    reply = stack.client.post("/libraries", json={"path": str(folder)})
    assert reply.status_code == 201, reply.text
    library_id = reply.json()["id"]
    first = wait_for(settled(stack, library_id, 4), 180, interval=0.5, message="the first scan")
    assert (first["name"], first["failed"], first["errors"]) == ("family", 0, [])
    wait_for(lambda: library(stack, library_id)["watching"], 30, message="the watcher to follow it")
    no_copies_in_the_data_volume(stack, folder)
    media, frames, rows = counts(stack)
    assert media == 4 and frames >= 4 and rows > frames  # the video's frames and its pooled vector

    # A new file: one photo, one frame, one vector.
    (folder / "d.jpg").write_bytes(photo(4))
    wait_for(settled(stack, library_id, 5), CHANGE_S, interval=0.5, message="the new file")
    assert counts(stack) == (media + 1, frames + 1, rows + 1)
    media, frames, rows = counts(stack)

    # A changed file: new content in place of the old, which leaves search.
    old_b = media_at(stack, library_id, "b.jpg")
    (folder / "b.jpg").write_bytes(photo(22))
    wait_for(lambda: media_at(stack, library_id, "b.jpg") not in (None, old_b)
             and settled(stack, library_id, 5)(), CHANGE_S, interval=0.5, message="the changed file")
    new_b = media_at(stack, library_id, "b.jpg")
    assert stack.client.get(f"/media/{old_b}").status_code == 404
    assert counts(stack) == (media, frames, rows + 1)  # its frame replaced; one vector more in the store
    wait_for(lambda: index_matches_catalog(stack), 30, message="the old vector tombstoned in the index")
    found = search_ids(stack)
    assert new_b in found and old_b not in found
    rows += 1

    # A renamed file: the same media, nothing decoded or embedded again.
    a = media_at(stack, library_id, "a.jpg")
    (folder / "2021").mkdir()
    os.rename(folder / "a.jpg", folder / "2021" / "renamed.jpg")
    wait_for(lambda: stack.client.get(f"/media/{a}").json().get("name") == "family/2021/renamed.jpg",
             CHANGE_S, interval=0.5, message="the renamed file")
    info = stack.client.get(f"/media/{a}").json()
    assert (info["folder"], info["locations"]) == ("family/2021", [
        {"library_id": library_id, "library": "family", "path": "2021/renamed.jpg"}])
    wait_for(settled(stack, library_id, 5), CHANGE_S, interval=0.5)
    assert counts(stack) == (media, frames, rows)
    assert stack.client.get(f"/media/{a}/original").content == (folder / "2021" / "renamed.jpg").read_bytes()

    # A deleted file: it leaves the catalog and search.
    c = media_at(stack, library_id, "2020/c.jpg")
    (folder / "2020" / "c.jpg").unlink()
    wait_for(settled(stack, library_id, 4), CHANGE_S, interval=0.5, message="the deleted file")
    assert stack.client.get(f"/media/{c}").status_code == 404
    assert counts(stack)[:2] == (media - 1, frames - 1) and c not in search_ids(stack)
    wait_for(lambda: index_matches_catalog(stack), 30, message="its vector tombstoned in the index")
    media, frames, rows = counts(stack)

    # Unmounted (the folder renamed away): unavailable, nothing removed, search answers, originals say why.
    before = search_ids(stack)
    os.rename(folder, stack.roots / "unmounted")
    try:
        gone = wait_for(lambda: (found := library(stack, library_id))["status"] == "unavailable" and found,
                        CHANGE_S, interval=0.5, message="the library to become unavailable")
        assert "missing" in gone["status_reason"] and gone["media"] == 4
        assert counts(stack) == (media, frames, rows)
        assert search_ids(stack) == before
        original = stack.client.get(f"/media/{a}/original")
        assert original.status_code == 503 and "'family' is unavailable" in original.json()["detail"]
        assert stack.client.get(f"/thumb/{info['frames'][0]['frame_id']}").status_code == 200
    finally:
        os.rename(stack.roots / "unmounted", folder)
    # Remounted: ready again, nothing embedded again.
    wait_for(settled(stack, library_id, 4), CHANGE_S, interval=0.5, message="the library to be back")
    assert counts(stack) == (media, frames, rows)
    assert stack.client.get(f"/media/{a}/original").status_code == 200
    no_copies_in_the_data_volume(stack, folder)


def test_a_deleted_library_item_keeps_its_file_and_stays_out(stack):
    folder = stack.roots / "trip"
    folder.mkdir()
    (folder / "keep.jpg").write_bytes(photo(10))
    (folder / "drop.jpg").write_bytes(photo(11))
    library_id = stack.client.post("/libraries", json={"path": str(folder)}).json()["id"]
    wait_for(settled(stack, library_id, 2), 120, interval=0.5, message="the first scan")
    drop = media_at(stack, library_id, "drop.jpg")
    assert stack.client.delete(f"/media/{drop}").status_code == 200
    assert (folder / "drop.jpg").exists()
    assert stack.client.post(f"/libraries/{library_id}/scan").status_code == 202
    wait_for(settled(stack, library_id, 1), CHANGE_S, interval=0.5, message="the rescan")
    assert media_at(stack, library_id, "drop.jpg") is None and drop not in search_ids(stack)

    deleted = stack.client.delete(f"/libraries/{library_id}")
    assert deleted.status_code == 200 and deleted.json()["media"] == 1 and not deleted.json()["partial"]
    assert sorted(path.name for path in folder.iterdir()) == ["drop.jpg", "keep.jpg"]
