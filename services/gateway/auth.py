"""Who is asking: the session cookie, an API key, or the operator's static key; and the request's real
client address and scheme behind the reverse proxies the operator trusts.

Every route but ``/health``, the web UI's files and the sign-in/setup routes depends on ``require_principal``:
- ``X-API-Key: <key>`` or ``Authorization: Bearer <key>``: a user's API key, or MEDIASEARCH_API_KEY;
  a key that is sent and wrong is refused even when a cookie is also there.
- the ``mediasearch_session`` cookie (HttpOnly, SameSite=Strict, Secure over TLS). A request that changes
  something (any method but GET, HEAD, OPTIONS) with the cookie must also come from the gateway's own page:
  a browser names the page in ``Origin`` (and ``Sec-Fetch-Site`` over HTTPS); another site's is refused
  (CSRF). A client that sends neither is not a browser acting for a page, and a cookie it holds is its own.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from functools import cached_property
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request, Response, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from services.gateway.response_headers import HttpMiddleware
from shared import accounts
from shared.accounts import Principal, Via
from shared.schemas import ErrorBody
from shared.settings import Settings

API_KEY_HEADER = "X-API-Key"
SESSION_COOKIE = "mediasearch_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SAME_SITE_FETCHES = frozenset({"same-origin", "none"})  # none: typed in the address bar, a bookmark

RESPONSES = {401: {"model": ErrorBody, "description": "Not signed in: no session cookie or API key, or a wrong one"},
             403: {"model": ErrorBody, "description": "Signed in, but not allowed this (or a cross-site request)"}}

# Security schemes, so /docs offers to send a key (auto_error off: require_principal explains what is missing).
api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="An API key (Account → API keys)")
bearer = HTTPBearer(auto_error=False, description="An API key, as `Authorization: Bearer <key>`")
session_cookie = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, description="Set by POST /auth/sign-in")

WWW_AUTHENTICATE = 'Bearer realm="mediasearch"'
NOT_SIGNED_IN = (f"sign in first: send the session cookie from POST /auth/sign-in, or an API key in the "
                 f"{API_KEY_HEADER} header (or Authorization: Bearer)")


class Proxies:
    """The reverse proxies whose forwarding headers are believed (MEDIASEARCH_TRUSTED_PROXIES)."""

    def __init__(self, settings: Settings):
        self.networks = [ipaddress.ip_network(entry, strict=False) for entry in settings.trusted_proxies]

    def trusts(self, address: str | None) -> bool:
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def client_address(self, request: Request) -> str:
        """The client's address: the peer's, or behind trusted proxies the last address in
        X-Forwarded-For that is not one of them (the ones before it could be made up by the client)."""
        peer = request.client.host if request.client else "unknown"
        if not self.trusts(peer):
            return peer
        hops = [hop.strip() for hop in request.headers.get("x-forwarded-for", "").split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return hop
        return hops[0] if hops else peer

    def is_tls(self, request: Request) -> bool:
        if request.url.scheme == "https":
            return True
        forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        return forwarded == "https" and self.trusts(request.client.host if request.client else None)


class Auth:
    """The gateway's per-app auth state: the static key, the trusted proxies, the sign-in throttle."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.proxies = Proxies(settings)
        self.throttle = accounts.SignInThrottle()

    @cached_property
    def static_key(self) -> bytes | None:
        key = self.settings.api_key.get_secret_value().strip() if self.settings.api_key else ""
        return key.encode() or None

    def set_session_cookie(self, request: Request, response: Response, token: str) -> None:
        response.set_cookie(SESSION_COOKIE, token, max_age=int(self.settings.session_max_age_days * 86400),
                            httponly=True, samesite="strict", secure=self.proxies.is_tls(request), path="/")

    def clear_session_cookie(self, request: Request, response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict",
                               secure=self.proxies.is_tls(request), path="/")


def get_auth(request: Request) -> Auth:
    return request.app.state.auth


def client_address(request: Request) -> str:
    return get_auth(request).proxies.client_address(request)


def presented_key(request: Request) -> str | None:
    """The API key of X-API-Key, else of ``Authorization: Bearer``."""
    if key := request.headers.get(API_KEY_HEADER, "").strip():
        return key
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return credentials.strip() or None if scheme.lower() == "bearer" else None


def _unauthorized(message: str = NOT_SIGNED_IN) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": WWW_AUTHENTICATE})


def _is_static_key(request: Request, key: str) -> bool:
    static_key = get_auth(request).static_key
    return static_key is not None and hmac.compare_digest(key.encode(), static_key)


def static_key_principal(request: Request) -> Principal | None:
    """The static key's principal when the request presents that key (no catalog read: no thread), else None."""
    key = presented_key(request)
    return accounts.STATIC_KEY_PRINCIPAL if key and _is_static_key(request, key) else None


def _from_key(request: Request, key: str) -> Principal:
    if _is_static_key(request, key):
        return accounts.STATIC_KEY_PRINCIPAL
    principal = accounts.user_of_api_key(request.app.state.gateway.catalog(), key)
    if principal is None:
        raise _unauthorized("this API key is wrong or was revoked")
    return principal


def check_same_origin(request: Request) -> None:
    """CSRF: a cookie-carrying request that changes something must come from the gateway's own page."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in SAME_SITE_FETCHES:
        raise HTTPException(403, f"cross-site request refused (Sec-Fetch-Site: {fetch_site}): use the "
                                 "mediasearch page itself, or an API key")
    origin = request.headers.get("origin")
    if origin is None:
        return
    allowed = {origin_of(entry) for entry in get_auth(request).settings.cors_origins}
    if origin_of(origin) in allowed or urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower():
        return
    raise HTTPException(403, f"cross-site request refused (Origin: {origin[:100]}): use the mediasearch page "
                             "itself, or an API key")


def origin_of(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def principal_of_request(request: Request) -> Principal | None:
    """Who the request comes from, None when it names nobody; a wrong key or a cross-site cookie raises."""
    if key := presented_key(request):
        return _from_key(request, key)
    if cookie := request.cookies.get(SESSION_COOKIE):
        user = accounts.user_of_session(request.app.state.gateway.catalog(), cookie)
        if user is not None:
            if request.method not in SAFE_METHODS:
                check_same_origin(request)
            return accounts.principal_of(user, Via.SESSION)
    return None


# Declared for the OpenAPI document (and /docs's "Authorize"); RequireSignIn reads the headers itself.
KeyHeader = Annotated[str | None, Security(api_key_header)]
BearerKey = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
SessionCookie = Annotated[str | None, Security(session_cookie)]


async def require_principal(request: Request, _key: KeyHeader = None, _bearer: BearerKey = None,
                            _cookie: SessionCookie = None) -> Principal:
    """Dependency of every protected route: the principal RequireSignIn settled. Async, so that it costs no
    thread hop (a sync dependency runs in a worker thread)."""
    principal = (getattr(request.state, "principal", None)
                 or await run_in_threadpool(principal_of_request, request))  # the catalog: a thread
    if principal is None:
        raise _unauthorized()
    request.state.principal = principal
    return principal


def optional_principal(request: Request, _key: KeyHeader = None, _bearer: BearerKey = None,
                       _cookie: SessionCookie = None) -> Principal | None:
    """For the routes a stranger may call too (health): who it is, or None; never refuses."""
    try:
        return principal_of_request(request)
    except HTTPException:
        return None


def record(request: Request, action: str, target: str, detail: str = "") -> None:
    """An entry in the audit log by the request's signed-in principal (e.g. "media deleted")."""
    accounts.audit(request.app.state.gateway.catalog(), request.state.principal.actor, action, target, detail,
                   client_address(request))


class RequireSignIn(HttpMiddleware):
    """Who asks is settled before a protected route reads its body: no credentials, a wrong key, an unknown
    session or a cross-site cookie is answered here (401, 403), so a stranger's body, however large or
    malformed, is never read. The route's require_principal finds the principal in the request's state."""

    def __init__(self, app: ASGIApp, routers: list[APIRouter]):
        super().__init__(app)
        self.protected = [route for router in routers for route in router.routes if isinstance(route, APIRoute)]

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not any(route.matches(scope)[0] is Match.FULL for route in self.protected):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            principal = (static_key_principal(request)
                         or await run_in_threadpool(principal_of_request, request))  # the catalog: a thread
            if principal is None:
                raise _unauthorized()
        except HTTPException as exc:
            body = json.dumps({"detail": exc.detail}).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                       *((name.lower().encode(), value.encode()) for name, value in (exc.headers or {}).items())]
            await send({"type": "http.response.start", "status": exc.status_code, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        request.state.principal = principal
        await self.app(scope, receive, send)


PrincipalDep = Annotated[Principal, Depends(require_principal)]
OptionalPrincipalDep = Annotated[Principal | None, Depends(optional_principal)]
