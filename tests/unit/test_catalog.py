"""The catalog's own guarantees."""

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
