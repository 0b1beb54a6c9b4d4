"""The work the gateway hands to the ingest workers: Celery tasks over Redis."""

from __future__ import annotations

import logging

from shared.errors import Unavailable
from shared.queue import INGEST_ITEM_TASK, RECLUSTER_TASK, make_celery
from shared.settings import Settings

log = logging.getLogger("mediasearch.gateway")


class TaskQueue:
    def __init__(self, settings: Settings):
        self.celery = make_celery(settings)

    def ingest(self, item_ids: list[int]) -> None:
        """One task per job item. Unavailable when the broker is down (its error is the ``__cause__``)."""
        try:
            with self.celery.producer_or_acquire() as producer:
                for item_id in item_ids:
                    self.celery.send_task(INGEST_ITEM_TASK, args=[item_id], producer=producer)
        except Exception as exc:
            raise Unavailable(f"the task queue (Redis) is unavailable: {exc}") from exc

    def recluster(self) -> bool:
        """Ask for a re-clustering; False when the broker is down (the albums stay as they are)."""
        try:
            self.celery.send_task(RECLUSTER_TASK)
        except Exception as exc:  # noqa: BLE001
            log.warning("could not queue re-clustering: %s", exc)
            return False
        return True
