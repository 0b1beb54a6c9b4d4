"""The product's health as the gateway sees it.

The gateway itself answers 200 whenever it runs; a dependency that is down makes the status
"degraded" and is named in ``services``. Container healthchecks therefore restart the gateway only
for its own faults, and the UI can show which part is missing. ``disk`` warns while the data volume's
free space is below twice MEDIASEARCH_DISK_RESERVE_BYTES; below the reserve itself uploads are refused
and the status is "degraded".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import anyio
import redis

from services.gateway.state import Gateway
from shared import catalog
from shared.clients import UpstreamError
from shared.durable import DISK_FULL, disk_usage
from shared.schemas import DiskSpace, EmbedderHealth, Health, IndexHealth, ServiceState
from shared.settings import Settings

T = TypeVar("T")
PROBE_SECONDS = 3.0  # also the gateway's Redis client timeouts (state.py)
LOW_DISK_RESERVES = 2  # free space below this many reserves is "low"


def ping_redis(client: redis.Redis, url: str) -> ServiceState:
    try:
        client.ping()
        return ServiceState(name="redis", url=_without_password(url), ok=True)
    except redis.RedisError as exc:
        return ServiceState(name="redis", url=_without_password(url), ok=False, detail=str(exc))


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rsplit('@', 1)[-1]}"


def _state(name: str, url: str, answer: object) -> ServiceState:
    if isinstance(answer, UpstreamError):
        return ServiceState(name=name, url=url, ok=False, detail=answer.detail)
    return ServiceState(name=name, url=url, ok=True, detail=getattr(answer, "detail", ""))


async def answer_or_error(call: Awaitable[T]) -> T | UpstreamError:
    """A service's answer, or the UpstreamError it failed with (as the shards' FanOut holds them)."""
    try:
        return await call
    except UpstreamError as exc:
        return exc


def disk_space(settings: Settings) -> DiskSpace | None:
    """The data volume's free space against the reserve, with a warning while it runs low."""
    try:
        usage = disk_usage(settings.data_path)
    except OSError:
        return None
    reserve = settings.disk_reserve_bytes
    full = usage.free < max(reserve, 1)
    low = usage.free < LOW_DISK_RESERVES * reserve or full
    warning = None
    if full:
        warning = (f"{DISK_FULL}: {usage.free} bytes free, under the reserve of {reserve} "
                   "(MEDIASEARCH_DISK_RESERVE_BYTES): uploads are refused until space is freed")
    elif low:
        warning = (f"the data volume is nearly full: {usage.free} bytes free; uploads are refused once "
                   f"less than {reserve} would be left (MEDIASEARCH_DISK_RESERVE_BYTES)")
    return DiskSpace(free_bytes=usage.free, total_bytes=usage.total, reserve_bytes=reserve, low=low, full=full,
                     warning=warning)


async def gather_health(gateway: Gateway) -> Health:
    settings = gateway.settings
    embedder, shards, redis_state, counts, disk = await asyncio.gather(
        answer_or_error(gateway.embedder.health(timeout=PROBE_SECONDS)),
        gateway.shards.health(timeout=PROBE_SECONDS),
        anyio.to_thread.run_sync(ping_redis, gateway.redis, settings.effective_redis_url),
        anyio.to_thread.run_sync(lambda: catalog.counts(gateway.catalog())),
        anyio.to_thread.run_sync(disk_space, settings))
    states = [_state("embedder", settings.embedder_url, embedder)]
    states += [_state(f"index-{n}", url, answer) for n, (url, answer) in enumerate(zip(shards.urls, shards.results))]
    states.append(redis_state)
    model: EmbedderHealth | None = None if isinstance(embedder, UpstreamError) else embedder
    answered: list[IndexHealth] = shards.answers
    ready = (model is not None and model.ready and not shards.partial and all(shard.ready for shard in answered))
    return Health(
        status="ok" if ready and not (disk and disk.full) and all(state.ok for state in states) else "degraded",
        media=counts["media"], frames=counts["frames"], index_nodes=sum(shard.nodes for shard in answered),
        dim=model.dim if model else None, model_id=model.model_id if model else None,
        real_weights=model.real_weights if model else None, model_family=model.family if model else None,
        text_match=model.text_match if model else None, services=states, disk=disk)
