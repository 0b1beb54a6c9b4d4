"""Prometheus metrics of every service (prometheus-client), and the request middleware they all use.

Each app instance keeps its metrics in a registry of its own (``new_registry``; never the library's global
one, so several apps in one process do not clash) and serves it as Prometheus text at ``/metrics``. The
embedder and the index serve theirs behind the internal secret; the gateway's ``/metrics`` (API key) adds
theirs, fetched through the internal clients and labelled ``service`` (and ``shard``), to its own, so one
scrape target covers the product (services/gateway/metrics.py).

``instrument(app, registry)`` adds ``RequestObservability``, one pure ASGI middleware that, per request:

- takes the request id from ``X-Request-ID`` when it is sane (shared/logs.py), else makes one, binds it
  (and ``X-Job-ID``'s job id) for the request's log lines and internal calls, and returns it in the
  response's ``X-Request-ID``;
- observes ``mediasearch_http_request_duration_seconds{method, route, status}``, ``route`` being the
  matched route's template (``/media/{media_id}``, never the raw path: the label set stays bounded);
- logs one line (logger ``mediasearch.http``) with method, path, route, status and duration.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Histogram,
    Metric,
    disable_created_metrics,
)
from prometheus_client import generate_latest as _generate_latest
from prometheus_client.parser import text_string_to_metric_families

from shared import logs

# The text format's ``*_created`` series double every counter and histogram for no use here.
disable_created_metrics()

CONTENT_TYPE = CONTENT_TYPE_LATEST  # "text/plain; version=0.0.4; charset=utf-8"
REQUEST_SECONDS = "mediasearch_http_request_duration_seconds"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
UNMATCHED = "unmatched"  # the route label of a request no route took (404s, refusals ahead of routing)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
QUIET_ROUTES = frozenset({("GET", "/health"), ("GET", "/metrics")})  # polled: their lines are DEBUG

log = logging.getLogger("mediasearch.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def new_registry() -> CollectorRegistry:
    return CollectorRegistry()


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry as Prometheus text (serve it with ``CONTENT_TYPE``)."""
    return _generate_latest(registry)


# -- requests ----------------------------------------------------------------------------------------------
def request_latency(registry: CollectorRegistry) -> Histogram:
    return Histogram(REQUEST_SECONDS, "HTTP requests by method, route template and status, until the "
                     "response ended", ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=registry)


def route_template(scope: Scope, root_path: str = "") -> str:
    """The template of the route that took the request (``/media/{media_id}``; ``/docs/assets/{path}`` for a
    mounted app), or UNMATCHED; ``root_path``: the scope's before routing."""
    if template := getattr(scope.get("route"), "path_format", None):
        return template
    if scope.get("endpoint") is not None:  # a Mount took it: it extends root_path by its prefix
        return f"{scope.get('root_path', '')[len(root_path):]}/{{path}}"
    return UNMATCHED


def _header(scope: Scope, name: bytes) -> bytes | None:
    return next((value for key, value in scope.get("headers", ()) if key.lower() == name), None)


class RequestObservability:
    """Request id, latency histogram and one log line per HTTP request (see the module's docstring)."""

    def __init__(self, app: ASGIApp, latency: Histogram):
        self.app = app
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = logs.sane_id(_header(scope, logs.REQUEST_ID_HEADER.lower().encode())) or logs.new_request_id()
        job_id = logs.sane_id(_header(scope, logs.JOB_ID_HEADER.lower().encode()))
        status = 500  # unless a response starts
        header = (logs.REQUEST_ID_HEADER.lower().encode(), request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                if not any(name.lower() == header[0] for name, _ in headers):
                    message = {**message, "headers": [*headers, header]}
            await send(message)

        started = time.perf_counter()
        root_path = scope.get("root_path", "")
        failure: BaseException | None = None
        with logs.bind(request_id=request_id, job_id=job_id):
            try:
                await self.app(scope, receive, send_with_id)
            except BaseException as exc:
                failure = exc
                raise
            finally:
                self._record(scope, route_template(scope, root_path), status, time.perf_counter() - started,
                             failure)

    def _record(self, scope: Scope, route: str, status: int, seconds: float, failure: BaseException | None) -> None:
        method = scope["method"] if scope["method"] in METHODS else "other"
        self.latency.labels(method, route, str(status)).observe(seconds)
        if failure is not None:
            level = logging.WARNING
        elif (method, route) in QUIET_ROUTES and status != 401:  # a 503 from /health is its answer
            level = logging.DEBUG
        else:
            level = logging.WARNING if status >= 500 else logging.INFO
        if log.isEnabledFor(level):
            failed = f" ({type(failure).__name__}: {failure})" if failure is not None else ""
            log.log(level, "%s %s %d %.1fms%s", method, scope["path"], status, seconds * 1000, failed,
                    extra={"method": method, "path": scope["path"], "route": route, "status": status,
                           "duration_ms": round(seconds * 1000, 2)})


def instrument(app: Any, registry: CollectorRegistry) -> None:
    """Add RequestObservability to a Starlette/FastAPI ``app`` (outside every middleware added before)."""
    app.add_middleware(RequestObservability, latency=request_latency(registry))


# -- one scrape for several services -------------------------------------------------------------------------
def parse(text: str) -> list[Metric]:
    """The metric families of Prometheus text (ValueError when it is not Prometheus text)."""
    return list(text_string_to_metric_families(text))


def labelled(families: Iterable[Metric], labels: dict[str, str]) -> list[Metric]:
    """Copies of ``families`` with ``labels`` added to every sample (a sample's own label of a name wins)."""
    copies = []
    for family in families:
        copy = Metric(family.name, family.documentation, family.type, family.unit)
        copy.samples = [sample._replace(labels={**labels, **sample.labels}) for sample in family.samples]
        copies.append(copy)
    return copies


class _Families:
    def __init__(self, families: list[Metric]):
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def render(families: Iterable[Metric]) -> bytes:
    """Prometheus text of ``families``, those of one name (from several services) merged into one family."""
    merged: dict[str, Metric] = {}
    for family in families:
        into = merged.get(family.name)
        if into is None:
            into = merged[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
        into.samples.extend(family.samples)
    return _generate_latest(_Families(list(merged.values())))  # type: ignore[arg-type]


# -- reading Prometheus text (tests, benchmarks) -----------------------------------------------------------
class Samples:
    """Every sample of a Prometheus text, to read values: ``Samples(text).value(name, **labels)``."""

    def __init__(self, text: str):
        self.samples = [sample for family in parse(text) for sample in family.samples]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named ``name`` having ``labels`` (others summed over); 0 when none."""
        return sum(sample.value for sample in self.samples
                   if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()))

    def mean(self, histogram: str, **labels: str) -> float:
        """A histogram's mean observation (``_sum`` / ``_count``; 0 before any)."""
        count = self.value(f"{histogram}_count", **labels)
        return self.value(f"{histogram}_sum", **labels) / count if count else 0.0
