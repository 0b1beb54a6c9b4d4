"""Library scans (shared/libraries/): the streamed walk and what it skips, and the comparison with the
catalog that follows: new, changed, deleted, moved and duplicated files, exclusions, an unchanged rescan
(no hashing, no catalog write but the scan time), a folder that goes away and comes back. Real folders and
files, a real catalog, and the real ingest pipeline for the files a scan queues (its decoding child
included; a stand-in hands out vector rows, as in the rest of the unit tier)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from services.ingest_worker.pipeline import IngestContext, ingest_item
from shared import catalog
from shared.catalog import libraries as catalog_libraries
from shared.libraries import items as library_items
from shared.libraries.exclusions import Exclusions
from shared.libraries.forget import forget_media
from shared.libraries.scan import EMPTY, MISSING, ScanReport, ScanServices, scan_library
from shared.libraries.walk import DANGLING, LEADS_OUT, NOT_A_FILE, WalkCounts, walk
from shared.media_store import MediaStore
from shared.safe_open import OpenedFile
from shared.settings import Settings
from tests.conftest import free_port
from tests.samples import jpeg
from tests.stand_ins import StandInEmbedder


def photo(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    """A JPEG of its own content (random pixels from ``seed``)."""
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    return jpeg(Image.fromarray(pixels))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Library:
    root: Path
    library_id: int
    ctx: IngestContext
    services: ScanServices
    queued: list[int] = field(default_factory=list)
    forgotten: list[int] = field(default_factory=list)

    @property
    def conn(self) -> sqlite3.Connection:
        return self.ctx.conn

    def write(self, relative: str, data: bytes) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def scan(self) -> ScanReport:
        self.queued.clear()
        return scan_library(self.library_id, self.services)

    def ingest(self) -> dict[str, tuple[str, str | None, int | None]]:
        """Run the queued items: ``{file: (status, reason, media id)}``."""
        outcomes = {}
        for item_id in self.queued:
            outcome = ingest_item(item_id, self.ctx)
            outcomes[catalog.get_item(self.conn, item_id)["file"]] = (outcome.status, outcome.reason, outcome.media_id)
        return outcomes

    def location(self, relative: str) -> catalog_libraries.LocationRow | None:
        return catalog_libraries.location_by_path(self.conn, self.library_id, relative)

    def media_of(self, relative: str) -> catalog.MediaRow:
        return catalog.get_media(self.conn, self.location(relative)["media_id"])

    def frame_count(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM frames").fetchone()[0]


@pytest.fixture
def library(tmp_path) -> Library:
    roots = tmp_path / "roots"
    root = roots / "family"
    root.mkdir(parents=True)
    settings = Settings(data_dir=tmp_path / "data", ingest_roots=[roots], disk_reserve_bytes=0,
                        index_urls=[f"http://127.0.0.1:{free_port()}"])  # an index that is down: tombstones wait
    ctx = IngestContext(settings, catalog.connect(settings.catalog_path), MediaStore(settings.data_path),
                        StandInEmbedder(), httpx.Client(timeout=1))
    library_id = catalog_libraries.insert_library(ctx.conn, "Family", str(root))
    made = Library(root, library_id, ctx, None)  # type: ignore[arg-type]

    def forget(media_ids: list[int]) -> None:
        made.forgotten += media_ids
        forget_media(ctx.conn, ctx.store, ctx.index, media_ids)

    made.services = ScanServices(ctx.conn, settings, ctx.store, made.queued.extend, forget)
    yield made
    ctx.close()


@pytest.fixture
def hashes(monkeypatch) -> list[str]:
    """Every file read whole to hash it (by the scan or an item), by its real path."""
    read: list[str] = []
    real = OpenedFile.sha256

    def counted(self: OpenedFile) -> str:
        read.append(self.real_path)
        return real(self)

    monkeypatch.setattr(OpenedFile, "sha256", counted)
    return read


def catalog_rows(conn: sqlite3.Connection) -> dict[str, list[tuple]]:
    """Every row of the tables a scan could write, the library's own status and scan time aside."""
    tables = ("locations", "media", "frames", "jobs", "job_items", "collection_members")
    rows = {table: sorted((tuple(row) for row in conn.execute(f"SELECT * FROM {table}")), key=repr)
            for table in tables}
    rows["libraries"] = [tuple(row) for row in conn.execute("SELECT id, name, path, folders FROM libraries")]
    return rows


# -- the walk -------------------------------------------------------------------------------------------
def test_the_walk_skips_nas_and_os_clutter_and_the_configured_patterns(tmp_path):
    root = tmp_path / "library"
    for relative in ("a.jpg", "2020/b.jpg", "2020/c.JPG", "@eaDir/a.jpg/SYNOPHOTO_THUMB_XL.jpg", "#recycle/old.jpg",
                     ".Trash-1000/files/gone.jpg", ".thumbnails/normal/x.png", "2020/._b.jpg", "2020/.DS_Store",
                     ".hidden/secret.jpg", "Thumbs.db", "2020/b.jpg.xmp", "2020/IMG_1.AAE", "drafts/d.jpg",
                     "2020/e.tmp", "2021/private/p.jpg", "2021/f.jpg"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(b"x" * len(relative))
    counts = WalkCounts()
    found = list(walk(root, Exclusions(["*.TMP", "drafts", "2021/private"]), counts))
    assert [f.path for f in found] == ["a.jpg", "2020/b.jpg", "2020/c.JPG", "2021/f.jpg"]
    assert [(f.size, f.problem) for f in found] == [(5, None), (10, None), (10, None), (10, None)]
    assert found[1].mtime_ns == (root / "2020/b.jpg").stat().st_mtime_ns
    assert (counts.files, counts.folders, counts.blind) == (4, 3, [])  # library, 2020, 2021


def test_links_out_dangling_links_and_special_files_are_problems_and_folder_links_are_not_followed(tmp_path):
    root, outside = tmp_path / "library", tmp_path / "outside"
    (root / "album").mkdir(parents=True)
    outside.mkdir()
    (root / "album" / "pond.jpg").write_bytes(b"pond")
    (outside / "private.jpg").write_bytes(b"private")
    (root / "inside.jpg").symlink_to(root / "album" / "pond.jpg")
    (root / "leak.jpg").symlink_to(outside / "private.jpg")
    (root / "gone.jpg").symlink_to(root / "missing.jpg")
    (root / "escape").symlink_to(outside)
    (root / "loop").symlink_to(root)
    os.mkfifo(root / "pipe.jpg")
    found = {f.path: f for f in walk(root, Exclusions())}
    assert sorted(found) == ["album/pond.jpg", "gone.jpg", "inside.jpg", "leak.jpg", "pipe.jpg"]
    assert (found["inside.jpg"].size, found["inside.jpg"].problem) == (4, None)
    assert (found["leak.jpg"].problem, found["gone.jpg"].problem, found["pipe.jpg"].problem) == (
        LEADS_OUT, DANGLING, NOT_A_FILE)


def test_the_walk_is_streamed_its_memory_does_not_grow_with_the_tree(tmp_path):
    root = tmp_path / "library"
    for folder in range(100):
        (root / f"{folder:03d}").mkdir(parents=True)
        for number in range(200):
            (root / f"{folder:03d}" / f"IMG_{number:04d}.JPG").touch()
    tracemalloc.start()
    try:
        walked = sum(1 for _ in walk(root, Exclusions()))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert walked == 20_000
    # Holding the walked files (a Walked of three fields and its path string each) would take about 3 MB.
    assert peak < 750_000, f"peak {peak} bytes while walking {walked} files"


# -- scans: new, unchanged, changed, deleted, moved --------------------------------------------------------
def test_new_files_are_ingested_in_place_and_an_unchanged_rescan_only_stats(library, hashes):
    a, b = photo(1), photo(2)
    library.write("a.jpg", a)
    library.write("2020/summer/b.jpg", b)
    report = library.scan()
    assert (report.status, report.files, report.queued, report.hashed) == ("ready", 2, 2, 0)
    assert library.ingest() == {"a.jpg": ("indexed", None, library.location("a.jpg")["media_id"]),
                                "2020/summer/b.jpg": ("indexed", None, library.location("2020/summer/b.jpg")["media_id"])}
    media = library.media_of("2020/summer/b.jpg")
    assert (media["name"], media["folder"], media["path"], media["sha256"]) == (
        "Family/2020/summer/b.jpg", "Family/2020/summer", "", sha256(b))
    assert library.media_of("a.jpg")["folder"] == "Family"
    location = library.location("a.jpg")
    assert (location["sha256"], location["size"], location["error"]) == (sha256(a), len(a), None)
    # Nothing of the originals was copied into the data volume.
    stored = {sha256(path.read_bytes()) for path in library.ctx.settings.data_path.rglob("*") if path.is_file()}
    assert not stored & {sha256(a), sha256(b)}
    summary, = catalog_libraries.library_summaries(library.conn, library.library_id)
    assert (summary["media"], summary["failed"], summary["busy"]) == (2, 0, 0)

    hashes.clear()
    before = catalog_rows(library.conn)
    report = library.scan()
    assert (report.files, report.queued, report.hashed, report.moved, report.removed) == (2, 0, 0, 0, 0)
    assert hashes == [] and library.queued == []
    assert catalog_rows(library.conn) == before  # no catalog write but the library's status and scan time
    assert catalog_libraries.get_library(library.conn, library.library_id)["last_scan_at"] is not None


def test_a_changed_file_is_ingested_again_and_a_touched_one_keeps_its_media(library):
    library.write("a.jpg", photo(1))
    library.write("b.jpg", photo(2))
    library.scan()
    library.ingest()
    old_a, old_b = library.location("a.jpg")["media_id"], library.location("b.jpg")["media_id"]
    frames = library.frame_count()
    new_a = photo(3, size=(70, 50))
    library.write("a.jpg", new_a)
    os.utime(library.root / "b.jpg", ns=(1, 1_000_000_000))  # touched: same bytes, another mtime
    report = library.scan()
    assert (report.queued, report.hashed) == (2, 0)
    assert library.location("a.jpg")["media_id"] == old_a  # until the new content is read
    outcomes = library.ingest()
    assert outcomes["a.jpg"][0] == "indexed" and outcomes["a.jpg"][2] != old_a
    assert outcomes["b.jpg"] == ("duplicate", "same content as 'Family/b.jpg'", old_b)
    assert catalog.get_media(library.conn, old_a) is None  # its only file holds other content now
    assert library.media_of("a.jpg")["sha256"] == sha256(new_a)
    assert library.location("b.jpg")["mtime_ns"] == 1_000_000_000 and library.location("b.jpg")["media_id"] == old_b
    assert library.frame_count() == frames  # one frame out (old a), one in (new a), none for b
    assert library.scan().queued == 0


def test_a_deleted_file_leaves_the_catalog_the_index_and_the_data_volume(library):
    library.write("a.jpg", photo(1))
    library.write("b.jpg", photo(2))
    library.scan()
    library.ingest()
    gone = library.media_of("a.jpg")
    thumbs = [library.ctx.store.resolve(f["thumb_path"]) for f in catalog.frames_of_media(library.conn, gone["id"])]
    assert thumbs and all(path.exists() for path in thumbs)
    (library.root / "a.jpg").unlink()
    report = library.scan()
    assert (report.removed, report.forgotten, report.queued) == (1, 1, 0)
    assert library.location("a.jpg") is None and catalog.get_media(library.conn, gone["id"]) is None
    assert not any(path.exists() for path in thumbs)
    assert library.location("b.jpg")["media_id"] is not None


def test_a_moved_file_keeps_its_media_frames_and_collections_and_is_not_decoded_again(library, hashes):
    library.write("2020/a.jpg", photo(1))
    library.write("2020/b.jpg", photo(2, size=(80, 60)))
    library.scan()
    library.ingest()
    media = library.media_of("2020/a.jpg")
    frames = catalog.frames_of_media(library.conn, media["id"])
    collection = catalog.insert_collection(library.conn, "Favourites")
    catalog.add_to_collection(library.conn, collection, [media["id"]])
    (library.root / "2021").mkdir()
    os.rename(library.root / "2020" / "a.jpg", library.root / "2021" / "renamed.jpg")
    library.write("2021/new.jpg", photo(3, size=(90, 70)))  # a new file of another size: not hashed by the scan
    hashes.clear()
    report = library.scan()
    assert (report.moved, report.removed, report.forgotten, report.queued, report.hashed) == (1, 0, 0, 1, 1)
    assert hashes == [str(library.root / "2021" / "renamed.jpg")]  # only the file of a vanished one's size
    moved = library.media_of("2021/renamed.jpg")
    assert (moved["id"], moved["name"], moved["folder"]) == (media["id"], "Family/2021/renamed.jpg", "Family/2021")
    assert catalog.frames_of_media(library.conn, media["id"]) == frames
    assert [m["id"] for m in catalog.collection_media(library.conn, collection, 10)] == [media["id"]]
    assert library.queued and [catalog.get_item(library.conn, i)["file"] for i in library.queued] == ["2021/new.jpg"]


def test_identical_content_is_one_media_item_with_several_locations(library):
    data = photo(1)
    library.write("a.jpg", data)
    library.write("copies/a.jpg", data)
    library.write("other.jpg", photo(2))
    library.scan()
    outcomes = library.ingest()
    assert sorted(status for status, _, _ in outcomes.values()) == ["duplicate", "indexed", "indexed"]
    media_id = library.location("a.jpg")["media_id"]
    assert library.location("copies/a.jpg")["media_id"] == media_id
    assert [(m["library"], m["path"]) for m in catalog_libraries.media_locations(library.conn, media_id)] == [
        ("Family", "a.jpg"), ("Family", "copies/a.jpg")]
    assert catalog_libraries.library_summaries(library.conn, library.library_id)[0]["media"] == 2
    (library.root / "a.jpg").unlink()
    report = library.scan()
    assert (report.removed, report.forgotten) == (1, 0)
    assert library.media_of("copies/a.jpg")["name"] == "Family/copies/a.jpg"  # named after the one left
    (library.root / "copies" / "a.jpg").unlink()
    assert library.scan().forgotten == 1 and catalog.get_media(library.conn, media_id) is None


def test_a_new_copy_of_stored_content_of_a_vanished_size_is_linked_without_an_item(library, hashes):
    data = photo(1)
    library.write("a.jpg", data)
    library.write("b.jpg", photo(2))
    library.scan()
    library.ingest()
    media_id = library.location("a.jpg")["media_id"]
    (library.root / "b.jpg").unlink()
    library.write("b-again.jpg", photo(2))  # moved, in effect
    library.write("c.jpg", data)
    report = library.scan()
    assert (report.moved, report.queued, report.removed) == (1, 1, 0)  # c.jpg has no vanished size: an item
    assert library.ingest() == {"c.jpg": ("duplicate", "same content as 'Family/a.jpg'", media_id)}
    assert library.location("c.jpg")["media_id"] == media_id


# -- what the user excluded, what failed, and where Live Photos go -------------------------------------------
def test_an_excluded_file_stays_out_across_rescans_and_so_does_a_copy_of_it(library):
    data = photo(1)
    library.write("a.jpg", data)
    library.scan()
    library.ingest()
    media_id = library.location("a.jpg")["media_id"]
    with catalog.transaction(library.conn):  # as DELETE /media does for a library item
        catalog_libraries.exclude_media(library.conn, [media_id])
        catalog.delete_media(library.conn, media_id)
    assert (library.root / "a.jpg").read_bytes() == data  # the user's file stays
    location = library.location("a.jpg")
    assert (location["excluded"], location["media_id"], location["sha256"]) == (1, None, sha256(data))
    assert library.scan().queued == 0
    os.utime(library.root / "a.jpg", ns=(1, 1_000_000_000))
    assert library.scan().queued == 0  # changed or not, it stays excluded
    library.write("later/copy.jpg", data)
    assert library.scan().queued == 1
    assert library.ingest() == {"later/copy.jpg": ("cancelled", library_items.EXCLUDED, None)}
    assert library.location("later/copy.jpg")["excluded"] == 1
    assert catalog.media_by_sha(library.conn, sha256(data)) is None and library.scan().queued == 0


def test_failures_are_listed_counted_and_not_retried_until_the_file_changes(library):
    library.write("notes.jpg", b"a shopping list, not a photo\n")
    library.write("empty.jpg", b"")
    (library.root / "gone.jpg").symlink_to(library.root / "missing.jpg")
    library.write("good.jpg", photo(1))
    report = library.scan()
    assert (report.queued, report.failed) == (3, 1)
    outcomes = library.ingest()
    assert outcomes["notes.jpg"] == ("failed", "not an image or video (content looks like text)", None)
    assert outcomes["empty.jpg"] == ("failed", "empty file", None)
    assert catalog_libraries.library_errors(library.conn, library.library_id) == [
        {"file": "empty.jpg", "reason": "empty file"},
        {"file": "gone.jpg", "reason": DANGLING},
        {"file": "notes.jpg", "reason": "not an image or video (content looks like text)"}]
    assert catalog_libraries.library_summaries(library.conn, library.library_id)[0]["failed"] == 3
    assert library.scan().queued == 0  # not tried again while they stay as they are
    library.write("notes.jpg", photo(2))
    assert library.scan().queued == 1
    assert library.ingest()["notes.jpg"][0] == "indexed"
    assert [e["file"] for e in catalog_libraries.library_errors(library.conn, library.library_id)] == [
        "empty.jpg", "gone.jpg"]


def test_a_file_that_vanishes_before_its_item_runs_fails_alone_with_a_reason(library):
    library.write("a.jpg", photo(1))
    library.write("b.jpg", photo(2))
    library.scan()
    (library.root / "a.jpg").unlink()
    outcomes = library.ingest()
    assert outcomes["a.jpg"] == ("failed", "file not found (it was removed before it could be ingested)", None)
    assert outcomes["b.jpg"][0] == "indexed"
    assert library.scan().removed == 1 and catalog_libraries.library_errors(library.conn, library.library_id) == []


def test_a_file_whose_location_went_while_it_was_ingested_fails_and_leaves_nothing(library):
    library.write("a.jpg", photo(1))
    library.scan()
    catalog_libraries.remove_locations(library.conn, [library.location("a.jpg")["id"]])  # a scan meanwhile
    assert library.ingest() == {"a.jpg": ("failed", library_items.LOCATION_GONE, None)}
    assert catalog.counts(library.conn)["media"] == 0


def test_a_live_photo_is_one_item_its_clip_riding_along(library):
    library.write("IMG_0001.HEIC", b"still")
    library.write("IMG_0001.MOV", b"motion")
    library.write("IMG_0002.JPG", photo(2))
    report = library.scan()
    assert report.queued == 2
    items = {catalog.get_item(library.conn, i)["file"]: catalog.get_item(library.conn, i) for i in library.queued}
    assert sorted(items) == ["IMG_0001.HEIC", "IMG_0002.JPG"]
    assert items["IMG_0001.HEIC"]["motion_path"] == str(library.root / "IMG_0001.MOV")
    assert items["IMG_0002.JPG"]["motion_path"] is None
    assert library.location("IMG_0001.MOV")["motion_of"] == library.location("IMG_0001.HEIC")["id"]
    assert library.scan().queued == 0  # the clip is known: not an item of its own next time


def test_a_moved_live_photo_keeps_its_media_and_its_clip_rides_along(library):
    library.write("IMG_0003.JPG", photo(3))
    library.write("IMG_0003.MOV", b"motion")
    library.scan()
    assert library.ingest()["IMG_0003.JPG"][0] == "indexed"
    media_id = library.location("IMG_0003.JPG")["media_id"]
    (library.root / "2024").mkdir()
    for name in ("IMG_0003.JPG", "IMG_0003.MOV"):
        os.rename(library.root / name, library.root / "2024" / name)
    report = library.scan()
    assert (report.moved, report.queued, report.removed) == (1, 0, 1)  # the old clip's location went
    still = library.location("2024/IMG_0003.JPG")
    assert still["media_id"] == media_id
    assert library.location("2024/IMG_0003.MOV")["motion_of"] == still["id"]
    assert catalog_libraries.motion_clip_locations(library.conn, media_id)[0][0]["path"] == "2024/IMG_0003.MOV"


# -- the folder itself --------------------------------------------------------------------------------------
def test_a_folder_that_goes_away_makes_the_library_unavailable_and_nothing_is_removed(library, tmp_path):
    library.write("a.jpg", photo(1))
    library.write("b.jpg", photo(2))
    library.scan()
    library.ingest()
    before = catalog_rows(library.conn)
    away = tmp_path / "unmounted"
    os.rename(library.root, away)
    report = library.scan()
    assert (report.status, report.reason) == ("unavailable", MISSING.format(path=library.root))
    row = catalog_libraries.get_library(library.conn, library.library_id)
    assert (row["status"], row["status_reason"]) == ("unavailable", report.reason)
    assert catalog_rows(library.conn) == before
    library.root.mkdir()  # an empty mount point
    report = library.scan()
    assert (report.status, report.reason) == ("unavailable", EMPTY.format(path=library.root))
    assert catalog_rows(library.conn) == before
    library.root.rmdir()
    os.rename(away, library.root)
    report = library.scan()
    assert (report.status, report.queued, report.hashed, report.removed) == ("ready", 0, 0, 0)
    assert catalog_rows(library.conn) == before


def test_a_subfolder_that_cannot_be_read_keeps_what_was_known_beneath_it(library, monkeypatch):
    library.write("a.jpg", photo(1))
    library.write("locked/b.jpg", photo(2))
    library.scan()
    library.ingest()
    real_scandir = os.scandir

    def refusing(path):
        if str(path).endswith("/locked"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)  # running as root, permissions cannot refuse a folder
    report = library.scan()
    assert (report.status, report.removed, report.forgotten) == ("ready", 0, 0)
    assert library.location("locked/b.jpg")["media_id"] is not None


# -- copies an earlier release made, and uploads --------------------------------------------------------------
def test_a_copy_the_old_folder_ingest_made_is_released_once_its_file_is_found_unchanged(library):
    data = photo(1)
    path = library.write("a.jpg", data)
    _, (item_id,) = catalog.create_job(library.conn, "folder", str(library.root), [("a.jpg", str(path))])
    old = ingest_item(item_id, library.ctx)  # as an earlier release ingested a server folder: copied
    copy = library.ctx.store.resolve(catalog.get_media(library.conn, old.media_id)["path"])
    assert copy.read_bytes() == data
    library.scan()
    assert library.ingest() == {"a.jpg": ("duplicate", "same content as 'a.jpg'", old.media_id)}
    media = catalog.get_media(library.conn, old.media_id)
    assert (media["path"], media["name"]) == ("", "Family/a.jpg") and not copy.exists()
    assert catalog_libraries.media_locations(library.conn, old.media_id) == [
        {"library_id": library.library_id, "library": "Family", "path": "a.jpg"}]


def test_an_upload_of_content_known_from_a_library_is_kept_and_outlives_the_library(library):
    data = photo(1)
    library.write("a.jpg", data)
    library.scan()
    library.ingest()
    media_id = library.location("a.jpg")["media_id"]
    job_id = catalog.new_job_id()
    upload = library.ctx.settings.uploads_dir / job_id / "0"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(data)
    _, (item_id,) = catalog.create_job(library.conn, "upload", "trip", [("trip/a.jpg", f"uploads/{job_id}/0")],
                                       job_id=job_id)
    assert ingest_item(item_id, library.ctx).status == "duplicate"
    copy = catalog.get_media(library.conn, media_id)["path"]
    assert copy and library.ctx.store.resolve(copy).read_bytes() == data
    assert catalog_libraries.delete_library(library.conn, library.library_id) == []  # the upload keeps it
    assert catalog.get_media(library.conn, media_id) is not None


def test_search_can_be_narrowed_to_a_library(library):
    library.write("a.jpg", photo(1))
    library.scan()
    library.ingest()
    other_id = catalog_libraries.insert_library(library.conn, "Other", str(library.root.parent))
    own = catalog.rows_matching(library.conn, library=library.library_id)
    assert own == [frame["vector_row"] for frame in catalog.frames_of_media(library.conn, library.media_of("a.jpg")["id"])]
    assert catalog.rows_matching(library.conn, library=other_id) == []
    assert catalog.rows_matching(library.conn, library=library.library_id, folder="Family") == own
