"""The Celery shell of the ingest worker: one task per job item, over the plain ``pipeline.ingest_item``, and
the scans of libraries (``shared/libraries/scan.py``), which queue the items of the files they find.

    celery -A services.ingest_worker.celery_app worker --pool threads --concurrency 64

Threads run the tasks (the files in hand wait mostly on the embedder); each file's decoding runs in a
decoder process (isolation.py's pool, one file at a time each), so a crash or an OOM kill costs that file's attempt, not the
worker. Each file sends its own frames (so a bad one fails alone) and the embedder batches the frames of
the files waiting at once into one forward pass: worker_concurrency files in flight (twice the embedder's
batch by default) keep its batches full. The threads share the process's HTTP clients, and worker_decode_slots (one per core by default) bound
how many of the files in flight decode at once (WorkerResources). At start the worker repairs the vectors store (reconcile), starts its heartbeat and its reaper
(liveness.py), and re-queues what an earlier process of its nodename held when it died. Unless OCR is off,
a thread of its own reads the text in indexed media (ocr.py).
"""

from __future__ import annotations

import logging
import threading

import redis
from celery.signals import celeryd_after_setup, setup_logging, task_received, worker_shutdown

from services.ingest_worker import isolation
from services.ingest_worker.liveness import Heartbeat, Reaper
from services.ingest_worker.ocr import TextReader
from services.ingest_worker.pipeline import (
    AttemptDied,
    DiskFull,
    IngestContext,
    TransientFault,
    WorkerResources,
    give_up,
    ingest_item,
    retry_delay,
    wait_for_retry,
)
from shared import catalog, logs
from shared.libraries.forget import forget_everywhere
from shared.libraries.requests import run_exclusively
from shared.libraries.scan import ScanServices, scan_library
from shared.organise.upkeep import organise_library
from shared.queue import INGEST_ITEM_TASK, RECLUSTER_TASK, SCAN_LIBRARY_TASK, make_celery
from shared.reconcile import reconcile
from shared.settings import Settings

log = logging.getLogger("mediasearch.ingest")
settings = Settings()
app = make_celery(settings)
_per_thread = threading.local()
_liveness: dict[str, Heartbeat | Reaper | TextReader] = {}  # this worker process's, once it is set up
_shared: dict[str, WorkerResources] = {}
_shared_lock = threading.Lock()


@setup_logging.connect
def configure_logging(**_) -> None:
    """With a receiver here Celery leaves logging alone: the worker logs like every other service."""
    logs.configure_logging("ingest_worker", settings)


@celeryd_after_setup.connect
def start_worker(sender: str, **_) -> None:
    """Before taking tasks: repair what a crash left between the vectors store and the catalog, start the
    heartbeat and the reaper (which re-queues what this nodename's earlier process held), and the fork
    server that decoding children come from. ``sender`` is the worker's nodename."""
    try:
        reconcile(settings)
    except Exception:  # a failed repair must not keep the worker from working
        log.exception("start-up reconciliation failed; starting anyway")
    client = redis.Redis.from_url(settings.effective_redis_url, socket_timeout=5, socket_connect_timeout=5)
    heartbeat = Heartbeat(client, sender, settings)
    heartbeat.start()
    reaper = Reaper(heartbeat, settings, lambda item_id: app.send_task(INGEST_ITEM_TASK, args=[item_id]),
                    app.conf.broker_transport_options, app.conf.task_default_queue)
    _liveness.update(heartbeat=heartbeat, reaper=reaper)
    reaper.start()
    isolation.start()
    if settings.ocr:  # the words in indexed media, read in the background (ocr.py)
        _liveness["text_reader"] = TextReader(settings, heartbeat.worker_id, heartbeat.alive)
        _liveness["text_reader"].start()
    log.info("ingest worker %s: heartbeat every %.0f s; reaper every %.0f s; text in pictures %s",
             heartbeat.worker_id, heartbeat.interval, reaper.interval, "read" if settings.ocr else "not read (OCR off)")


@worker_shutdown.connect
def stop_worker(**_) -> None:
    """A clean stop (its tasks finished or given back to the broker): the heartbeat goes at once."""
    if "text_reader" in _liveness:
        _liveness["text_reader"].stop(timeout=30)  # the item it reads is given back unless recorded by then
    if "reaper" in _liveness:
        _liveness["reaper"].stop()
        _liveness["heartbeat"].stop()


@task_received.connect
def hold_received_item(request=None, **_) -> None:
    """A task taken from the broker may wait here before it starts (for a free thread, or a retry for its
    countdown): record that this worker holds its item, so that the reaper sends it again if this worker
    dies meanwhile (else it would wait out the broker's visibility timeout)."""
    heartbeat = _liveness.get("heartbeat")
    if heartbeat is None or request is None or request.task_name != INGEST_ITEM_TASK:
        return
    try:
        catalog.hold_item(_context().conn, int(request.args[0]), heartbeat.worker_id)
    except Exception:  # noqa: BLE001 (without the record, the visibility timeout still brings it back)
        log.exception("could not record that this worker holds item %s", request.args)


def _context() -> IngestContext:
    """This thread's context (worker pools may run tasks on several threads; a SQLite connection is per thread,
    the HTTP clients are the process's)."""
    context = getattr(_per_thread, "context", None)
    if context is None:
        heartbeat = _liveness.get("heartbeat")
        context = _per_thread.context = IngestContext.open(
            settings, worker_id=heartbeat.worker_id if heartbeat else None,
            alive=heartbeat.alive if heartbeat else None, shared=_shared_resources())
    return context


def _shared_resources() -> WorkerResources:
    """What every thread of this process shares (HTTP clients, decoding slots), made by the first that needs it."""
    with _shared_lock:
        if "resources" not in _shared:
            _shared["resources"] = WorkerResources.open(settings, threads=settings.worker_concurrency)
        return _shared["resources"]


@app.task(name=INGEST_ITEM_TASK, bind=True, max_retries=None)  # ingest_max_retries: counted below
def ingest_item_task(self, item_id: int, disk_waits: int = 0) -> str | None:
    """``disk_waits``: how many of this task's retries waited for room on a full disk (DiskFull). Those
    spend no retry: such an item waits, backing off up to ingest_retry_max_s, until there is room."""
    context = _context()
    try:
        outcome = ingest_item(item_id, context)
    except TransientFault as fault:
        retries = self.request.retries - disk_waits
        disk_full = isinstance(fault, DiskFull)
        if not disk_full and retries >= settings.ingest_max_retries:
            give_up(item_id, context, f"gave up after {retries} retries: {fault}")
            return "failed"
        wait_for_retry(item_id, context, str(fault), counted=isinstance(fault, AttemptDied))
        delay = retry_delay(disk_waits if disk_full else retries, settings)
        raise self.retry(args=(item_id,), kwargs={"disk_waits": disk_waits + disk_full},
                         countdown=delay, exc=fault) from None
    return outcome.status if outcome else None


@app.task(name=RECLUSTER_TASK)
def recluster_task() -> dict:
    """Re-cluster the library and label its albums (queued by the gateway; see shared/organise/upkeep.py)."""
    return vars(organise_library(settings))


@app.task(name=SCAN_LIBRARY_TASK)
def scan_library_task(library_id: int) -> str:
    """Scan one library (shared/libraries/scan.py; asked for by the gateway and the watcher) and queue an
    ingest task per file to ingest. One scan of a library at a time (a Redis lock): asked for while one runs,
    that one goes once more instead."""
    context = _context()
    services = ScanServices(context.conn, settings, context.store, _send_items,
                            lambda media_ids: forget_everywhere(context.conn, context.store, settings.index_urls,
                                                                media_ids))

    def scan(keep_alive) -> str:
        services.keep_alive = keep_alive
        report = scan_library(library_id, services)
        return report.status if report else "no such library"

    return run_exclusively(_redis(), library_id, scan) or "running elsewhere; it goes once more"


def _send_items(item_ids: list[int]) -> None:
    with app.producer_or_acquire() as producer:
        for item_id in item_ids:
            app.send_task(INGEST_ITEM_TASK, args=[item_id], producer=producer)


def _redis() -> redis.Redis:
    client = getattr(_per_thread, "redis", None)
    if client is None:
        client = _per_thread.redis = redis.Redis.from_url(settings.effective_redis_url, socket_timeout=10,
                                                          socket_connect_timeout=5)
    return client
