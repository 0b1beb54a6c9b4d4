"""The gateway: the product's only public HTTP port (API, media files, and the web UI at "/")."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

import swagger_ui
from fastapi import APIRouter, Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from services.gateway import auth, ratelimit, security
from services.gateway.body_limits import BodyLimits
from services.gateway.errors import add_error_handlers
from services.gateway.hosts import HostAllowList
from services.gateway.metrics import gateway_registry
from services.gateway.routers import (
    auth as auth_routes,
)
from services.gateway.routers import (
    clusters,
    collections,
    duplicates,
    health,
    jobs,
    libraries,
    media,
    metrics,
    search,
    uploads,
)
from services.gateway.state import Gateway
from services.gateway.timing import ServerTimingMiddleware
from shared import accounts, logs
from shared.metrics import instrument
from shared.schemas import ErrorBody
from shared.settings import Settings

DOCS_ASSETS = "/docs/assets"
OPENAPI_URL = "/openapi.json"


def add_offline_docs(app: FastAPI) -> APIRouter:
    """The docs page (Swagger UI's files, public like the web UI's) and the API document, which needs a
    signed-in caller (the page fetches it with the session cookie): returned, to be included as such."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=Path(swagger_ui.__file__).parent / "static"), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=OPENAPI_URL, title=f"{app.title} API",
                                   swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png")

    document = APIRouter()

    @document.get(OPENAPI_URL, include_in_schema=False)
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    return document


def create_app(settings: Settings) -> FastAPI:
    gateway = Gateway(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        accounts.announce_setup(gateway.catalog(), settings)  # no owner yet: the setup token, in the log
        yield
        await gateway.aclose()

    # Every error body is {"detail": "..."} (errors.add_error_handlers), a validation error too.
    # The API docs are served from the swagger-ui-py package's files, not a CDN: the product works offline.
    app = FastAPI(title="mediasearch", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None,
                  responses={400: {"model": ErrorBody, "description": "The request cannot be used (see detail)"},
                             404: {"model": ErrorBody, "description": "Something the request names does not exist"},
                             413: {"model": ErrorBody, "description": "The body is over its route's limit"},
                             422: {"model": ErrorBody, "description": "The request is malformed (see detail)"}},
                  description="Semantic search over your photos and videos. Every route but /health and "
                              "the sign-in and setup routes needs a signed-in user: the session cookie of "
                              "POST /auth/sign-in, or an API key (Account → API keys, or MEDIASEARCH_API_KEY) "
                              "in the X-API-Key header or as Authorization: Bearer.")
    app.state.gateway = gateway
    app.state.auth = auth.Auth(settings)
    app.state.metrics_registry = gateway_registry(gateway)  # this app's own (GET /metrics)
    add_error_handlers(app)
    api_document = add_offline_docs(app)

    protected = [Depends(auth.require_principal)]
    signed_in_routers = [uploads.router, jobs.router, search.router, media.router, duplicates.router,
                         clusters.router, collections.router, metrics.router, auth_routes.signed_in, api_document,
                         libraries.router]
    # Per-client rate limits on the expensive routes, for signed-in requests (strangers never get that far).
    upload_limit = ratelimit.RateLimit("upload", settings.rate_limit_upload_per_min)
    search_limit = ratelimit.RateLimit("search", settings.rate_limit_search_per_min)
    limited = {**auth.RESPONSES, **ratelimit.RESPONSES}
    app.include_router(health.router)
    app.include_router(auth_routes.router)
    app.include_router(auth_routes.signed_in)  # its own dependencies say: signed in
    app.include_router(uploads.router, dependencies=[Depends(upload_limit), *protected], responses=limited)
    app.include_router(jobs.router, dependencies=protected, responses=auth.RESPONSES)
    app.include_router(search.router, dependencies=[Depends(search_limit), *protected], responses=limited)
    for router in (media.router, duplicates.router, clusters.router, collections.router, metrics.router, api_document,
                   libraries.router):
        app.include_router(router, dependencies=protected, responses=auth.RESPONSES)

    # BodyLimits: ahead of any body parsing (in the routes), and its 413s get the CORS and security headers.
    # Innermost, RequireSignIn: who asks is settled before a route reads a byte of the body; inside BodyLimits,
    # so an answer given before the body was read closes the connection (the rest is never read either).
    app.add_middleware(auth.RequireSignIn, routers=signed_in_routers)
    app.add_middleware(BodyLimits, settings=settings)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST", "PATCH", "DELETE"],
                           allow_headers=[auth.API_KEY_HEADER, "Authorization", "Content-Type", "Range",
                                          logs.REQUEST_ID_HEADER],
                           expose_headers=["Content-Range", "Accept-Ranges", "Content-Length", "ETag",
                                           logs.REQUEST_ID_HEADER])
    app.add_middleware(security.SecurityHeaders)
    app.add_middleware(ServerTimingMiddleware)
    app.add_middleware(HostAllowList, settings=settings)  # an unknown Host name is refused before anything else
    # Outermost: every response gets X-Request-ID and is timed and logged under its route's template.
    instrument(app, app.state.metrics_registry)

    # Last, so every API route wins over a file of the same name.
    if settings.frontend_dir.is_dir():
        app.mount("/", StaticFiles(directory=settings.frontend_dir, html=True), name="ui")
    return app
