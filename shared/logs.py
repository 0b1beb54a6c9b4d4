"""Logging of every service: one line per event, text by default, JSON lines with
``MEDIASEARCH_LOG_FORMAT=json``; each line names its service and, when known, the request and the job.

The request id comes from the gateway (the client's ``X-Request-ID`` when it is sane, else a new one;
shared/metrics.py's middleware sets it) and travels with every call the internal clients make
(shared/clients.py sends ``X-Request-ID`` and ``X-Job-ID``), so the embedder's and the index's lines carry
it too. The job id is bound by whoever works for a job (the ingest worker, around each item)::

    with logs.bind(job_id=item["job_id"]):
        ...  # every line logged here, and every internal call made here, carries the job id

Both live in context variables: they follow a request into ``asyncio`` tasks and into the threads
``anyio.to_thread`` / ``run_in_threadpool`` start, never into another request.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO

from shared.settings import Settings

REQUEST_ID_HEADER = "X-Request-ID"
JOB_ID_HEADER = "X-Job-ID"
_SANE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
NOISY_LOGGERS = ("httpx", "httpcore")  # kept at WARNING

_request_id: ContextVar[str | None] = ContextVar("mediasearch_request_id", default=None)
_job_id: ContextVar[str | None] = ContextVar("mediasearch_job_id", default=None)

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and goes into JSON lines.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "service", "request_id", "job_id", "color_message", "taskName"}


def request_id() -> str | None:
    """The id of the request being served (or that started this work), if any."""
    return _request_id.get()


def job_id() -> str | None:
    """The id of the job being worked on, if any."""
    return _job_id.get()


def sane_id(value: str | bytes | None) -> str | None:
    """``value`` when it is 1 to 64 characters of ``[A-Za-z0-9_-]`` (safe in logs and headers), else None."""
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    return value if value is not None and _SANE_ID.fullmatch(value) else None


def new_request_id() -> str:
    return uuid.uuid4().hex


@contextmanager
def bind(*, request_id: str | None = None, job_id: str | None = None) -> Iterator[None]:
    """Within the block, log lines (and internal calls) carry these ids; ``None`` keeps the current one."""
    tokens = []
    if request_id is not None:
        tokens.append((_request_id, _request_id.set(request_id)))
    if job_id is not None:
        tokens.append((_job_id, _job_id.set(job_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def outgoing_headers() -> dict[str, str]:
    """The ids to forward on a call to another of the product's services."""
    headers = {}
    if (rid := _request_id.get()) is not None:
        headers[REQUEST_ID_HEADER] = rid
    if (jid := _job_id.get()) is not None:
        headers[JOB_ID_HEADER] = jid
    return headers


class ContextFilter(logging.Filter):
    """Stamps each record with the service and the ids known where it was logged (a handler's filter runs
    in the logging thread and context, before any formatting)."""

    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.request_id = _request_id.get()
        record.job_id = _job_id.get()
        return True


class TextFormatter(logging.Formatter):
    """``2024-05-01 12:00:00,123 INFO gateway mediasearch.http [request_id=… job_id=…] message``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(service)s %(name)s%(context)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        ids = [f"{name}={value}" for name in ("request_id", "job_id")
               if (value := getattr(record, name, None)) is not None]
        record.context = f" [{' '.join(ids)}]" if ids else ""
        record.service = getattr(record, "service", "-")
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, service, logger, message, request_id and job_id
    when known, the fields given in ``extra=``, and ``exception`` (the traceback, in the same line)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                "level": record.levelname, "service": getattr(record, "service", None), "logger": record.name,
                "message": record.getMessage()}
        for name in ("request_id", "job_id"):
            if (value := getattr(record, name, None)) is not None:
                line[name] = value
        for name, value in vars(record).items():
            if name not in _RECORD_ATTRIBUTES and name != "context" and not name.startswith("_"):
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def make_handler(service: str, log_format: str = "text", stream: IO[str] | None = None) -> logging.Handler:
    """A handler writing ``service``'s lines to ``stream`` (stderr) in ``log_format`` ("text" or "json")."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(ContextFilter(service))
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler._mediasearch = True  # type: ignore[attr-defined]  # ours: a second configure_logging replaces it
    return handler


def configure_logging(service: str, settings: Settings) -> None:
    """This process's logging: every logger (uvicorn's and Celery's included, which propagate to the root)
    through one handler on stderr, at ``settings.log_level``, in ``settings.log_format``. Call it once at
    start-up, before the server or worker starts; run uvicorn with ``log_config=None`` so it keeps this."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_mediasearch", False):
            root.removeHandler(handler)
    root.addHandler(make_handler(service, settings.log_format))
    root.setLevel(settings.log_level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "celery.task"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    for name in NOISY_LOGGERS:  # a line per internal call: the callee's request line says it already
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    logging.captureWarnings(True)
