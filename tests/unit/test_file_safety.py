"""File safety of ingesting: a library file (or an upload) is opened once, beneath its root
(shared/safe_open.py), and sniffed, hashed, decoded and copied from that one descriptor. A symlink that
stays inside the roots works, one that leads out is refused with the reason, and one swapped in after the
check changes nothing. The original is fsynced with its folder before the catalog says indexed; stored
files are served only from the media folder. Real files and symlinks; decoding runs in its real child
process, which gets the descriptor from the worker."""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from PIL import Image

from services.gateway.media import stored_path
from services.ingest_worker import pipeline
from services.ingest_worker.pipeline import IngestContext, ingest_item
from services.ingest_worker.staging import sampling_policy
from services.ingest_worker.video import sample_video
from shared import catalog, media_store
from shared.errors import NotFound
from shared.libraries.exclusions import Exclusions
from shared.libraries.walk import walk
from shared.media_store import MediaStore
from shared.safe_open import OutsideRoots, RefusedFile, open_beneath, passed_fds
from shared.settings import Settings
from tests.conftest import free_port
from tests.samples import PHOTOS, VIDEOS, jpeg
from tests.stand_ins import StandInEmbedder

PHOTO = (PHOTOS / "n01440764_tench.JPEG").read_bytes()  # 500 × 375
PRIVATE = jpeg(Image.new("RGB", (64, 48), (10, 200, 30)))  # a file outside the roots
VIDEO = VIDEOS / "asl_gestures" / "bird.mkv"
OUTSIDE = "the file is outside the configured ingest roots"


@dataclass
class World:
    root: Path  # the ingest root
    outside: Path  # a folder beside it, outside every root
    ctx: IngestContext

    def folder_job(self, *files: tuple[str, str]) -> list[int]:
        """Items of a folder job, as the gateway records them: ``(name, absolute path)``."""
        return catalog.create_job(self.ctx.conn, "folder", str(self.root), files)[1]

    def upload_job(self, data: bytes) -> int:
        """An item of an upload job whose bytes wait in the uploads folder, as the gateway leaves them."""
        job_id = catalog.new_job_id()
        folder = self.ctx.settings.uploads_dir / job_id
        folder.mkdir(parents=True)
        (folder / "0").write_bytes(data)
        return catalog.create_job(self.ctx.conn, "upload", "", [("photo.jpg", f"uploads/{job_id}/0")], job_id=job_id)[1][0]

    def original(self, media_id: int) -> Path:
        return self.ctx.store.resolve(catalog.get_media(self.ctx.conn, media_id)["path"])


@pytest.fixture
def world(tmp_path) -> World:
    root, outside = tmp_path / "library", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "photo.jpg").write_bytes(PHOTO)
    (outside / "private.jpg").write_bytes(PRIVATE)
    settings = Settings(data_dir=tmp_path / "data", ingest_roots=[root], disk_reserve_bytes=0,
                        index_urls=[f"http://127.0.0.1:{free_port()}"])
    ctx = IngestContext(settings, catalog.connect(settings.catalog_path), MediaStore(settings.data_path),
                        StandInEmbedder(), httpx.Client(timeout=1))
    yield World(root, outside, ctx)
    ctx.close()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- opening beneath a root ------------------------------------------------------------------------------
def test_a_file_and_symlinks_that_stay_inside_the_root_open_as_that_file(world):
    root = world.root
    (root / "album").mkdir()
    (root / "relative.jpg").symlink_to("photo.jpg")
    (root / "album" / "absolute.jpg").symlink_to(root / "photo.jpg")
    (root / "shortcut").symlink_to(root / "album")
    (world.outside / "root-link").symlink_to(root)  # a root named through a symlink of its own
    for path, roots in [(root / "photo.jpg", [root]), (root / "relative.jpg", [root]),
                        (root / "album" / "absolute.jpg", [root]), (root / "shortcut" / "absolute.jpg", [root]),
                        (root / "photo.jpg", [world.outside / "root-link"])]:
        with open_beneath(path, roots) as opened:
            assert opened.real_path == str((root / "photo.jpg").resolve())
            assert (opened.size, opened.sha256()) == (len(PHOTO), sha256(PHOTO))
            assert opened.read_at(0, 3) == b"\xff\xd8\xff"


def test_whatever_leads_outside_the_roots_is_refused(world):
    root = world.root
    (root / "leak.jpg").symlink_to(world.outside / "private.jpg")
    (root / "escape").symlink_to(world.outside)
    for path in (root / "leak.jpg", root / "escape" / "private.jpg", root / ".." / "outside" / "private.jpg"):
        with pytest.raises(OutsideRoots):
            open_beneath(path, [root])
    with pytest.raises(OutsideRoots):
        open_beneath(root / "photo.jpg", [])  # no roots: nothing is beneath one


def test_entries_that_are_not_readable_files_say_why_without_blocking(world):
    root = world.root
    (root / "dangling.jpg").symlink_to(root / "missing.jpg")
    (root / "folder.jpg").mkdir()
    os.mkfifo(root / "pipe.jpg")  # opening it for reading would wait for a writer forever
    for name, reason in [("dangling.jpg", "unreadable: a symbolic link whose target does not exist"),
                         ("missing.jpg", "file not found (it was removed before it could be ingested)"),
                         ("folder.jpg", "unreadable: a folder, not a file"),
                         ("pipe.jpg", "unreadable: not a regular file (a device, pipe or socket)")]:
        with pytest.raises(RefusedFile) as refused:
            open_beneath(root / name, [root])
        assert str(refused.value) == reason


def test_a_symlink_swapped_in_after_opening_changes_nothing_read_from_the_descriptor(world):
    path = world.root / "photo.jpg"
    with open_beneath(path, [world.root]) as opened:
        swap = world.root / "swap.jpg"
        swap.symlink_to(world.outside / "private.jpg")
        os.replace(swap, path)  # the path names the private file from now on
        assert path.read_bytes() == PRIVATE
        assert opened.sha256() == sha256(PHOTO)
        assert Path(opened.path).read_bytes() == PHOTO  # the descriptor path, for decoders that want a path


def test_the_video_decoder_reads_a_video_through_its_descriptor_path(world):
    shutil.copy(VIDEO, world.root / "clip.mkv")
    with open_beneath(world.root / "clip.mkv", [world.root]) as opened:
        path = Path(opened.path)
        assert passed_fds(path) == (opened.fd,) and passed_fds(world.root / "clip.mkv") == ()
        frames: list[float] = []
        info = sample_video(path, sampling_policy(world.ctx.settings),
                            lambda image, timestamp: frames.append(timestamp))  # PyAV, given the descriptor
        assert info.kept_frames == len(frames) > 0


# -- the worker ------------------------------------------------------------------------------------------
def test_library_files_and_symlinks_within_the_root_are_ingested_and_links_out_are_refused(world):
    root = world.root
    (root / "album").mkdir()
    (root / "album" / "pond.jpg").write_bytes(jpeg(Image.new("RGB", (80, 60), (30, 60, 200))))
    (root / "pond-link.jpg").symlink_to(root / "album" / "pond.jpg")
    (root / "leak.jpg").symlink_to(world.outside / "private.jpg")
    items = world.folder_job(("photo.jpg", str(root / "photo.jpg")), ("pond-link.jpg", str(root / "pond-link.jpg")),
                             ("leak.jpg", str(root / "leak.jpg")))
    photo, pond, leak = (ingest_item(item_id, world.ctx) for item_id in items)
    assert (photo.status, pond.status) == ("indexed", "indexed")
    assert world.original(photo.media_id).read_bytes() == PHOTO
    assert world.original(pond.media_id).read_bytes() == (root / "album" / "pond.jpg").read_bytes()
    assert (leak.status, leak.reason) == ("failed", OUTSIDE)
    assert catalog.media_by_sha(world.ctx.conn, sha256(PRIVATE)) is None


def test_a_file_swapped_for_a_symlink_out_after_the_folder_was_listed_is_refused(world):
    listed = list(walk(world.root, Exclusions()))  # a library scan's listing, checked then
    assert [(found.path, found.problem) for found in listed] == [("photo.jpg", None)]
    (item_id,) = world.folder_job(*[(found.path, str(world.root / found.path)) for found in listed])
    swap = world.root / "swap.jpg"
    swap.symlink_to(world.outside / "private.jpg")
    os.replace(swap, world.root / "photo.jpg")
    outcome = ingest_item(item_id, world.ctx)
    assert (outcome.status, outcome.reason) == ("failed", OUTSIDE)
    assert not list(world.ctx.settings.media_dir.rglob("*.jpg"))  # nothing of the private file was stored


def test_a_symlink_swapped_in_while_the_file_is_ingested_is_never_read(world, monkeypatch):
    """Opened and checked, then the path is pointed outside before decoding and copying: both still read
    the file that was opened (the decoding child through the descriptor it was handed)."""
    decode = pipeline.run_isolated

    def swapped_then_decoded(function, args, time_limit):
        swap = world.root / "swap.jpg"
        swap.symlink_to(world.outside / "private.jpg")
        os.replace(swap, world.root / "photo.jpg")
        return decode(function, args, time_limit)

    monkeypatch.setattr(pipeline, "run_isolated", swapped_then_decoded)
    (item_id,) = world.folder_job(("photo.jpg", str(world.root / "photo.jpg")))
    outcome = ingest_item(item_id, world.ctx)
    assert outcome.status == "indexed"
    media = catalog.get_media(world.ctx.conn, outcome.media_id)
    assert (media["sha256"], media["width"], media["height"]) == (sha256(PHOTO), 500, 375)
    assert world.original(outcome.media_id).read_bytes() == PHOTO
    (frame,) = catalog.frames_of_media(world.ctx.conn, outcome.media_id)
    with Image.open(world.ctx.store.resolve(frame["path"])) as stored:
        assert stored.size == (500, 375)


@pytest.mark.parametrize("source", ["upload", "library"])
def test_the_original_and_its_folder_are_fsynced_before_the_media_is_marked_indexed(world, monkeypatch, source):
    events: list[tuple[str, str]] = []
    real_fsync, real_fsync_dir, real_indexed = os.fsync, media_store.fsync_dir, catalog.mark_media_indexed
    monkeypatch.setattr(os, "fsync", lambda fd: events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
                        or real_fsync(fd))
    monkeypatch.setattr(media_store, "fsync_dir", lambda folder: events.append(("fsync_dir", str(folder)))
                        or real_fsync_dir(folder))
    monkeypatch.setattr(catalog, "mark_media_indexed", lambda conn, media_id: events.append(("indexed", media_id))
                        or real_indexed(conn, media_id))
    if source == "upload":
        item_id = world.upload_job(PHOTO)
        upload = world.ctx.store.resolve(catalog.get_item(world.ctx.conn, item_id)["stored_path"])
    else:
        (item_id,) = world.folder_job(("photo.jpg", str(world.root / "photo.jpg")))
    outcome = ingest_item(item_id, world.ctx)
    assert outcome.status == "indexed"
    original = world.original(outcome.media_id)
    synced = [path for kind, path in events if kind == "fsync"]
    # an upload's own file, linked into the store; a library file's copy, under a temporary name beside it
    written = str(upload) if source == "upload" else next(path for path in synced if Path(path).parent == original.parent)
    assert (events.index(("fsync", written)) < events.index(("fsync_dir", str(original.parent)))
            < events.index(("indexed", outcome.media_id)))
    assert original.read_bytes() == PHOTO
    if source == "upload":  # linked into the store; its name in the uploads folder is gone once the item settled
        assert not upload.exists() and original.stat().st_nlink == 1


# -- serving stored files --------------------------------------------------------------------------------
def test_stored_files_are_served_only_from_the_media_folder(world):
    store, settings = world.ctx.store, world.ctx.settings
    gateway = SimpleNamespace(store=store, settings=settings)
    store.write_atomic("media/originals/ab/photo.jpg", PHOTO)
    assert stored_path(gateway, "media/originals/ab/photo.jpg") == settings.media_dir.resolve() / "originals/ab/photo.jpg"
    secret = settings.data_path / "secrets" / "internal.key"
    secret.parent.mkdir()
    secret.write_text("not for clients")
    for name, target in [("to-secret.jpg", secret), ("to-outside.jpg", world.outside / "private.jpg")]:
        (settings.media_dir / "originals" / "ab" / name).symlink_to(target)
        with pytest.raises(NotFound, match="file not available"):
            stored_path(gateway, f"media/originals/ab/{name}")
    with pytest.raises(NotFound, match="missing"):
        stored_path(gateway, "media/originals/ab/gone.jpg")
