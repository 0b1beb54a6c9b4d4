"""Job progress: one status read, the recent jobs, and a server-sent event stream of changes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import anyio

from services.gateway.state import Gateway
from shared import catalog
from shared.errors import NotFound
from shared.schemas import JobStatus, JobTextProgress

TERMINAL_JOB_STATES = ("done", "failed", "cancelled")
EVENT_POLL_SECONDS = 0.25
KEEPALIVE_SECONDS = 15.0


def job_status(gateway: Gateway, job_id: str) -> JobStatus:
    found = catalog.job_status(gateway.catalog(), job_id)
    if found is None:
        raise NotFound(f"no job with id {job_id!r}")
    return _with_text(gateway, JobStatus.model_validate(found))


def recent_jobs(gateway: Gateway, limit: int) -> list[JobStatus]:
    conn = gateway.catalog()
    found = (catalog.job_status(conn, job_id) for job_id in catalog.recent_job_ids(conn, limit))
    return [_with_text(gateway, JobStatus.model_validate(status)) for status in found if status is not None]


def _with_text(gateway: Gateway, status: JobStatus) -> JobStatus:
    """The job's status with how far the text in its media has been read (the job is done before that)."""
    if gateway.settings.ocr:
        status.text = JobTextProgress(**catalog.job_text_progress(gateway.catalog(), status.id)._asdict())
    return status


def cancel_job(gateway: Gateway, job_id: str) -> JobStatus:
    if not catalog.cancel_job(gateway.catalog(), job_id):
        raise NotFound(f"no job with id {job_id!r}")
    return job_status(gateway, job_id)


async def job_events(gateway: Gateway, first: JobStatus) -> AsyncIterator[str]:
    """SSE messages: the status now, then each time it changes, ending after a terminal status.

    A comment line every ~15 s keeps proxies from closing a quiet stream.
    """
    status = first
    last_sent = time.monotonic()
    yield f"data: {status.model_dump_json()}\n\n"
    while status.status not in TERMINAL_JOB_STATES:
        await asyncio.sleep(EVENT_POLL_SECONDS)
        try:
            latest = await anyio.to_thread.run_sync(job_status, gateway, status.id)
        except NotFound:  # the job vanished (its data was removed): nothing more to tell
            return
        if latest != status:
            status = latest
            last_sent = time.monotonic()
            yield f"data: {status.model_dump_json()}\n\n"
        elif time.monotonic() - last_sent > KEEPALIVE_SECONDS:
            last_sent = time.monotonic()
            yield ": keepalive\n\n"

