"""Faults: every service killed with SIGKILL in the middle of an ingest job while clients search, and a
Redis restart, on one private stack; then the repairs a crash needs (shared/reconcile.py) as a
worker's start makes them in the product (tests/unit/test_reconcile.py has them on their own).

After each fault the service is started again and nothing else is done by hand. Each scenario counts
the library before and after (media, frames, committed vectors, unfinished job items) and checks that
every accepted file was indexed exactly once, that every committed vector is searchable, and that the
job ended "done" with the right counters. The figures are written to test-output/faults.md.

The stack keeps the default task visibility timeout (10 minutes): files in flight when a worker dies come
back through its restart (or the reaper of a live worker), never by waiting that out. A poison file (a
decoder plugin whose files kill the process decoding them, tests/poison.py) fails alone after its attempts.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Self

import httpx
import pytest
import redis

from services.ingest_worker.pipeline import IngestContext, TransientFault, ingest_item
from shared import catalog
from shared.clients import EmbedderClient, IndexClient
from shared.media_store import MediaStore
from shared.vectors import VectorStore
from tests.conftest import TEST_OUTPUT, running_stack, wait_for
from tests.poison import poison_file
from tests.samples import PHOTOS, VIDEOS

ALL_PHOTOS = sorted(PHOTOS.glob("*.JPEG"))
FILES_PER_SCENARIO = 16
RECOVERY_DEADLINE_S = 60  # after a worker's restart, the files it had in flight are done within this
FAULT_TABLE: list[dict] = []


# -- the stack and what is measured on it ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_clip_dir):
    with running_stack(tmp_path_factory.mktemp("faults"), tiny_clip_dir, "faults",
                     MEDIASEARCH_INGEST_RETRY_BASE_S="0.2", MEDIASEARCH_INGEST_RETRY_MAX_S="1",
                     MEDIASEARCH_INGEST_MAX_RETRIES="1000", MEDIASEARCH_DECODER_PLUGINS="tests.poison") as running:
        yield running
    write_fault_table()


def library(stack) -> dict[str, int]:
    conn = catalog.connect(stack.settings.catalog_path)
    try:
        def count(sql: str) -> int:
            return conn.execute(sql).fetchone()[0]

        return {
            "media": count("SELECT COUNT(*) FROM media"),
            "indexed media": count("SELECT COUNT(*) FROM media WHERE status = 'indexed'"),
            "frames": count("SELECT COUNT(*) FROM frames"),
            "frames without a vector": count("SELECT COUNT(*) FROM frames WHERE vector_row IS NULL"),
            "vectors": VectorStore(stack.settings.vectors_dir).committed(),
            "unfinished items": count("SELECT COUNT(*) FROM job_items WHERE status IN ('queued', 'running')"),
        }
    finally:
        conn.close()


def index_health(stack) -> dict:
    return httpx.get(f"{stack.settings.index_urls[0]}/health", headers=stack.internal_headers, timeout=10).json()


def assert_everything_searchable(stack) -> None:
    """Every frame with a vector comes back from a search as wide as the library, once the index is caught up."""
    committed = VectorStore(stack.settings.vectors_dir).committed()
    wait_for(lambda: index_health(stack)["indexed_through"] == committed, 120, message="the index to catch up")
    conn = catalog.connect(stack.settings.catalog_path)
    frames = {row[0] for row in conn.execute("SELECT id FROM frames WHERE vector_row IS NOT NULL")}
    conn.close()
    reply = stack.client.get("/search", params={"q": "a photo", "k": len(frames)})
    assert reply.status_code == 200, reply.text
    assert {result["frame_id"] for result in reply.json()["results"]} == frames


class SearchLoad:
    """Clients searching in a thread for the whole scenario; records each outcome (a status or an error)."""

    def __init__(self, stack):
        self.stack = stack
        self.outcomes: Counter[str] = Counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.stack.url, timeout=30, headers=self.stack.client.headers) as client:
            while not self.stop.is_set():
                try:
                    outcome = str(client.get("/search", params={"q": "a dog", "k": 5}).status_code)
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                self.outcomes[outcome] += 1
                self.stop.wait(0.05)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.stop.set()
        self.thread.join(timeout=60)


def upload_photos(stack, scenario: int) -> tuple[str, int]:
    photos = ALL_PHOTOS[scenario * FILES_PER_SCENARIO:(scenario + 1) * FILES_PER_SCENARIO]
    return stack.upload([(f"fault-{scenario}/{p.name}", p.read_bytes()) for p in photos]), len(photos)


def processed(stack, job_id: str) -> int:
    conn = catalog.connect(stack.settings.catalog_path)
    try:
        return catalog.job_status(conn, job_id)["processed"]
    finally:
        conn.close()


def under_way(stack, job_id: str) -> bool:
    return processed(stack, job_id) >= 2


def run_scenario(stack, scenario: int, fault: str, inject: Callable[[str], None] | None,
                 ready: Callable[[object, str], bool] = under_way) -> None:
    """Upload photos, inject the fault once ``ready`` (by default: once some files are done), with
    searches running all along; then check that every file was indexed exactly once and everything is
    searchable, with no repair by hand."""
    before = library(stack)
    with SearchLoad(stack) as load:
        job_id, files = upload_photos(stack, scenario)
        wait_for(lambda: ready(stack, job_id), 120, message="the moment to inject the fault")
        mid_job = "n/a"
        if inject is not None:
            mid_job = "yes" if processed(stack, job_id) < files else "no"
            inject(job_id)
        job = stack.wait_job(job_id, timeout=240)
        after_recovery = load.outcomes.copy()
        assert_everything_searchable(stack)
    after = library(stack)
    assert (job["status"], job["total"], job["indexed"], job["duplicates"], job["failed"]) == \
        ("done", files, files, 0, 0), job
    expected = {**before, "media": before["media"] + files, "indexed media": before["indexed media"] + files,
                "frames": before["frames"] + files, "vectors": before["vectors"] + files}
    assert after == expected, f"{fault}: before {before}, after {after}"
    assert index_health(stack)["nodes"] == after["vectors"]
    assert not {outcome for outcome in load.outcomes if outcome.startswith("5") and outcome != "503"}, load.outcomes
    FAULT_TABLE.append({"fault": fault, "mid-job": mid_job, "files": files, "indexed": job["indexed"],
                        "lost": files - job["indexed"], "extra vectors": after["vectors"] - before["vectors"] - files,
                        "searches": dict(after_recovery)})


def write_fault_table() -> None:
    if not FAULT_TABLE:
        return
    lines = ["| fault | injected mid-job | files accepted | indexed | lost | extra vectors | searches during the scenario "
             "| notes |", "|---|---|---|---|---|---|---|---|"]
    for row in FAULT_TABLE:
        searches = ", ".join(f"{outcome}: {count}" for outcome, count in sorted(row["searches"].items()))
        lines.append(f"| {row['fault']} | {row['mid-job']} | {row['files']} | {row['indexed']} | "
                     f"{row['lost']} | {row['extra vectors']} | {searches} | {row.get('notes', '')} |")
    TEST_OUTPUT.mkdir(exist_ok=True)
    (TEST_OUTPUT / "faults.md").write_text("\n".join(lines) + "\n")


# -- each service killed during ingest and search --------------------------------------------------------------
def search_says_unavailable(reason: str) -> Callable[[object], None]:
    def check(stack) -> None:
        reply = stack.client.get("/search", params={"q": "a dog"})
        assert reply.status_code == 503 and reason in reply.json()["detail"]

    return check


def gateway_does_not_answer(stack) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{stack.url}/health", timeout=5)


@pytest.mark.parametrize("scenario, service, fault, while_down", [
    # Its tasks stay unacknowledged in Redis and are redelivered, and done once.
    pytest.param(0, "worker-0", "worker SIGKILL", None, id="worker"),
    # Files wait (retrying) while it is down, then finish.
    pytest.param(1, "embedder", "embedder SIGKILL", search_says_unavailable("embedder is unavailable"), id="embedder"),
    # It recovers every committed row from its files and the vectors store.
    pytest.param(2, "index-0", "index SIGKILL", search_says_unavailable("no index shard answered"), id="index"),
    # It loses no file it accepted.
    pytest.param(3, "gateway", "gateway SIGKILL", gateway_does_not_answer, id="gateway"),
])
def test_a_service_killed_mid_job_loses_no_accepted_file(stack, scenario, service, fault, while_down):
    def kill_and_restart(job_id: str) -> None:
        stack.stack.kill(service)  # SIGKILL
        if while_down is not None:
            while_down(stack)  # what a client sees meanwhile
        stack.stack.restart(service)  # the worker has no health check: it is started again, not waited for

    run_scenario(stack, scenario, fault, kill_and_restart)


def test_queued_tasks_survive_a_redis_restart_and_everyone_reconnects(stack):
    redis_url = stack.settings.effective_redis_url

    def queued(job_id: str) -> int:
        try:
            return redis.Redis.from_url(redis_url).llen("celery")
        except redis.ConnectionError:
            return -1

    stack.stack.kill("worker-0", signal.SIGTERM)  # no worker: the whole job waits in Redis

    def restart_redis_then_the_worker(job_id: str) -> None:
        stack.stack.restart("redis")  # SIGTERM: Redis writes its append-only file and stops
        wait_for(lambda: queued(job_id) >= FILES_PER_SCENARIO, 60, message="redis to come back with the tasks")
        stack.stack.start_service(stack.stack.service("worker-0"))

    run_scenario(stack, 4, "Redis restart", restart_redis_then_the_worker,
                 ready=lambda stack, job_id: queued(job_id) >= FILES_PER_SCENARIO)
    run_scenario(stack, 5, "none: the next upload after the Redis restart", None)  # gateway and worker reconnected


# -- files in flight when their worker dies; a file that kills its decoder -----------------------------------------
def items_of(stack, job_id: str) -> list[dict]:
    conn = catalog.connect(stack.settings.catalog_path)
    try:
        return [dict(row) for row in conn.execute("SELECT * FROM job_items WHERE job_id=? ORDER BY id", (job_id,))]
    finally:
        conn.close()


def test_files_in_flight_when_the_worker_is_killed_are_done_within_60_s_of_its_restart(stack):
    """The visibility timeout is the default 10 minutes: only the restart's re-queueing can meet the deadline."""
    photos = ALL_PHOTOS[7 * FILES_PER_SCENARIO:7 * FILES_PER_SCENARIO + 8]
    videos = [VIDEOS / "car-detection.mp4", VIDEOS / "one-by-one-person-detection.mp4"]  # seconds each
    files = [(f"in-flight/{p.name}", p.read_bytes()) for p in [*videos, *photos]]
    before = library(stack)
    job_id = stack.upload(files)

    def running() -> list[int]:
        return [item["id"] for item in items_of(stack, job_id) if item["status"] == "running"]

    wait_for(running, 120, message="files in the worker's hands")
    stack.stack.kill("worker-0")  # SIGKILL, mid-file
    in_flight = running()
    assert in_flight, "the worker was killed between files; the videos take seconds, so this should not happen"
    restarted = time.monotonic()
    stack.stack.start_service(stack.stack.service("worker-0"))
    job = stack.wait_job(job_id, timeout=RECOVERY_DEADLINE_S)
    recovery_s = time.monotonic() - restarted
    assert (job["status"], job["total"], job["indexed"], job["failed"]) == ("done", len(files), len(files), 0), job
    attempts = {item["id"]: item["attempts"] for item in items_of(stack, job_id)}
    assert all(attempts[item_id] == 2 for item_id in in_flight), attempts  # the killed attempt counted
    after = library(stack)
    assert (after["media"] - before["media"], after["unfinished items"]) == (len(files), 0)
    # One vector per frame and one pooled vector per video: nothing was embedded twice.
    extra_vectors = after["vectors"] - before["vectors"] - (after["frames"] - before["frames"]) - len(videos)
    assert extra_vectors == 0
    assert_everything_searchable(stack)
    FAULT_TABLE.append({"fault": "ingest worker SIGKILL, default visibility timeout (10 min)", "mid-job": "yes",
                        "files": len(files), "indexed": job["indexed"], "lost": len(files) - job["indexed"],
                        "extra vectors": extra_vectors, "searches": {},
                        "notes": f"{len(in_flight)} files in flight; job done {recovery_s:.1f} s after the restart"})


def test_a_poison_file_fails_alone_after_three_attempts_and_the_worker_lives_on(stack):
    worker = stack.stack.service("worker-0").process
    photos = ALL_PHOTOS[8 * FILES_PER_SCENARIO:8 * FILES_PER_SCENARIO + 6]
    files = [(f"poison/{p.name}", p.read_bytes()) for p in photos] + [("poison/crasher.jpg", poison_file())]
    job_id = stack.upload(files)
    job = stack.wait_job(job_id, timeout=120)
    assert (job["status"], job["total"], job["indexed"], job["failed"]) == ("done", 7, 6, 1), job
    assert job["errors"] == [{"file": "poison/crasher.jpg", "reason": (
        "gave up: processing crashed or timed out 3 times "
        "(last: the decoder was killed (SIGKILL: out of memory, or killed from outside))")}]
    (poisoned,) = [item for item in items_of(stack, job_id) if item["status"] == "failed"]
    assert poisoned["attempts"] == 3
    assert worker.poll() is None and stack.stack.service("worker-0").process is worker  # never died
    assert not (stack.settings.uploads_dir / job_id).exists()  # the poison's upload was removed
    FAULT_TABLE.append({"fault": "poison file (its decoder is SIGKILLed on every attempt)", "mid-job": "yes",
                        "files": 7, "indexed": job["indexed"], "lost": 0, "extra vectors": 0, "searches": {},
                        "notes": "the poison failed after 3 attempts with its reason; the other 6 indexed; "
                                 "the worker lived on"})


def test_an_item_whose_task_was_lost_on_the_way_is_sent_again(stack):
    """What a worker killed with a message popped from Redis but not yet read leaves (kombu takes messages
    with BRPOP: that one is in neither the queue nor the unacknowledged set): an item queued, held by
    no worker, with no task anywhere. Made here by recording a job and sending nothing."""
    photo = ALL_PHOTOS[9 * FILES_PER_SCENARIO]
    conn = catalog.connect(stack.settings.catalog_path)
    _, (item_id,) = catalog.create_job(conn, "folder", str(photo.parent), [(photo.name, str(photo))])
    conn.execute("UPDATE job_items SET updated_at = updated_at - 60 WHERE id=?", (item_id,))  # queued a while ago
    reaper_round = stack.settings.reaper_interval_s
    wait_for(lambda: catalog.get_item(conn, item_id)["status"] == "indexed", 2 * reaper_round + 30,
             message="the reaper to send the lost task again")
    conn.close()


# -- repairs at start: committed vectors the catalog did not record, and rows of deleted media -------------------
def test_a_worker_start_adopts_vectors_committed_before_a_crash(stack):
    """The state a worker killed between the embedder's commit and its own catalog write leaves behind."""
    photo = ALL_PHOTOS[200]
    assert stack.wait_job(stack.upload([(f"crash/{photo.name}", photo.read_bytes())]))["indexed"] == 1
    conn = catalog.connect(stack.settings.catalog_path)
    stored = conn.execute("SELECT path, thumb_path, width, height FROM frames ORDER BY id DESC LIMIT 1").fetchone()
    with catalog.transaction(conn):
        media_id = catalog.insert_media(conn, sha256="0" * 64, kind="image", mime="image/jpeg", path="media/x.jpg",
                                        name="crashed.jpg", size=1, status="pending")
        frame_id = catalog.insert_frame(conn, media_id, stored["path"], stored["thumb_path"], stored["width"],
                                        stored["height"])
    embedder = EmbedderClient(stack.settings.embedder_url)
    [row] = embedder.embed_frames([(frame_id, stored["path"])])
    embedder.close()
    before = library(stack)
    assert before["frames without a vector"] == 1

    stack.stack.kill("worker-0")
    stack.stack.start_service(stack.stack.service("worker-0"))
    wait_for(lambda: catalog.get_frame(conn, frame_id)["vector_row"] == row, 120, message="the row to be adopted")
    assert library(stack) == {**before, "frames without a vector": 0}  # nothing embedded again
    conn.close()


class AnswerLost(httpx.HTTPTransport):
    """The embedder commits the rows, then its answer never arrives (the connection or the worker died)."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = super().handle_request(request)
        if request.url.path != "/embed/images":
            return answer
        answer.read()  # the embedder has committed and answered...
        answer.close()
        raise httpx.ReadError("connection lost after the embedder committed", request=request)  # ...in vain


def lossy_embedder(url: str) -> EmbedderClient:
    client = EmbedderClient(url)
    client.http.close()
    client.http = httpx.Client(transport=AnswerLost(), timeout=120)
    return client


def test_a_resumed_item_uses_the_vectors_committed_by_the_attempt_that_crashed(stack):
    conn = catalog.connect(stack.settings.catalog_path)
    photo = ALL_PHOTOS[201]
    _, (item_id,) = catalog.create_job(conn, "folder", "resumed", [(photo.name, str(photo))])
    store, vectors_dir = MediaStore(stack.settings.data_path), stack.settings.vectors_dir
    lossy = IngestContext(stack.settings, conn, store, lossy_embedder(stack.settings.embedder_url), httpx.Client())
    with pytest.raises(TransientFault, match="embedder unreachable"):
        ingest_item(item_id, lossy)
    committed = VectorStore(vectors_dir).committed()
    media_id = catalog.get_item(conn, item_id)["media_id"]
    [frame] = catalog.frames_of_media(conn, media_id)
    assert frame["vector_row"] is None  # the crash: a committed row the catalog does not know

    context = IngestContext(stack.settings, conn, store, EmbedderClient(stack.settings.embedder_url), httpx.Client())
    assert ingest_item(item_id, context).status == "indexed"  # the redelivered task
    assert catalog.get_frame(conn, frame["id"])["vector_row"] == committed - 1
    assert VectorStore(vectors_dir).committed() == committed  # adopted, not embedded again
    context.close()


def test_a_worker_start_tombstones_the_rows_of_media_deleted_while_the_index_was_down(stack):
    victim = stack.client.get("/search", params={"q": "a photo", "k": 1}).json()["results"][0]
    row = catalog.get_frame(catalog.connect(stack.settings.catalog_path), victim["frame_id"])["vector_row"]
    vectors, _ = VectorStore(stack.settings.vectors_dir).view()
    index = IndexClient(stack.settings.index_urls[0])

    stack.stack.kill("index-0")
    deleted = stack.client.delete(f"/media/{victim['media_id']}").json()
    assert deleted["partial"] is True  # the index could not be told
    stack.stack.restart("index-0")
    nodes = index_health(stack)["nodes"]

    stack.stack.kill("worker-0")
    stack.stack.start_service(stack.stack.service("worker-0"))
    wait_for(lambda: row not in index.search(vectors[row], k=10).rows, 120, message="the row to be tombstoned")
    assert index_health(stack)["nodes"] <= nodes - 1
    index.close()
