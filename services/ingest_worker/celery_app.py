"""The Celery shell of the ingest worker: one task per job item, over the plain ``pipeline.ingest_item``.

    celery -A services.ingest_worker.celery_app worker --pool threads --concurrency 2
"""

from __future__ import annotations

import logging
import threading

from celery.signals import celeryd_after_setup

from services.ingest_worker.pipeline import (
    IngestContext,
    TransientFault,
    give_up,
    ingest_item,
    retry_delay,
    wait_for_retry,
)
from shared.organise.upkeep import organise_library
from shared.queue import INGEST_ITEM_TASK, RECLUSTER_TASK, make_celery
from shared.reconcile import reconcile
from shared.settings import Settings

log = logging.getLogger("mediasearch.ingest")
settings = Settings()
app = make_celery(settings)
_per_thread = threading.local()


@celeryd_after_setup.connect
def reconcile_at_start(**_) -> None:
    """Before taking tasks, repair what a crash left between the vectors store and the catalog."""
    try:
        reconcile(settings)
    except Exception:  # a failed repair must not keep the worker from working
        log.exception("start-up reconciliation failed; starting anyway")


def _context() -> IngestContext:
    """This thread's context (worker pools may run tasks on several threads; a SQLite connection is per thread)."""
    context = getattr(_per_thread, "context", None)
    if context is None:
        context = _per_thread.context = IngestContext.open(settings)
    return context


@app.task(name=INGEST_ITEM_TASK, bind=True, max_retries=settings.ingest_max_retries)
def ingest_item_task(self, item_id: int) -> str | None:
    context = _context()
    try:
        outcome = ingest_item(item_id, context)
    except TransientFault as fault:
        if self.request.retries >= self.max_retries:
            give_up(item_id, context, f"gave up after {self.request.retries} retries: {fault}")
            return "failed"
        wait_for_retry(item_id, context, str(fault))
        raise self.retry(countdown=retry_delay(self.request.retries, settings), exc=fault) from None
    return outcome.status if outcome else None


@app.task(name=RECLUSTER_TASK)
def recluster_task() -> dict:
    """Re-cluster the library and label its albums (queued by the gateway; see shared/organise/upkeep.py)."""
    return vars(organise_library(settings))
