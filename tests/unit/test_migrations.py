"""Catalog migrations: a catalog written by the schema before migrations were steps (user_version 3,
``catalog_v3.sql``), with rows in every table, reaches the latest version without losing a row or a
value; the step runner applies ALTER TABLE + backfill steps, each in its own transaction, once."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from pathlib import Path, PurePosixPath

import pytest

from shared import catalog
from shared.catalog import Step

V3_SCHEMA = Path(__file__).with_name("catalog_v3.sql")
CENTROID = bytes(range(16))
OLD_CENTROID = bytes(reversed(range(16)))


def write_v3_catalog(path: Path) -> None:
    """A catalog as the code before this change left it: its schema, WAL, user_version 3, and rows in
    every table (including a deleted media row, so the AUTOINCREMENT counter is ahead of the ids)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.executescript(f"BEGIN IMMEDIATE;\n{V3_SCHEMA.read_text()}\nPRAGMA user_version=3;\nCOMMIT;")
    rows = {
        "jobs(id, source, folder, created_at, cancelled, error)": [
            ("job-upload", "upload", "trip", 1000.0, 0, None),
            ("job-folder", "folder", "/photos/2020", 1001.5, 1, "the folder went away"),
        ],
        "media(id, sha256, kind, mime, path, name, folder, size, width, height, duration, fps, phash, "
        "near_duplicate_of, job_id, status, created_at)": [
            (1, "a" * 64, "image", "image/jpeg", "media/originals/a.jpg", "trip/a.jpg", "trip", 2048, 640, 480,
             None, None, "ffff0000ffff0000", None, "job-upload", "indexed", 1000.25),
            (2, "b" * 64, "video", "video/mp4", "media/originals/b.mp4", "trip/b.mp4", "trip", 9_000_000, 1920,
             1080, 12.5, 29.97, None, None, "job-upload", "indexed", 1000.5),
            (3, "c" * 64, "image", "image/png", "media/originals/c.png", "c.png", "/photos/2020", 512, 320, 240,
             None, None, "ffff0000ffff0001", 1, "job-folder", "pending", 1001.75),
            (4, "e" * 64, "image", "image/jpeg", "media/originals/e.jpg", "e.jpg", "trip", 1, 1, 1,
             None, None, None, None, "job-upload", "indexed", 1000.75),
        ],
        "job_items(id, job_id, file, stored_path, status, reason, media_id, updated_at)": [
            (1, "job-upload", "trip/a.jpg", "uploads/job-upload/0", "indexed", None, 1, 1000.3),
            (2, "job-upload", "trip/b.mp4", "uploads/job-upload/1", "indexed", None, 2, 1000.6),
            (3, "job-upload", "trip/a copy.jpg", "uploads/job-upload/2", "duplicate", "same content", 1, 1000.7),
            (4, "job-upload", "trip/bad.jpg", "uploads/job-upload/3", "failed", "not an image", None, 1000.8),
            (5, "job-folder", "c.png", "/photos/2020/c.png", "running", None, 3, 1001.8),
            (6, "job-folder", "d.png", "/photos/2020/d.png", "cancelled", "job cancelled", None, 1001.9),
        ],
        "frames(id, media_id, timestamp, path, thumb_path, width, height, vector_row)": [
            (1, 1, None, "media/frames/a-0.jpg", "media/thumbs/a-0.jpg", 640, 480, 0),
            (2, 2, 0.0, "media/frames/b-0.jpg", "media/thumbs/b-0.jpg", 768, 432, 1),
            (3, 2, 6.25, "media/frames/b-1.jpg", "media/thumbs/b-1.jpg", 768, 432, 2),
            (4, 3, None, "media/frames/c-0.jpg", "media/thumbs/c-0.jpg", 320, 240, None),
        ],
        "video_vectors(media_id, vector_row)": [(2, 3)],
        "clusters(id, centroid, name, label, label_centroid, label_model, dirty, created_at, updated_at)": [
            (1, CENTROID, "Beach days", "sea, sand", OLD_CENTROID, "clip-vit-b-32", 0, 1000.4, 1000.45),
            (2, OLD_CENTROID, None, None, None, None, 1, 1000.65, 1000.65),
        ],
        "cluster_members(media_id, cluster_id, similarity, added_at)": [(1, 1, 0.875, 1000.4), (2, 2, 1.0, 1000.65)],
        "collections(id, name, job_id, created_at)": [(1, "trip", "job-upload", 1000.3), (2, "Favourites", None, 1002.0)],
        "collection_members(collection_id, media_id, added_at)": [(1, 1, 1000.3), (1, 2, 1000.6), (2, 2, 1002.5)],
        "library_state(key, value)": [("recluster_requested", 1003.25)],
    }
    with conn:
        conn.execute("BEGIN")
        for table, values in rows.items():
            marks = ",".join("?" for _ in values[0])
            conn.executemany(f"INSERT INTO {table} VALUES ({marks})", values)
        conn.execute("DELETE FROM media WHERE id=4")  # the next media id is 5, never 4 again
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()


def snapshot(conn: sqlite3.Connection) -> dict[str, list[tuple]]:
    """Every row of every table (sqlite_sequence, the AUTOINCREMENT counters, included)."""
    tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
    return {table: sorted((tuple(row) for row in conn.execute(f"SELECT * FROM {table}")), key=repr)
            for table in tables}


def schema(conn: sqlite3.Connection) -> dict[str, str]:
    return {row[0]: row[1] for row in conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL")}


@pytest.fixture
def v3_path(tmp_path) -> Path:
    path = tmp_path / "v3" / "catalog.sqlite3"
    path.parent.mkdir()
    write_v3_catalog(path)
    return path


def columns_of(path: Path) -> dict[str, list[str]]:
    """Every table's columns, as the catalog file has them now."""
    conn = sqlite3.connect(path)
    try:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {table: [row[1] for row in conn.execute(f"PRAGMA table_info({table})")] for table in tables}
    finally:
        conn.close()


def rows_in(conn: sqlite3.Connection, columns: dict[str, list[str]]) -> dict[str, list[tuple]]:
    """Every row of each table, in the given columns only (later steps' columns aside)."""
    return {table: sorted((tuple(row) for row in conn.execute(f"SELECT {', '.join(names)} FROM {table}")), key=repr)
            for table, names in columns.items()}


def read_raw(path: Path) -> tuple[dict[str, list[tuple]], dict[str, str]]:
    conn = sqlite3.connect(path)
    try:
        return snapshot(conn), schema(conn)
    finally:
        conn.close()


def test_the_fixture_is_the_schema_from_before_migrations():
    """catalog_v3.sql is what version 3 was: steps 1-3 create exactly it (the CREATE statements agree)."""
    conn = sqlite3.connect(":memory:")
    conn.executescript(V3_SCHEMA.read_text())
    fresh = sqlite3.connect(":memory:", isolation_level=None)
    catalog.migrate(fresh, catalog.STEPS[:3])
    assert schema(fresh) == schema(conn) and len(schema(conn)) == 17
    assert catalog.user_version(fresh) == 3


def test_a_version_3_catalog_with_rows_everywhere_is_upgraded_without_loss(v3_path, tmp_path):
    before, old_schema = read_raw(v3_path)
    old_columns = columns_of(v3_path)
    assert all(before[table] for table in before), "the fixture must have rows in every table"
    conn = catalog.connect(v3_path)
    assert catalog.user_version(conn) == catalog.SCHEMA_VERSION
    assert rows_in(conn, old_columns) == before  # every row, every value (later steps' tables and columns aside)
    # Step 5's claims: the item left running was started once, by a worker from before claims.
    assert {row[0]: tuple(row[1:]) for row in conn.execute("SELECT id, attempts, claimed_by, claimed_at FROM job_items")} == {
        1: (0, None, None), 2: (0, None, None), 3: (0, None, None), 4: (0, None, None),
        5: (1, "before-schema-5", 1001.8), 6: (0, None, None)}
    # Step 8: jobs and items from before libraries belong to none.
    assert {row[0] for row in conn.execute("SELECT library_id FROM jobs")} == {None}
    assert {row[0] for row in conn.execute("SELECT location_id FROM job_items")} == {None}
    upgraded = schema(conn)
    altered = {"job_items", "media", "jobs"}  # by steps 5, 7, 8 and 10 (their new columns are checked above and below)
    assert {name: sql for name, sql in upgraded.items() if name in old_schema and name not in altered} == {
        name: sql for name, sql in old_schema.items() if name not in altered}
    assert set(upgraded) - set(old_schema) == {
        "job_items_media", "media_near_duplicate", "job_items_claims",  # steps 4 and 5
        "users", "sessions", "sessions_user", "api_keys", "api_keys_user", "invitations", "audit_log",  # step 6
        "media_taken", "media_camera",  # step 7
        "libraries", "locations", "locations_sha", "locations_media", "locations_failed", "job_items_location",  # step 8
        "media_phash_band0", "media_phash_band1", "media_phash_band2", "media_phash_band3", "visual_pairs",
        "visual_pairs_b",  # step 9
        "media_text_unread", "frame_text", "frame_text_added", "frame_text_removed", "frame_text_search",
        "frame_text_search_config", "frame_text_search_data", "frame_text_search_docsize",
        "frame_text_search_idx"}  # step 10 (FTS5 keeps its index in shadow tables)
    fresh = catalog.connect(tmp_path / "fresh.sqlite3")
    assert schema(fresh) == upgraded  # an upgraded catalog and a new one are the same catalog
    fresh.close()
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []

    # The catalog's functions read the old rows.
    upload = catalog.job_status(conn, "job-upload")
    assert (upload["status"], upload["total"], upload["processed"], upload["indexed"], upload["duplicates"],
            upload["failed"], upload["created_at"]) == ("done", 4, 4, 2, 1, 1, 1000.0)
    assert upload["errors"] == [{"file": "trip/bad.jpg", "reason": "not an image"}]
    folder = catalog.job_status(conn, "job-folder")
    assert (folder["status"], folder["error"], folder["folder"]) == ("failed", "the folder went away", "/photos/2020")
    assert catalog.recent_job_ids(conn) == ["job-folder", "job-upload"]
    item = catalog.get_item(conn, 5)
    assert (item["status"], item["media_id"], item["cancelled"], item["folder"]) == ("running", 3, 1, "/photos/2020")
    video = catalog.get_media(conn, 2)
    assert (video["kind"], video["duration"], video["fps"], video["size"]) == ("video", 12.5, 29.97, 9_000_000)
    assert catalog.media_by_sha(conn, "c" * 64)["near_duplicate_of"] == 1
    assert [(f["id"], f["timestamp"], f["vector_row"]) for f in catalog.frames_of_media(conn, 2)] == [
        (2, 0.0, 1), (3, 6.25, 2)]
    assert catalog.video_row(conn, 2) == 3
    assert catalog.get_frame(conn, 4)["vector_row"] is None
    assert {row: hit["media_id"] for row, hit in catalog.frames_for_rows(conn, [0, 1, 2, 9]).items()} == {
        0: 1, 1: 2, 2: 2}
    assert catalog.rows_matching(conn, kind="video", folder="trip") == [1, 2]
    assert catalog.media_vector_rows(conn) == {1: 0, 2: 3}  # media 3 is still pending
    assert catalog.unembedded(conn) == ([4], [])
    assert catalog.counts(conn) == {"media": 3, "frames": 3}
    beach, other = catalog.clusters_with_sizes(conn)
    assert (beach["name"], beach["label"], beach["centroid"], beach["label_centroid"], beach["label_model"],
            beach["dirty"], beach["size"]) == ("Beach days", "sea, sand", CENTROID, OLD_CENTROID, "clip-vit-b-32", 0, 1)
    assert (other["id"], other["label"], other["dirty"]) == (2, None, 1)
    assert [(m["id"], m["similarity"], m["cover_frame"]) for m in catalog.cluster_media(conn, 1, 10)] == [(1, 0.875, 1)]
    assert catalog.cluster_memberships(conn) == [(1, 1), (2, 2)]
    assert catalog.clusters_need_work(conn)  # cluster 2 is dirty and unlabelled
    assert [(c["id"], c["name"], c["job_id"], c["size"]) for c in catalog.collections_with_sizes(conn)] == [
        (2, "Favourites", None, 1), (1, "trip", "job-upload", 2)]
    assert [m["id"] for m in catalog.collection_media(conn, 1, 10)] == [1, 2]
    assert catalog.collection_covers(conn, [1, 2]) == {1: [1, 2], 2: [2]}
    assert catalog.get_state(conn, "recluster_requested") == 1003.25
    assert [(a["id"], a["file"], a["media_id"]) for a in catalog.upload_aliases(conn)] == [(3, "trip/a copy.jpg", 1)]
    (group,) = catalog.near_duplicates(conn)
    assert group["original"]["id"] == 1 and [d["id"] for d in group["duplicates"]] == [3]
    # Step 9: the hashes already there are in the band indexes; no visual neighbours are recorded yet.
    assert catalog.find_near_duplicate(conn, "ffff0001ffff0000", 1) == 1  # media 1, one bit off
    assert catalog.find_near_duplicate(conn, "efff0000efff0003", 4) == 1  # via its copy, media 3
    assert catalog.visual_rows(conn) == {} and catalog.visual_pairs(conn, 0.8) == []

    # And it goes on working: ids stay never reused, triggers and cascades still fire.
    new_media = catalog.insert_media(conn, sha256="f" * 64, kind="image", mime="image/jpeg", path="f.jpg",
                                     name="f.jpg", size=1)
    assert new_media == 5
    assert not catalog.claim_media(conn, 1, 3)  # item 5 is live on media 3
    catalog.delete_media(conn, 1)
    assert catalog.get_cluster(conn, 1)["dirty"] == 1 and catalog.get_media(conn, 3)["near_duplicate_of"] is None
    conn.close()


def test_connecting_again_changes_nothing(v3_path):
    catalog.connect(v3_path).close()
    before, _ = read_raw(v3_path)
    catalog.connect(v3_path).close()
    assert read_raw(v3_path)[0] == before


# -- the step runner ---------------------------------------------------------------------------------
def add_titles(conn: sqlite3.Connection) -> None:
    """A synthetic step 6: a NOT NULL column backfilled in Python, and one backfilled by SQL from another
    table, as a real ALTER TABLE step would."""
    conn.execute("ALTER TABLE media ADD COLUMN title TEXT NOT NULL DEFAULT ''")
    for media_id, name in conn.execute("SELECT id, name FROM media").fetchall():
        conn.execute("UPDATE media SET title=? WHERE id=?", (PurePosixPath(name).stem.replace("_", " "), media_id))
    conn.execute("ALTER TABLE job_items ADD COLUMN source TEXT")
    conn.execute("UPDATE job_items SET source = jobs.source FROM jobs WHERE jobs.id = job_items.job_id")


NEXT = catalog.SCHEMA_VERSION + 1  # the number a synthetic step after the real ones takes
TITLES = Step(NEXT, "media.title and job_items.source, backfilled", add_titles)


def test_a_step_can_alter_tables_and_backfill(v3_path, tmp_path):
    copy = tmp_path / "copy.sqlite3"
    shutil.copy(v3_path, copy)
    before, _ = read_raw(copy)
    old_columns = columns_of(copy)
    conn = catalog.connect(copy, steps=[*catalog.STEPS, TITLES])
    assert catalog.user_version(conn) == NEXT
    assert dict(conn.execute("SELECT id, title FROM media")) == {1: "a", 2: "b", 3: "c"}
    assert dict(conn.execute("SELECT id, source FROM job_items")) == {
        1: "upload", 2: "upload", 3: "upload", 4: "upload", 5: "folder", 6: "folder"}
    assert rows_in(conn, old_columns) == before
    assert catalog.get_media(conn, 1)["title"] == "a"  # typed rows carry a later column along
    conn.close()

    # An older release opening the newer catalog leaves it as it is.
    conn = catalog.connect(copy)
    assert catalog.user_version(conn) == NEXT and catalog.get_media(conn, 2)["name"] == "trip/b.mp4"
    conn.close()
    original = sqlite3.connect(v3_path)
    assert catalog.user_version(original) == 3  # the copy was migrated, not the original
    original.close()


def test_a_failing_step_leaves_the_catalog_at_the_step_before_and_is_tried_again(v3_path):
    def half_done(conn: sqlite3.Connection) -> None:
        add_titles(conn)
        raise RuntimeError("killed halfway")

    with pytest.raises(RuntimeError, match="killed halfway"):
        catalog.connect(v3_path, steps=[*catalog.STEPS, Step(NEXT, "fails", half_done)])
    conn = catalog.connect(v3_path)
    assert catalog.user_version(conn) == catalog.SCHEMA_VERSION  # the real steps committed; the failing one rolled back whole
    assert "title" not in [row["name"] for row in conn.execute("PRAGMA table_info(media)")]
    assert catalog.migrate(conn, [*catalog.STEPS, TITLES]) == NEXT
    assert conn.execute("SELECT title FROM media WHERE id=2").fetchone()[0] == "b"
    conn.close()


def test_connections_migrating_at_once_run_each_step_once(tmp_path):
    path = tmp_path / "catalog.sqlite3"

    def count_runs(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO library_state(key, value) VALUES ('synthetic step ran', 1) "
                     "ON CONFLICT(key) DO UPDATE SET value = value + 1")

    steps = [*catalog.STEPS, Step(NEXT, "counts its runs", count_runs)]
    start, errors = threading.Barrier(4), []

    def connect() -> None:
        try:
            start.wait()
            catalog.connect(path, steps=steps).close()
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=connect) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    conn = catalog.connect(path, steps=steps)
    assert catalog.user_version(conn) == NEXT and catalog.get_state(conn, "synthetic step ran") == 1
    conn.close()


def test_steps_must_be_numbered_in_order(tmp_path):
    conn = sqlite3.connect(tmp_path / "catalog.sqlite3", isolation_level=None)
    with pytest.raises(ValueError, match="numbered"):
        catalog.migrate(conn, [catalog.STEPS[0], TITLES])
    assert catalog.user_version(conn) == 0
    conn.close()
