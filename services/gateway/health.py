"""The product's health as the gateway sees it.

The gateway itself answers 200 whenever it runs; a dependency that is down makes the status
"degraded" and is named in ``services``. Container healthchecks therefore restart the gateway only
for its own faults, and the UI can show which part is missing.
"""

from __future__ import annotations

import asyncio

import anyio
import redis

from services.gateway.state import Gateway
from shared import catalog
from shared.clients import UpstreamError
from shared.schemas import EmbedderHealth, Health, IndexHealth, ServiceState

PROBE_SECONDS = 3.0  # also the gateway's Redis client timeouts (state.py)


def ping_redis(client: redis.Redis, url: str) -> ServiceState:
    try:
        client.ping()
        return ServiceState(name="redis", url=_without_password(url), ok=True)
    except redis.RedisError as exc:
        return ServiceState(name="redis", url=_without_password(url), ok=False, detail=str(exc))


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rsplit('@', 1)[-1]}"


async def _probe(name: str, url: str, probe) -> tuple[ServiceState, object | None]:
    try:
        answer = await probe(timeout=PROBE_SECONDS)
    except UpstreamError as exc:
        return ServiceState(name=name, url=url, ok=False, detail=exc.detail), None
    return ServiceState(name=name, url=url, ok=True, detail=getattr(answer, "detail", "")), answer


async def gather_health(gateway: Gateway) -> Health:
    settings = gateway.settings
    probes = [_probe("embedder", settings.embedder_url, gateway.embedder.health)]
    probes += [_probe(f"index-{n}", shard.base_url, shard.health) for n, shard in enumerate(gateway.shards)]
    answers, redis_state, counts = await asyncio.gather(
        asyncio.gather(*probes),
        anyio.to_thread.run_sync(ping_redis, gateway.redis, settings.effective_redis_url),
        anyio.to_thread.run_sync(lambda: catalog.counts(gateway.catalog())))
    embedder: EmbedderHealth | None = answers[0][1]
    shards: list[IndexHealth | None] = [answer for _, answer in answers[1:]]
    states = [state for state, _ in answers] + [redis_state]
    ready = embedder is not None and embedder.ready and all(s is not None and s.ready for s in shards)
    return Health(
        status="ok" if ready and all(state.ok for state in states) else "degraded",
        media=counts["media"], frames=counts["frames"],
        index_nodes=sum(shard.nodes for shard in shards if shard is not None),
        dim=embedder.dim if embedder else None, model_id=embedder.model_id if embedder else None,
        real_weights=embedder.real_weights if embedder else None, services=states)
