from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from services.gateway import jobs
from services.gateway.routers.deps import GatewayDep
from shared.schemas import ErrorBody, JobList, JobStatus

router = APIRouter(prefix="/jobs", tags=["jobs"], responses={404: {"model": ErrorBody}})


@router.get("", response_model=JobList)
def list_jobs(gateway: GatewayDep, limit: Annotated[int, Query(ge=1, le=500)] = 20) -> JobList:
    """The most recent jobs, newest first."""
    return JobList(jobs=jobs.recent_jobs(gateway, limit))


@router.get("/{job_id}", response_model=JobStatus)
def get_job(job_id: str, gateway: GatewayDep) -> JobStatus:
    return jobs.job_status(gateway, job_id)


@router.post("/{job_id}/cancel", response_model=JobStatus)
def cancel_job(job_id: str, gateway: GatewayDep) -> JobStatus:
    """Stop a job: files not started yet are cancelled; files being processed finish."""
    return jobs.cancel_job(gateway, job_id)


@router.get("/{job_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "A JobStatus JSON per `data:` message, until the job ends"}})
def job_events(job_id: str, gateway: GatewayDep) -> StreamingResponse:
    """Server-sent events: the job's status now and whenever it changes; the stream ends with the job."""
    first = jobs.job_status(gateway, job_id)
    return StreamingResponse(jobs.job_events(gateway, first), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
