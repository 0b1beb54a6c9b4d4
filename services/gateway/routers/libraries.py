"""Libraries: server folders indexed in place, watched and rescanned (services/gateway/libraries.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from services.gateway import auth, libraries
from services.gateway.routers.deps import GatewayDep
from shared.schemas import ErrorBody, LibraryCreate, LibraryDeleted, LibraryInfo, LibraryList

router = APIRouter(prefix="/libraries", tags=["libraries"],
                   responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}})


@router.post("", status_code=201, response_model=LibraryInfo,
             responses={403: {"model": ErrorBody}, 409: {"model": ErrorBody}, 503: {"model": ErrorBody}})
def create_library(body: LibraryCreate, request: Request, gateway: GatewayDep) -> LibraryInfo:
    """Index a folder on the server in place (only under MEDIASEARCH_INGEST_ROOTS; symlinks and `..` are
    resolved first): nothing is copied, its changes are followed by the watcher and a periodic rescan. Its
    first scan starts now."""
    created = libraries.create_library(gateway, body.path, body.name)
    auth.record(request, "library added", f"library {created.id}", created.path)
    return created


@router.get("", response_model=LibraryList)
def list_libraries(gateway: GatewayDep) -> LibraryList:
    return libraries.list_libraries(gateway)


@router.get("/{library_id}", response_model=LibraryInfo)
def get_library(library_id: int, gateway: GatewayDep) -> LibraryInfo:
    """Status (`scanning` while a scan runs or its files are ingested; `unavailable` while its folder is
    missing), counts and the first 200 files that could not be ingested."""
    return libraries.library_info(gateway, library_id)


@router.post("/{library_id}/scan", status_code=202, response_model=LibraryInfo, responses={503: {"model": ErrorBody}})
def scan_library(library_id: int, gateway: GatewayDep) -> LibraryInfo:
    """Scan now: new and changed files are ingested, deleted ones leave, moved ones keep their media."""
    return libraries.request_scan(gateway, library_id)


@router.delete("/{library_id}", response_model=LibraryDeleted, responses={409: {"model": ErrorBody}})
async def delete_library(library_id: int, request: Request, gateway: GatewayDep) -> LibraryDeleted:
    """Forget a library and its media (those with no file elsewhere and no upload) in the catalog and the
    index. Its files are never touched."""
    deleted = await libraries.delete_library(gateway, library_id)
    await run_in_threadpool(auth.record, request, "library removed", f"library {library_id}",
                            f"{deleted.media} media")
    return deleted
