"""Accounts through the gateway app in-process (a real Redis, a real SQLite catalog): the setup token, sign-in
and its throttle, session cookies and CSRF, passwords, API keys, invitations, the audit log, the Host
allow-list, trusted proxies, and the server-side password reset command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.gateway.app import create_app
from shared import accounts
from tests.service.conftest import settings_for

REPO = Path(__file__).resolve().parents[2]
OWNER, OWNER_PASSWORD = "ann", "correct horse battery staple"
SAME_ORIGIN = {"Origin": "http://testserver"}  # what a browser sends with the UI's own POSTs


@pytest.fixture
def gateway(tmp_path, redis_url):
    """A gateway without a static key: only accounts get in."""
    settings = settings_for(tmp_path, redis_url, api_key=None)
    with TestClient(create_app(settings)) as client:
        yield client


def setup_token(client: TestClient) -> str:
    return accounts.setup_token_path(client.app.state.gateway.settings).read_text().strip()


def set_up(client: TestClient) -> None:
    reply = client.post("/auth/setup", json={"token": setup_token(client), "username": OWNER, "password": OWNER_PASSWORD})
    assert reply.status_code == 201, reply.text


def another_client(gateway: TestClient, **kwargs) -> TestClient:
    """A second browser of the same gateway (its own cookie jar)."""
    return TestClient(gateway.app, **kwargs)


def test_setup_needs_the_token_from_the_log_and_happens_once(gateway, caplog):
    token_file = accounts.setup_token_path(gateway.app.state.gateway.settings)
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert gateway.get("/auth/setup").json() == {"needed": True}
    assert gateway.get("/jobs").status_code == 401
    body = {"username": OWNER, "password": OWNER_PASSWORD}
    assert gateway.post("/auth/setup", json={**body, "token": "guess"}).status_code == 401
    assert gateway.post("/auth/setup", json=body).status_code == 422  # no token at all
    assert gateway.post("/auth/setup", json={**body, "token": setup_token(gateway), "password": "short"}).status_code == 422
    assert gateway.get("/auth/setup").json() == {"needed": True}  # nothing was made by those

    reply = gateway.post("/auth/setup", json={**body, "token": setup_token(gateway)})
    assert reply.status_code == 201 and reply.json() == {"id": 1, "username": OWNER, "role": "owner", "via": "session"}
    cookie = reply.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower() and "Secure" not in cookie  # plain HTTP
    assert not token_file.exists() and gateway.get("/auth/setup").json() == {"needed": False}
    assert gateway.get("/jobs").status_code == 200  # signed in by the setup
    again = another_client(gateway).post("/auth/setup", json={**body, "token": "anything", "username": "eve"})
    assert again.status_code == 409


def test_the_setup_token_is_in_the_log_of_a_gateway_without_an_owner(tmp_path, redis_url, caplog):
    settings = settings_for(tmp_path, redis_url, api_key=None)
    with caplog.at_level("WARNING", logger="mediasearch.accounts"), TestClient(create_app(settings)):
        pass
    token = accounts.setup_token_path(settings).read_text().strip()
    assert any(token in record.getMessage() and "setup token" in record.getMessage() for record in caplog.records)


def test_sign_in_sign_out_and_the_backoff_after_failures(gateway):
    set_up(gateway)
    gateway.app.state.auth.throttle = accounts.SignInThrottle(clock=lambda: 1000.0)  # time stands still here
    gateway.post("/auth/sign-out", headers=SAME_ORIGIN)
    assert gateway.get("/auth/me").status_code == 401
    browser = another_client(gateway, client=("192.0.2.10", 5000))
    assert browser.post("/auth/sign-in", json={"username": OWNER, "password": "wrong"}).status_code == 401
    assert browser.post("/auth/sign-in", json={"username": "nobody", "password": "wrong"}).json()["detail"] == \
        "wrong username or password"  # the same answer for an unknown name
    reply = browser.post("/auth/sign-in", json={"username": OWNER.upper(), "password": OWNER_PASSWORD})
    assert reply.status_code == 200 and reply.json()["username"] == OWNER  # names are case-insensitive
    assert browser.get("/auth/me").json()["via"] == "session"
    session = browser.cookies["mediasearch_session"]
    assert browser.post("/auth/sign-out", headers=SAME_ORIGIN).status_code == 204
    assert browser.get("/auth/me").status_code == 401
    replayed = another_client(gateway, cookies={"mediasearch_session": session})
    assert replayed.get("/auth/me").status_code == 401  # the session ended on the server, not only in the browser

    guesser = another_client(gateway, client=("192.0.2.66", 5000))
    answers = [guesser.post("/auth/sign-in", json={"username": OWNER, "password": f"guess {n}"}) for n in range(7)]
    assert [a.status_code for a in answers[:6]] == [401] * 6  # five free failures, then each one waits
    assert answers[6].status_code == 429 and int(answers[6].headers["retry-after"]) >= 1
    assert "too many failed sign-ins" in answers[6].json()["detail"]
    right = guesser.post("/auth/sign-in", json={"username": OWNER, "password": OWNER_PASSWORD})
    assert right.status_code == 429  # even the right password waits out the backoff
    elsewhere = another_client(gateway, client=("192.0.2.11", 5000))
    assert elsewhere.post("/auth/sign-in", json={"username": OWNER, "password": OWNER_PASSWORD}).status_code == 429
    audit = [(e["actor"], e["action"]) for e in gateway_owner(gateway).get("/auth/audit").json()["events"]]
    assert (OWNER, "sign-in failed") in audit and (OWNER, "sign-in") in audit and (OWNER, "sign-out") in audit


def gateway_owner(gateway: TestClient) -> TestClient:
    """The owner, signed in with an API key made from a fresh session (the throttle aside)."""
    conn = gateway.app.state.gateway.catalog()
    owner = accounts.principal_of(accounts.rows.user_by_name(conn, OWNER), accounts.Via.SESSION)
    _, key = accounts.create_api_key(conn, owner, "test")
    return another_client(gateway, headers={"X-API-Key": key})


def test_a_cross_site_request_with_the_cookie_is_refused(gateway):
    set_up(gateway)
    collection = {"name": "trip", "media_ids": []}
    assert gateway.post("/collections", json=collection, headers=SAME_ORIGIN).status_code == 201
    evil = gateway.post("/collections", json=collection, headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403 and "cross-site" in evil.json()["detail"]
    fetched = gateway.post("/collections", json=collection, headers={"Sec-Fetch-Site": "cross-site"})
    assert fetched.status_code == 403
    assert gateway.post("/collections", json=collection, headers={"Sec-Fetch-Site": "same-site"}).status_code == 403
    assert gateway.delete("/collections/1", headers={"Origin": "null"}).status_code == 403
    assert gateway.post("/auth/sign-out", headers={"Origin": "https://evil.example"}).status_code == 403
    assert gateway.get("/auth/me", headers={"Origin": "https://evil.example"}).status_code == 200  # reads change nothing
    # Nor may another site sign a browser in (login CSRF).
    signing_in = gateway.post("/auth/sign-in", json={"username": OWNER, "password": OWNER_PASSWORD},
                              headers={"Origin": "https://evil.example"})
    assert signing_in.status_code == 403 and "set-cookie" not in signing_in.headers
    # A client that is no browser (no Origin, no Sec-Fetch-Site) holding its own cookie may go on.
    assert gateway.post("/collections", json=collection).status_code == 201
    names = [c["name"] for c in gateway.get("/collections").json()["collections"]]
    assert names == ["trip", "trip"]


def test_change_password_signs_out_the_other_sessions(gateway):
    set_up(gateway)
    laptop = another_client(gateway)
    assert laptop.post("/auth/sign-in", json={"username": OWNER, "password": OWNER_PASSWORD}).status_code == 200
    wrong = gateway.post("/auth/password", json={"current_password": "nope", "new_password": "a new password"},
                         headers=SAME_ORIGIN)
    assert wrong.status_code == 403 and "current password is wrong" in wrong.json()["detail"]
    changed = gateway.post("/auth/password", json={"current_password": OWNER_PASSWORD, "new_password": "a new password"},
                           headers=SAME_ORIGIN)
    assert changed.status_code == 204
    assert gateway.get("/auth/me").status_code == 200 and laptop.get("/auth/me").status_code == 401
    fresh = another_client(gateway)
    assert fresh.post("/auth/sign-in", json={"username": OWNER, "password": OWNER_PASSWORD}).status_code == 401
    assert fresh.post("/auth/sign-in", json={"username": OWNER, "password": "a new password"}).status_code == 200


def test_api_keys_are_shown_once_listed_by_prefix_and_revoked(gateway):
    set_up(gateway)
    made = gateway.post("/auth/api-keys", json={"name": "backup script"}, headers=SAME_ORIGIN)
    assert made.status_code == 201
    key, key_id, prefix = made.json()["key"], made.json()["id"], made.json()["prefix"]
    assert key.startswith(prefix) and len(key) > 40
    listed = gateway.get("/auth/api-keys").json()
    assert listed == [{"id": key_id, "name": "backup script", "prefix": prefix, "created_at": listed[0]["created_at"],
                       "last_used_at": None}]
    stored = gateway.app.state.gateway.catalog().execute("SELECT key_hash FROM api_keys").fetchone()[0]
    assert key not in stored and stored == accounts.hash_token(key)
    script = another_client(gateway)
    assert script.get("/auth/me", headers={"X-API-Key": key}).json() == {
        "id": 1, "username": OWNER, "role": "owner", "via": "api_key"}
    assert script.get("/jobs", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert gateway.get("/auth/api-keys").json()[0]["last_used_at"] is not None
    assert gateway.delete(f"/auth/api-keys/{key_id}", headers=SAME_ORIGIN).status_code == 204
    assert script.get("/jobs", headers={"X-API-Key": key}).status_code == 401
    assert gateway.delete(f"/auth/api-keys/{key_id}", headers=SAME_ORIGIN).status_code == 404
    events = [(e["action"], e["target"]) for e in gateway.get("/auth/audit").json()["events"]]
    assert ("api key created", f"key {prefix}") in events and ("api key revoked", f"key {prefix}") in events


def test_the_static_key_acts_as_the_owner_but_has_no_keys_of_its_own(tmp_path, redis_url):
    settings = settings_for(tmp_path, redis_url, api_key="automation-key")
    with TestClient(create_app(settings), headers={"X-API-Key": "automation-key"}) as client:
        assert client.get("/auth/me").json() == {"id": None, "username": "MEDIASEARCH_API_KEY", "role": "owner",
                                                 "via": "static_key"}
        assert client.get("/auth/users").json() == []
        refused = client.post("/auth/api-keys", json={"name": "x"})
        assert refused.status_code == 403 and "sign in as a user" in refused.json()["detail"]


def test_invited_members_see_the_library_but_not_the_accounts(gateway):
    set_up(gateway)
    invitation = gateway.post("/auth/invitations", json={"expires_in_hours": 24}, headers=SAME_ORIGIN).json()
    assert gateway.get("/auth/invitations").json() == [
        {"id": invitation["id"], "created_at": invitation["created_at"], "expires_at": invitation["expires_at"]}]
    bob = another_client(gateway)
    new_member = {"token": invitation["token"], "username": "bob", "password": "bob's password"}
    assert bob.post("/auth/invitations/accept", json={**new_member, "token": "made-up"}).status_code == 401
    assert bob.post("/auth/invitations/accept", json={**new_member, "username": OWNER}).status_code == 409
    # A taken name leaves the invitation usable.
    accepted = bob.post("/auth/invitations/accept", json=new_member)
    assert accepted.status_code == 201 and accepted.json()["role"] == "member"
    assert bob.post("/auth/invitations/accept", json={**new_member, "username": "carol"}).status_code == 401  # used
    assert gateway.get("/auth/invitations").json() == []
    assert bob.get("/jobs").status_code == 200 and bob.get("/collections").status_code == 200
    for path in ("/auth/users", "/auth/invitations", "/auth/audit"):
        assert bob.get(path).status_code == 403, path
    assert bob.post("/auth/invitations", json={}, headers=SAME_ORIGIN).status_code == 403
    users = gateway.get("/auth/users").json()
    assert [(u["username"], u["role"]) for u in users] == [(OWNER, "owner"), ("bob", "member")]
    assert gateway.delete(f"/auth/users/{users[0]['id']}", headers=SAME_ORIGIN).status_code == 409  # not the owner
    assert gateway.delete(f"/auth/users/{users[1]['id']}", headers=SAME_ORIGIN).status_code == 204
    assert bob.get("/jobs").status_code == 401  # removed: the session went with the account
    revoked = gateway.post("/auth/invitations", json={}, headers=SAME_ORIGIN).json()
    assert gateway.delete(f"/auth/invitations/{revoked['id']}", headers=SAME_ORIGIN).status_code == 204
    late = {"token": revoked["token"], "username": "dave", "password": "dave's password"}
    assert another_client(gateway).post("/auth/invitations/accept", json=late).status_code == 401
    actions = [e["action"] for e in gateway.get("/auth/audit").json()["events"]]
    assert {"invitation created", "invitation accepted", "user removed", "invitation revoked"} <= set(actions)


def test_the_audit_log_records_deletes_and_pages_back(gateway):
    set_up(gateway)
    made = gateway.post("/collections", json={"name": "old", "media_ids": []}, headers=SAME_ORIGIN).json()
    assert gateway.delete(f"/collections/{made['id']}", headers=SAME_ORIGIN).status_code == 204
    newest = gateway.get("/auth/audit", params={"limit": 1}).json()
    assert [(e["actor"], e["action"], e["target"]) for e in newest["events"]] == [
        (OWNER, "collection deleted", f"collection {made['id']}")]
    assert newest["events"][0]["client"] == "testclient"
    older = gateway.get("/auth/audit", params={"limit": 1, "before": newest["next_before"]}).json()
    assert [e["action"] for e in older["events"]] == ["setup"] and older["next_before"] is not None
    assert gateway.get("/auth/audit", params={"before": older["next_before"]}).json() == {"events": [], "next_before": None}


def test_an_unknown_host_name_is_refused_with_a_page_naming_the_setting(tmp_path, redis_url):
    settings = settings_for(tmp_path, redis_url, allowed_hosts=["photos.example.org", ".home.arpa"])
    with TestClient(create_app(settings)) as client:
        rebound = client.get("/health", headers={"Host": "attacker.example"})
        assert rebound.status_code == 400 and "MEDIASEARCH_ALLOWED_HOSTS" in rebound.json()["detail"]
        page = client.get("/", headers={"Host": "attacker.example:8000", "Accept": "text/html"})
        assert page.status_code == 400 and "MEDIASEARCH_ALLOWED_HOSTS" in page.text and "<h1>" in page.text
        for host in ("127.0.0.1:8000", "[::1]:8000", "192.168.1.20", "localhost:8000", "app.localhost",
                     "photos.example.org", "nas.home.arpa", "home.arpa"):
            assert client.get("/health", headers={"Host": host}).status_code == 200, host
        assert client.get("/health", headers={"Host": "example.org"}).status_code == 400


def test_behind_a_trusted_proxy_the_cookie_is_secure_and_the_client_is_the_forwarded_one(tmp_path, redis_url):
    settings = settings_for(tmp_path, redis_url, api_key=None, trusted_proxies=["10.0.0.0/8"])
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9, 10.0.0.3"}
    with (TestClient(create_app(settings), client=("10.0.0.2", 4000)) as proxied,
          TestClient(proxied.app, client=("192.0.2.7", 4000)) as direct):
        reply = proxied.post("/auth/setup", headers=forwarded,
                             json={"token": setup_token(proxied), "username": OWNER, "password": OWNER_PASSWORD})
        assert "Secure" in reply.headers["set-cookie"]
        conn = proxied.app.state.gateway.catalog()
        assert accounts.audit_events(conn, 1)[0]["client"] == "203.0.113.9"
        spoofed = direct.post("/auth/sign-in", headers=forwarded, json={"username": OWNER, "password": OWNER_PASSWORD})
        assert "Secure" not in spoofed.headers["set-cookie"]  # not from a trusted proxy: its headers are not believed
        assert accounts.audit_events(conn, 1)[0]["client"] == "192.0.2.7"


def test_a_forgotten_password_is_reset_by_a_command_on_the_server(gateway):
    set_up(gateway)
    settings = gateway.app.state.gateway.settings
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MEDIASEARCH_")},
           "MEDIASEARCH_DATA_DIR": str(settings.data_dir), "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "services.gateway.accounts_cli"]
    unknown = subprocess.run([*command, "reset-password", "nobody"], env=env, cwd=settings.data_dir,
                             capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 1 and "no user named 'nobody' (users: ann)" in unknown.stderr
    done = subprocess.run([*command, "reset-password", OWNER], env=env, cwd=settings.data_dir, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    password = done.stdout.split(f"New password for {OWNER}: ")[1].split()[0]
    assert gateway.get("/auth/me").status_code == 401  # signed out everywhere
    assert gateway.post("/auth/sign-in", json={"username": OWNER, "password": OWNER_PASSWORD}).status_code == 401
    assert gateway.post("/auth/sign-in", json={"username": OWNER, "password": password}).status_code == 200
    events = [(e["actor"], e["action"], e["target"]) for e in gateway.get("/auth/audit").json()["events"]]
    assert ("server", "password reset", f"user {OWNER}") in events
