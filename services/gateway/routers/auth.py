"""Accounts over HTTP (shared/accounts.py): setup, sign-in and out, passwords, API keys, users,
invitations and the audit log. The anonymous routes are the ones a stranger needs to become a user:
GET/POST /auth/setup (refused without the setup token), POST /auth/sign-in (throttled after failures) and
POST /auth/invitations/accept (refused without a live invitation)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from services.gateway.auth import (
    RESPONSES,
    SESSION_COOKIE,
    PrincipalDep,
    check_same_origin,
    client_address,
    get_auth,
    require_principal,
)
from services.gateway.routers.deps import GatewayDep
from shared import accounts
from shared.accounts import Principal, Via
from shared.catalog.accounts import UserRow
from shared.errors import Unauthenticated
from shared.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyInfo,
    AuditEvent,
    AuditLog,
    ErrorBody,
    InvitationAccept,
    InvitationCreate,
    InvitationCreated,
    InvitationInfo,
    Me,
    OwnerSetup,
    PasswordChange,
    SetupState,
    SignIn,
    UserInfo,
)

router = APIRouter(prefix="/auth", tags=["accounts"])
# The anonymous POSTs sign a browser in: another site's page must not do that for it (login CSRF).
same_origin = [Depends(check_same_origin)]
signed_in = APIRouter(prefix="/auth", tags=["accounts"], dependencies=[Depends(require_principal)],
                      responses=RESPONSES)

REFUSED = {401: {"model": ErrorBody, "description": "Wrong token or credentials"}}


def me(principal: Principal) -> Me:
    return Me(id=principal.user_id, username=principal.username, role=principal.role, via=principal.via)


def signed_in_as(request: Request, response: Response, gateway, user: UserRow) -> Me:
    """Starts a session for ``user``: the cookie goes on ``response``."""
    auth = get_auth(request)
    token = accounts.start_session(gateway.catalog(), user["id"], gateway.settings.session_max_age_days * 86400)
    auth.set_session_cookie(request, response, token)
    return me(accounts.principal_of(user, Via.SESSION))


@router.get("/setup", response_model=SetupState)
def setup_state(gateway: GatewayDep) -> SetupState:
    """Whether the instance still waits for its owner account (the web UI then shows the setup page)."""
    return SetupState(needed=accounts.setup_needed(gateway.catalog()))


@router.post("/setup", status_code=201, response_model=Me,
             responses={**REFUSED, 403: {"model": ErrorBody}, 409: {"model": ErrorBody}}, dependencies=same_origin)
def create_owner(body: OwnerSetup, request: Request, response: Response, gateway: GatewayDep) -> Me:
    """Create the owner account with the setup token (printed in the gateway's log); signs them in."""
    user = accounts.create_owner(gateway.catalog(), gateway.settings, body.token, body.username, body.password,
                                 client_address(request))
    return signed_in_as(request, response, gateway, user)


@router.post("/sign-in", response_model=Me, responses={**REFUSED, 403: {"model": ErrorBody}, 429: {"model": ErrorBody}},
             dependencies=same_origin)
def sign_in(body: SignIn, request: Request, response: Response, gateway: GatewayDep) -> Me:
    """Sets the session cookie. Failed tries from one address or for one name make the next ones wait."""
    throttle, client = get_auth(request).throttle, client_address(request)
    throttle.check(client, body.username)
    conn = gateway.catalog()
    try:
        user = accounts.check_password(conn, body.username, body.password)
    except Unauthenticated:
        throttle.failed(client, body.username)
        accounts.audit(conn, body.username[:64], "sign-in failed", "", "", client)
        raise
    throttle.succeeded(client, body.username)
    accounts.audit(conn, user["username"], "sign-in", "", "", client)
    return signed_in_as(request, response, gateway, user)


@router.post("/invitations/accept", status_code=201, response_model=Me,
             responses={**REFUSED, 403: {"model": ErrorBody}, 409: {"model": ErrorBody}}, dependencies=same_origin)
def accept_invitation(body: InvitationAccept, request: Request, response: Response, gateway: GatewayDep) -> Me:
    """Become a member with an invitation's token; signs them in."""
    user = accounts.accept_invitation(gateway.catalog(), body.token, body.username, body.password,
                                      client_address(request))
    return signed_in_as(request, response, gateway, user)


@signed_in.get("/me", response_model=Me)
def who_am_i(principal: PrincipalDep) -> Me:
    return me(principal)


@signed_in.post("/sign-out", status_code=204, response_class=Response)
def sign_out(request: Request, principal: PrincipalDep, gateway: GatewayDep) -> Response:
    """Ends this session (a key stays valid: revoke it instead)."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        accounts.end_session(gateway.catalog(), token)
    if principal.via is Via.SESSION:
        accounts.audit(gateway.catalog(), principal.actor, "sign-out", "", "", client_address(request))
    response = Response(status_code=204)
    get_auth(request).clear_session_cookie(request, response)
    return response


@signed_in.post("/password", status_code=204, response_class=Response)
def change_password(body: PasswordChange, request: Request, principal: PrincipalDep, gateway: GatewayDep) -> Response:
    """Set a new password (the current one confirms it is you); your other sessions are signed out."""
    accounts.change_password(gateway.catalog(), principal, body.current_password, body.new_password,
                             request.cookies.get(SESSION_COOKIE), client_address(request))
    return Response(status_code=204)


@signed_in.get("/api-keys", response_model=list[ApiKeyInfo])
def list_api_keys(principal: PrincipalDep, gateway: GatewayDep) -> list[ApiKeyInfo]:
    """Your API keys (their first characters only: a key is shown once, when made)."""
    return [ApiKeyInfo(**row) for row in accounts.api_keys_of(gateway.catalog(), principal)]


@signed_in.post("/api-keys", status_code=201, response_model=ApiKeyCreated)
def create_api_key(body: ApiKeyCreate, request: Request, principal: PrincipalDep, gateway: GatewayDep) -> ApiKeyCreated:
    """A key for scripts, sent as X-API-Key or Authorization: Bearer; it acts as you until revoked."""
    row, key = accounts.create_api_key(gateway.catalog(), principal, body.name, client_address(request))
    return ApiKeyCreated(**row, key=key)


@signed_in.delete("/api-keys/{key_id}", status_code=204, response_class=Response)
def revoke_api_key(key_id: int, request: Request, principal: PrincipalDep, gateway: GatewayDep) -> Response:
    accounts.revoke_api_key(gateway.catalog(), principal, key_id, client_address(request))
    return Response(status_code=204)


@signed_in.get("/users", response_model=list[UserInfo])
def list_users(principal: PrincipalDep, gateway: GatewayDep) -> list[UserInfo]:
    """Everyone with an account (owner only). Every user sees the whole library."""
    return [UserInfo(**row) for row in accounts.list_users(gateway.catalog(), principal)]


@signed_in.delete("/users/{user_id}", status_code=204, response_class=Response)
def remove_user(user_id: int, request: Request, principal: PrincipalDep, gateway: GatewayDep) -> Response:
    """Remove a member with their sessions and keys (owner only)."""
    accounts.remove_user(gateway.catalog(), principal, user_id, client_address(request))
    return Response(status_code=204)


@signed_in.post("/invitations", status_code=201, response_model=InvitationCreated)
def create_invitation(body: InvitationCreate, request: Request, principal: PrincipalDep,
                      gateway: GatewayDep) -> InvitationCreated:
    """A one-time invitation for a new member (owner only); its link is the UI's address + #invite=<token>."""
    row, token = accounts.create_invitation(gateway.catalog(), principal, body.expires_in_hours * 3600,
                                            client_address(request))
    return InvitationCreated(id=row["id"], created_at=row["created_at"], expires_at=row["expires_at"], token=token)


@signed_in.get("/invitations", response_model=list[InvitationInfo])
def list_invitations(principal: PrincipalDep, gateway: GatewayDep) -> list[InvitationInfo]:
    """Invitations not used yet and not expired (owner only)."""
    return [InvitationInfo(id=row["id"], created_at=row["created_at"], expires_at=row["expires_at"])
            for row in accounts.pending_invitations(gateway.catalog(), principal)]


@signed_in.delete("/invitations/{invitation_id}", status_code=204, response_class=Response)
def revoke_invitation(invitation_id: int, request: Request, principal: PrincipalDep, gateway: GatewayDep) -> Response:
    accounts.revoke_invitation(gateway.catalog(), principal, invitation_id, client_address(request))
    return Response(status_code=204)


@signed_in.get("/audit", response_model=AuditLog)
def audit_log(principal: PrincipalDep, gateway: GatewayDep,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100,
              before: Annotated[int | None, Query(ge=1, le=2**62, description="Events older than this id")] = None
              ) -> AuditLog:
    """Account, key and delete actions, newest first (owner only)."""
    principal.require_owner()
    events = accounts.audit_events(gateway.catalog(), limit, before)
    return AuditLog(events=[AuditEvent(**row) for row in events],
                    next_before=events[-1]["id"] if len(events) == limit else None)
