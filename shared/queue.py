"""The Celery contract between the gateway (which enqueues) and the ingest workers (which run)."""

from __future__ import annotations

from celery import Celery

from shared.settings import Settings

INGEST_ITEM_TASK = "mediasearch.ingest_item"
RECLUSTER_TASK = "mediasearch.recluster"  # no arguments: re-cluster and relabel the library
SCAN_LIBRARY_TASK = "mediasearch.scan_library"  # a library id: scan that folder, queue what changed (shared/libraries)


def make_celery(settings: Settings) -> Celery:
    app = Celery("mediasearch", broker=settings.effective_redis_url)
    app.conf.update(
        task_acks_late=True,  # a worker killed mid-file leaves the message for another worker
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        # Redelivery of an unacked message after a worker dies: the backstop. The ingest workers' reaper
        # (services/ingest_worker/liveness.py) sends the tasks of a dead worker's items again within
        # seconds of a restart; a redelivery that comes later finds them claimed or done (claim_item).
        # Kombu looks for such messages every unacked_restore_interval seconds (times the throttle, 10
        # by default: up to 100 s late).
        broker_transport_options={
            "visibility_timeout": settings.task_visibility_timeout,
            "unacked_restore_interval": max(1, min(10, round(settings.task_visibility_timeout / 5))),
            "unacked_restore_throttle": 1,
        },
    )
    return app
