"""Errors to HTTP answers, in one place: every error body is ``{"detail": "<readable text>"}``.

Domain code (the gateway's modules, ``shared``) raises ``shared.errors`` classes and never an HTTP type;
``STATUS`` says which status each class answers with. Besides those: request validation (422), an
internal service that failed (``UpstreamError``: 400 when it blamed our input, else 503), an id beyond
SQLite's integers (422), Starlette's own HTTP errors (unknown route, wrong method, and the 401/429 of
the API-key and rate-limit dependencies), a write that found the disk full anywhere (507, like
``InsufficientStorage``) and, last, anything unexpected (500, logged, no traceback sent).
"""

from __future__ import annotations

import logging
import sqlite3

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.clients import UpstreamError
from shared.durable import DISK_FULL, is_disk_full
from shared.errors import (
    BadInput,
    Conflict,
    DomainError,
    Forbidden,
    InsufficientStorage,
    InvalidParameter,
    NotFound,
    TooLarge,
    TooManyAttempts,
    Unauthenticated,
    Unavailable,
    UnsupportedType,
)

log = logging.getLogger("mediasearch.gateway")

STATUS: dict[type[DomainError], int] = {
    BadInput: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    TooManyAttempts: 429,
    UnsupportedType: 415,
    InvalidParameter: 422,
    Unavailable: 503,
    InsufficientStorage: 507,
}
DEFAULT_STATUS = 400  # a DomainError of no class above: the request cannot be served as it is


def status_of(error: DomainError) -> int:
    return next((STATUS[cls] for cls in type(error).__mro__ if cls in STATUS), DEFAULT_STATUS)


def readable_validation_error(exc: RequestValidationError) -> str:
    """``query k: Input should be greater than or equal to 1; ...`` instead of pydantic's error list."""
    messages = []
    for error in exc.errors():
        where = [str(part) for part in error.get("loc", ())]
        place = f"{where[0]} {'.'.join(where[1:])}".strip() if where else "request"
        messages.append(f"{place}: {error.get('msg', 'invalid')}")
    return "; ".join(messages) or "invalid request"


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(_: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=status_of(exc), headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": readable_validation_error(exc)}, status_code=422)

    @app.exception_handler(UpstreamError)
    async def upstream_error(_: Request, exc: UpstreamError) -> JSONResponse:
        if exc.caller_fault:  # e.g. the embedder could not decode the query image
            return JSONResponse({"detail": exc.detail}, status_code=400)
        return JSONResponse({"detail": f"{exc.service} is unavailable: {exc.detail}"}, status_code=503)

    @app.exception_handler(OverflowError)
    async def number_too_large(request: Request, exc: OverflowError) -> JSONResponse:
        # An id (path, query or body) beyond SQLite's 64-bit integers names nothing that can exist.
        if "too large to convert to SQLite" in str(exc):
            return JSONResponse({"detail": "a number in the request is out of range (ids are below 2**63)"},
                                status_code=422)
        return await unexpected_error(request, exc)

    @app.exception_handler(OSError)
    @app.exception_handler(sqlite3.Error)
    async def disk_full(request: Request, exc: Exception) -> JSONResponse:
        # Library code that writes (the catalog, the media store) and met a full data volume.
        if is_disk_full(exc):
            log.warning("%s on %s %s: %s", DISK_FULL, request.method, request.url.path, exc)
            return JSONResponse({"detail": f"{DISK_FULL}: the data volume has no room left for this change; "
                                           "free some space and try again"}, status_code=507)
        return await unexpected_error(request, exc)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); see the gateway log"},
                            status_code=500)
