"""The product's metrics in one scrape: the gateway's ``GET /metrics`` (behind the API key).

It serves the gateway's own registry (request latencies of every route, and what ``LibraryCollector``
reads at scrape time: the Celery queue's depth, job items by status, media and frames, the data volume's
free space) with the embedder's and every index shard's metrics, fetched through the internal clients.
Every series is labelled with its ``service`` ("gateway", "embedder", "index"; a shard's also with
``shard``, its position in MEDIASEARCH_INDEX_URLS), and ``mediasearch_up{service, shard}`` says which
services answered this scrape (a service that did not is missing, nothing else fails).
"""

from __future__ import annotations

import asyncio
import logging

import anyio
import redis
from prometheus_client import CollectorRegistry, Metric
from prometheus_client.core import GaugeMetricFamily

from services.gateway.health import PROBE_SECONDS, answer_or_error
from services.gateway.state import Gateway
from shared import catalog, metrics
from shared.clients import UpstreamError
from shared.durable import disk_usage

log = logging.getLogger("mediasearch.gateway")
UP_HELP = "1 when the service answered this scrape, else 0"


class LibraryCollector:
    """What the gateway's registry reads from the queue, the catalog and the disk when scraped."""

    def __init__(self, gateway: Gateway):
        self.gateway = gateway

    def collect(self):
        gateway = self.gateway
        queue = gateway.queue.celery.conf.task_default_queue  # "celery": a Redis list of waiting tasks
        up = GaugeMetricFamily("mediasearch_up", UP_HELP, labels=["service", "shard"])
        try:
            depth = gateway.redis.llen(queue)
        except redis.RedisError as exc:
            log.debug("queue depth unknown: %s", exc)
            up.add_metric(["redis", ""], 0)
        else:
            up.add_metric(["redis", ""], 1)
            waiting = GaugeMetricFamily("mediasearch_queue_depth", "Tasks waiting in the ingest queue (Redis)",
                                        labels=["queue"])
            waiting.add_metric([queue], depth)
            yield waiting
        yield up

        conn = gateway.catalog()
        by_status = catalog.item_counts(conn)
        items = GaugeMetricFamily("mediasearch_job_items", "Job items (files to ingest) by status",
                                  labels=["status"])
        for status in catalog.ItemStatus:
            items.add_metric([status.value], by_status.get(status.value, 0))
        yield items
        library = catalog.counts(conn)
        yield GaugeMetricFamily("mediasearch_media", "Photos and videos in the library", value=library["media"])
        yield GaugeMetricFamily("mediasearch_frames", "Embedded frames (a photo has one, a video several)",
                                value=library["frames"])

        settings = gateway.settings
        try:
            usage = disk_usage(settings.data_path)
        except OSError as exc:
            log.debug("data volume unmeasurable: %s", exc)
            return
        yield GaugeMetricFamily("mediasearch_disk_free_bytes", "Free bytes on the data volume", value=usage.free)
        yield GaugeMetricFamily("mediasearch_disk_total_bytes", "Size of the data volume", value=usage.total)
        yield GaugeMetricFamily("mediasearch_disk_reserve_bytes", "Uploads that would leave less free are refused",
                                value=settings.disk_reserve_bytes)


def gateway_registry(gateway: Gateway) -> CollectorRegistry:
    """A new registry for one gateway app, with its LibraryCollector (the request middleware adds to it)."""
    registry = metrics.new_registry()
    registry.register(LibraryCollector(gateway))
    return registry


def _remote(text: str | UpstreamError, labels: dict[str, str], up: GaugeMetricFamily) -> list[Metric]:
    """One service's families, labelled; ``up`` says whether it answered (with Prometheus text)."""
    families: list[Metric] = []
    if isinstance(text, UpstreamError):
        log.debug("metrics of %s missing: %s", labels, text)
    else:
        try:
            families = metrics.labelled(metrics.parse(text), labels)
        except ValueError as exc:
            log.warning("metrics of %s unreadable: %s", labels, exc)
    up.add_metric([labels["service"], labels.get("shard", "")], 1 if families else 0)
    return families


async def scrape(gateway: Gateway, registry: CollectorRegistry) -> bytes:
    """Prometheus text of the gateway's registry and of every service it reaches."""
    embedder, shards, local = await asyncio.gather(
        answer_or_error(gateway.embedder.metrics(timeout=PROBE_SECONDS)), gateway.shards.metrics(timeout=PROBE_SECONDS),
        anyio.to_thread.run_sync(lambda: list(registry.collect())))
    up = GaugeMetricFamily("mediasearch_up", UP_HELP, labels=["service", "shard"])
    up.add_metric(["gateway", ""], 1)
    families = metrics.labelled(local, {"service": "gateway"})
    families += _remote(embedder, {"service": "embedder"}, up)
    for number, text in enumerate(shards.results):
        families += _remote(text, {"service": "index", "shard": str(number)}, up)
    return metrics.render([*families, up])
