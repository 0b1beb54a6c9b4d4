from __future__ import annotations

from fastapi import APIRouter, Request

from services.gateway import libraries, uploads
from services.gateway.routers.deps import GatewayDep
from shared.schemas import ErrorBody, FolderIngest, JobCreated

router = APIRouter(tags=["uploads"])
NO_ROOM = {"model": ErrorBody,
           "description": "The data volume has no room for the files (MEDIASEARCH_DISK_RESERVE_BYTES)"}

_MULTIPART_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object",
            "properties": {
                "files": {"type": "array", "items": {"type": "string", "format": "binary"},
                          "description": "One part per file; its filename is the path relative to the "
                                         "chosen folder (a browser's webkitRelativePath)"},
                "folder": {"type": "string", "description": "Name of the uploaded folder (optional)"},
            },
            "required": ["files"],
        }}},
    }
}


@router.post("/uploads", status_code=202, response_model=JobCreated, openapi_extra=_MULTIPART_BODY,
             responses={413: {"model": ErrorBody}, 415: {"model": ErrorBody}, 503: {"model": ErrorBody},
                        507: NO_ROOM})
async def upload_files(request: Request, gateway: GatewayDep) -> JobCreated:
    """Upload a folder's files; streamed to disk, then queued one task per file.

    A file whose name is unusable (`..`, NUL, too long) becomes a failed item of the job with the
    reason; the others are indexed. Limits on files, bytes per file, bytes per upload and form fields
    give 413; an upload that would leave less than MEDIASEARCH_DISK_RESERVE_BYTES free gives 507.
    """
    job_id = await uploads.receive_upload(gateway, request.headers.get("content-type", ""),
                                          request.headers.get("content-length"), request.stream())
    return JobCreated(job_id=job_id)


@router.post("/ingest", status_code=202, response_model=JobCreated,
             responses={403: {"model": ErrorBody}, 404: {"model": ErrorBody}, 409: {"model": ErrorBody},
                        503: {"model": ErrorBody}, 507: NO_ROOM})
def ingest_server_folder(body: FolderIngest, gateway: GatewayDep) -> JobCreated:
    """Index a folder on the server in place, once: only under MEDIASEARCH_INGEST_ROOTS (symlinks and `..`
    resolved first). Nothing is copied and there is no cap on its size. It is scanned now as a one-off
    library (POST /libraries makes it watched): the job holds its new and changed files; files deleted since
    the last time leave. Its files are served from the folder."""
    return libraries.ingest_folder(gateway, body.path)
