"""Per-item claims in the catalog (catalog.claim_item and friends): an item starts running only through a
claim that counts its attempt; a live worker's item is never started a second time; a dead worker's item
is taken over; the start after max attempts fails the item with its reason; what the reaper looks up."""

from __future__ import annotations

import json
import threading
import time

import pytest
from celery import Celery

from services.ingest_worker.liveness import ingest_item_of, items_to_resend, lost_items
from shared import catalog
from shared.catalog import Claim
from shared.queue import INGEST_ITEM_TASK, RECLUSTER_TASK

MAX = 3


@pytest.fixture
def conn(tmp_path):
    conn = catalog.connect(tmp_path / "catalog.sqlite3")
    yield conn
    conn.close()


def new_items(conn, count: int = 1) -> list[int]:
    _, items = catalog.create_job(conn, "upload", "u", [(f"{n}.jpg", f"uploads/{n}") for n in range(count)])
    return items


def alive(*workers: str):
    return set(workers).__contains__


def state(conn, item_id: int) -> tuple:
    item = catalog.get_item(conn, item_id)
    return item["status"], item["claimed_by"], item["attempts"]


def test_a_claim_starts_the_item_for_its_worker_and_counts_the_attempt(conn):
    (item,) = new_items(conn)
    assert state(conn, item) == ("queued", None, 0)
    claim, row = catalog.claim_item(conn, item, "w1", MAX, alive())
    assert claim == Claim.CLAIMED and (row["status"], row["claimed_by"], row["attempts"]) == ("running", "w1", 1)
    assert row["claimed_at"] is not None


def test_an_item_running_under_a_live_worker_is_not_started_again(conn):
    (item,) = new_items(conn)
    catalog.claim_item(conn, item, "w1", MAX, alive())
    assert catalog.claim_item(conn, item, "w2", MAX, alive("w1")).claim == Claim.BUSY  # a second delivery
    assert catalog.claim_item(conn, item, "w1", MAX, alive()).claim == Claim.BUSY  # the same worker, again
    assert state(conn, item) == ("running", "w1", 1)  # nothing changed, nothing counted


def test_an_item_whose_worker_is_gone_is_taken_over_and_counted_again(conn):
    (item,) = new_items(conn)
    catalog.claim_item(conn, item, "w1", MAX, alive())
    claim, row = catalog.claim_item(conn, item, "w2", MAX, alive())  # w1 has no heartbeat any more
    assert claim == Claim.CLAIMED and (row["claimed_by"], row["attempts"]) == ("w2", 2)


def test_the_start_after_max_attempts_fails_the_item_with_the_reason(conn):
    (item,) = new_items(conn)
    for number in range(1, MAX + 1):
        claim, row = catalog.claim_item(conn, item, f"w{number}", MAX, alive())  # each worker died
        assert (claim, row["attempts"]) == (Claim.CLAIMED, number)
    claim, row = catalog.claim_item(conn, item, "w9", MAX, alive())
    assert claim == Claim.GAVE_UP and row["status"] == "failed" and row["attempts"] == MAX
    assert row["reason"] == (f"gave up: processing crashed or timed out {MAX} times "
                             f"(last: {catalog.WORKER_GONE})")
    assert catalog.claim_item(conn, item, "w9", MAX, alive()).claim == Claim.FINISHED
    job = catalog.job_status(conn, row["job_id"])
    assert (job["status"], job["failed"]) == ("done", 1)


def test_a_clean_release_gives_the_attempt_back_and_a_counted_one_keeps_it(conn):
    first, second = new_items(conn, 2)
    for item in (first, second):
        catalog.claim_item(conn, item, "w1", MAX, alive())
    assert catalog.release_item(conn, first, "w1", "waiting to retry: embedder unreachable")
    assert catalog.release_item(conn, second, "w1", "waiting to retry: attempt 1 of 3 died", counted=True)
    assert state(conn, first) == ("queued", None, 0)  # held again by whoever its retry's task reaches
    assert state(conn, second) == ("queued", None, 1)
    assert catalog.get_item(conn, first)["reason"] == "waiting to retry: embedder unreachable"
    assert catalog.claim_item(conn, second, "w2", MAX, alive("w1")).item["attempts"] == 2
    assert not catalog.release_item(conn, second, "w1", "too late")  # w2 holds it now
    assert state(conn, second) == ("running", "w2", 2)


def test_finished_and_missing_items_are_left_as_they_are(conn):
    (item,) = new_items(conn)
    catalog.claim_item(conn, item, "w1", MAX, alive())
    catalog.set_item(conn, item, "indexed")
    claim, row = catalog.claim_item(conn, item, "w2", MAX, alive())
    assert claim == Claim.FINISHED and row["status"] == "indexed"
    assert catalog.claim_item(conn, 10_000, "w1", MAX, alive()) == (Claim.MISSING, None)


def test_of_many_workers_claiming_one_item_at_once_exactly_one_starts_it(tmp_path):
    path = tmp_path / "catalog.sqlite3"
    setup = catalog.connect(path)
    (item,) = new_items(setup)
    start, claims = threading.Barrier(6), []

    def claim(worker: str) -> None:
        conn = catalog.connect(path)
        start.wait()
        claims.append(catalog.claim_item(conn, item, worker, MAX, lambda _: True).claim)
        conn.close()

    threads = [threading.Thread(target=claim, args=(f"w{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claims) == sorted([Claim.CLAIMED] + [Claim.BUSY] * 5)
    assert catalog.get_item(setup, item)["attempts"] == 1
    setup.close()


def test_the_reaper_finds_the_items_held_by_workers_that_are_gone(conn):
    running, waiting, fresh, done, other = new_items(conn, 5)
    for item in (running, waiting, done):
        catalog.claim_item(conn, item, "dead", MAX, alive())
    catalog.release_item(conn, waiting, "dead", "waiting to retry: embedder unreachable")
    assert catalog.hold_item(conn, waiting, "dead")  # its retry's task reached that worker, which died
    catalog.set_item(conn, done, "indexed")
    catalog.claim_item(conn, other, "live", MAX, alive())
    assert catalog.hold_item(conn, fresh, "live")  # received, waiting for a free thread
    assert catalog.held_items(conn) == {"dead": [running, waiting], "live": [fresh, other]}
    assert items_to_resend(catalog.held_items(conn), lambda worker: worker != "live") == {"dead": [running, waiting]}
    assert not catalog.hold_item(conn, other, "dead")  # only a queued item is held that way


def test_the_item_of_a_task_message_is_read_as_kombu_keeps_it():
    """kombu keeps each message taken and not acknowledged as [message, exchange, routing key]."""
    app = Celery("claims-test", broker="memory://")
    app.send_task(INGEST_ITEM_TASK, args=[42])
    app.send_task(RECLUSTER_TASK)
    with app.connection_for_write() as connection:
        taken = [json.dumps([connection.default_channel._get("celery"), "", "celery"]) for _ in range(2)]
    assert [ingest_item_of(raw) for raw in taken] == [42, None]
    assert ingest_item_of("null") is None and ingest_item_of(b"[{}]") is None


def test_items_waiting_for_a_task_that_is_nowhere_are_found(conn):
    fresh, started, held, released = new_items(conn, 4)
    catalog.claim_item(conn, started, "w1", MAX, alive())
    catalog.hold_item(conn, held, "w1")
    catalog.claim_item(conn, released, "w1", MAX, alive())
    catalog.release_item(conn, released, "w1", "waiting to retry: embedder unreachable")
    failed_job, (of_failed_job,) = catalog.create_job(conn, "upload", "v", [("x.jpg", "uploads/x")])
    catalog.fail_job(conn, failed_job, "could not queue the files")
    assert catalog.waiting_items(conn, before=time.time() + 1) == [fresh, released]  # held by nobody
    assert catalog.waiting_items(conn, before=0.0) == []  # none waits since before then
    # Their tasks: one in the queue, the other taken a moment ago by a worker, or nowhere (lost).
    assert lost_items([fresh, released], queued=[fresh], taken_recently=[released], queue_length=1) == []
    assert lost_items([fresh, released], queued=[fresh], taken_recently=[], queue_length=1) == [released]
    assert lost_items([fresh, released], queued=[], taken_recently=[], queue_length=2) == []  # not looked at
