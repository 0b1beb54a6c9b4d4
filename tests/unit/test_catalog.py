"""The catalog's own guarantees."""

import itertools
import random
import sqlite3

import pytest

from shared import catalog


def test_ids_of_deleted_media_and_frames_are_never_reused(tmp_path):
    """Frame and media URLs are cached as immutable, so an id must never name another item later."""
    conn = catalog.connect(tmp_path / "catalog.sqlite3")

    def add(sha: str) -> tuple[int, int]:
        media_id = catalog.insert_media(conn, sha256=sha, kind="image", mime="image/jpeg", path=f"{sha}.jpg",
                                        name=f"{sha}.jpg", size=1)
        return media_id, catalog.insert_frame(conn, media_id, f"{sha}-0.jpg", f"{sha}-t.jpg", 8, 8)

    first = add("a")
    catalog.delete_media(conn, first[0])
    second = add("b")
    assert second[0] > first[0] and second[1] > first[1]


def test_a_job_lists_its_first_failed_files_and_counts_them_all(tmp_path):
    conn = catalog.connect(tmp_path / "catalog.sqlite3")
    count = catalog.MAX_LISTED_ERRORS + 5
    job_id, items = catalog.create_job(conn, "upload", "bad", [(f"bad/{n}.jpg", f"uploads/{n}") for n in range(count)])
    catalog.mark_items_failed(conn, {item: f"broken {n}" for n, item in enumerate(items)})
    job = catalog.job_status(conn, job_id)
    assert job["status"] == "done" and job["failed"] == count
    assert len(job["errors"]) == catalog.MAX_LISTED_ERRORS
    assert job["errors"][0] == {"file": "bad/0.jpg", "reason": "broken 0"}


# -- transactions nest ------------------------------------------------------------------------------
@pytest.fixture
def conn(tmp_path):
    conn = catalog.connect(tmp_path / "catalog.sqlite3")
    yield conn
    conn.close()


def test_an_inner_transaction_that_fails_rolls_back_only_itself(conn):
    with catalog.transaction(conn):
        catalog.set_state(conn, "outer", 1.0)
        with pytest.raises(RuntimeError), catalog.transaction(conn):
            catalog.set_state(conn, "inner", 2.0)
            raise RuntimeError("inner part fails")
        catalog.set_state(conn, "after", 3.0)
    assert not conn.in_transaction
    assert [catalog.get_state(conn, key) for key in ("outer", "inner", "after")] == [1.0, None, 3.0]


def test_an_outer_transaction_that_fails_rolls_back_everything_inside_it(conn):
    with pytest.raises(RuntimeError), catalog.transaction(conn):
        job_id, _ = catalog.create_job(conn, "upload", "gone", [("a.jpg", "uploads/a")])  # its own transaction
        with catalog.transaction(conn):
            catalog.set_state(conn, "inner", 2.0)
        raise RuntimeError("outer part fails")
    assert not conn.in_transaction
    assert catalog.job_status(conn, job_id) is None and catalog.get_state(conn, "inner") is None
    assert conn.execute("SELECT COUNT(*) FROM job_items").fetchone()[0] == 0


def test_writers_that_open_a_transaction_work_inside_a_callers_and_commit_with_it(conn, tmp_path):
    other = catalog.connect(tmp_path / "catalog.sqlite3")
    with catalog.transaction(conn):
        job_id, items = catalog.create_job(conn, "upload", "trip", [(f"{n}.jpg", f"uploads/{n}") for n in range(3)])
        catalog.mark_items_failed(conn, {items[0]: "broken"})
        with pytest.raises(sqlite3.IntegrityError):  # the same job id again: only this call is undone
            catalog.create_job(conn, "upload", "again", [("x.jpg", "uploads/x")], job_id=job_id)
        assert catalog.cancel_job(conn, job_id)
        assert other.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0  # nothing is seen before COMMIT
    job = catalog.job_status(other, job_id)
    assert (job["status"], job["folder"], job["total"], job["failed"]) == ("cancelled", "trip", 3, 1)
    assert [catalog.get_item(other, item)["status"] for item in items] == ["failed", "cancelled", "cancelled"]
    other.close()


# -- typed rows and statuses ------------------------------------------------------------------------
def test_reads_return_typed_rows_whose_statuses_are_enums_equal_to_strings(conn):
    job_id, (item_id,) = catalog.create_job(conn, "folder", "/photos", [("a.mp4", "/photos/a.mp4")])
    item = catalog.get_item(conn, item_id)
    assert type(item) is dict and item["status"] is catalog.ItemStatus.QUEUED and item["status"] == "queued"
    assert (item["folder"], item["cancelled"], item["file"]) == ("/photos", 0, "a.mp4")
    assert catalog.job_status(conn, job_id)["status"] is catalog.JobStatus.QUEUED
    media_id = catalog.insert_media(conn, sha256="c" * 64, kind="video", mime="video/mp4", path="m.mp4",
                                    name="a.mp4", size=5, job_id=job_id)
    catalog.set_item(conn, item_id, catalog.ItemStatus.RUNNING, media_id=media_id)
    catalog.set_item(conn, item_id, "indexed")  # plain strings still do
    assert catalog.get_item(conn, item_id)["status"] is catalog.ItemStatus.INDEXED
    media = catalog.get_media(conn, media_id)
    assert media["kind"] is catalog.MediaKind.VIDEO and media["status"] is catalog.MediaStatus.PENDING
    catalog.mark_media_indexed(conn, media_id)
    assert catalog.media_by_sha(conn, "c" * 64)["status"] == "indexed"
    assert catalog.media_kinds(conn) == {media_id: "video"}
    assert catalog.get_item(conn, item_id)["status"] in catalog.TERMINAL_ITEM_STATES
    with pytest.raises(ValueError):
        catalog.set_item(conn, item_id, "finished")  # not an item status


def test_claiming_a_media_row_finds_its_items_by_index(conn):
    """Step 4's index: a claim looks up the live items of one media row, not every job item ever made."""
    _, (first, second) = catalog.create_job(conn, "upload", "u", [("a.jpg", "uploads/a"), ("b.jpg", "uploads/b")])
    media_id = catalog.insert_media(conn, sha256="d" * 64, kind="image", mime="image/jpeg", path="d.jpg",
                                    name="a.jpg", size=1)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    assert catalog.claim_media(conn, first, media_id)
    conn.set_trace_callback(None)
    assert not catalog.claim_media(conn, second, media_id)  # the first item is live and holds it
    (lookup,) = [sql for sql in statements if sql.startswith("SELECT")]
    plan = " ".join(row["detail"] for row in conn.execute(f"EXPLAIN QUERY PLAN {lookup}"))
    assert "job_items_media" in plan, plan


# -- near duplicates through the perceptual hash's band indexes ------------------------------------
_serial = itertools.count()


def add_hashed(conn: sqlite3.Connection, phash: str, kind: str = "image", near_duplicate_of: int | None = None) -> int:
    return catalog.insert_media(conn, sha256=f"sha-{next(_serial)}", kind=kind, mime="image/jpeg",
                                path="p", name=f"{phash}.jpg", size=1, phash=phash, near_duplicate_of=near_duplicate_of)


def flipped(phash: str, bits) -> str:
    return f"{int(phash, 16) ^ sum(1 << bit for bit in bits):016x}"


def spreads(distance: int, rng: random.Random) -> list[list[int]]:
    """Sets of exactly ``distance`` bit positions: spread as evenly as possible over the four 16-bit bands
    (the case that leaves no band equal), piled into the fewest bands, and random ones."""
    even = [band * 16 + offset for offset in range(16) for band in range(4)][:distance]
    piled = list(range(distance))
    return [even, piled] + [rng.sample(range(64), distance) for _ in range(8)]


@pytest.mark.parametrize("max_distance", [0, 1, 3, 4, 6, 7, 8, 11, 12, 16, 20])
def test_every_hash_within_the_distance_is_found_and_none_beyond(conn, max_distance):
    rng = random.Random(max_distance)
    original = f"{rng.getrandbits(64):016x}"
    for _ in range(200):  # other hashes, more than d bits from every query: the lookup must pass them over
        add_hashed(conn, flipped(original, rng.sample(range(64), rng.randint(2 * max_distance + 2, 64))))
    original_id = add_hashed(conn, original)
    for bits in spreads(max_distance, rng):
        assert catalog.find_near_duplicate(conn, flipped(original, bits), max_distance) == original_id, bits
        if max_distance < 64:
            farther = bits + [rng.choice(sorted(set(range(64)) - set(bits)))]
            assert catalog.find_near_duplicate(conn, flipped(original, farther), max_distance) is None, farther
    assert catalog.find_near_duplicate(conn, original, max_distance, kind="video") is None  # photos only


def test_the_closest_match_names_its_original_and_the_oldest_wins_a_tie(conn):
    original = add_hashed(conn, "c3a5f00f0ff0a5c3")
    copy = add_hashed(conn, flipped("c3a5f00f0ff0a5c3", [0, 20]), near_duplicate_of=original)
    other = add_hashed(conn, flipped("c3a5f00f0ff0a5c3", [0, 20, 40, 60]))
    assert catalog.find_near_duplicate(conn, flipped("c3a5f00f0ff0a5c3", [0, 20, 41]), 6) == original  # via copy
    assert catalog.find_near_duplicate(conn, flipped("c3a5f00f0ff0a5c3", [0, 20, 40, 60, 1]), 6) == other
    assert copy != other


def test_near_duplicates_are_looked_up_through_the_band_indexes(conn):
    """Not a scan of every hash: each band's lookup reads its index (the ingest worker holds the write lock)."""
    for band in range(catalog.PHASH_BANDS):
        plan = " ".join(row["detail"] for row in conn.execute(
            f"EXPLAIN QUERY PLAN SELECT id, phash, near_duplicate_of FROM media "
            f"WHERE {catalog.band_expression(band)} IN (?, ?) AND kind=?", ["0000", "0001", "image"]))
        assert f"USING INDEX media_phash_band{band}" in plan, plan
