"""Accounts in a real headless Chromium against a private real stack, from its very first start: the
setup page that needs the token from the server, sign-out and sign-in (throttled after failures), API
keys shown once and revoked, a password change, a session ended elsewhere, and an invited member who
sees no owner sections and is signed out when removed. Screenshots go to test-output/screenshots/."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.pages import OWNER, OWNER_PASSWORD, close_page, new_page, open_page, setup_token, shot
from tests.conftest import RunningStack, running_stack

NEW_PASSWORD = "a brand new passphrase"
MEMBER = "alex.m"
MEMBER_PASSWORD = "alex's own password"
ENDED = "Your session has ended"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_clip_dir) -> RunningStack:
    """A stack of this module's own: the first test finds it with no account at all."""
    with running_stack(tmp_path_factory.mktemp("accounts-ui"), tiny_clip_dir, "accounts-ui") as running:
        yield running


def anonymous(stack: RunningStack) -> httpx.Client:
    """A client that is nobody (the stack's own client carries the static key)."""
    return httpx.Client(base_url=stack.url, timeout=60)


def sign_in(page: Page, username: str, password: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def guess_until_throttled(stack: RunningStack, username: str, min_wait_s: int) -> int:
    """Wrong passwords (waiting out each backoff) until the next try must wait min_wait_s; returns that wait."""
    with anonymous(stack) as client:
        while True:
            reply = client.post("/auth/sign-in", json={"username": username, "password": "a wrong guess"})
            assert reply.status_code in (401, 429), reply.text
            if reply.status_code == 429:
                wait = int(reply.headers["Retry-After"])
                if wait >= min_wait_s:
                    return wait
                time.sleep(wait)


def test_first_start_sign_out_sign_in_api_keys_and_password(browser, stack: RunningStack):
    page = new_page(browser, stack.url)
    try:
        page.goto("/")
        expect(page.get_by_role("heading", name="Set up mediasearch")).to_be_visible()
        expect(page.locator("#app")).to_be_hidden()
        expect(page.get_by_label("Setup token")).to_be_focused()
        expect(page.locator(".auth-card")).to_contain_text("secrets/setup.token")
        shot(page, "accounts-01-setup")

        message = page.locator(".auth-form .form-message")
        submit = page.get_by_role("button", name="Create owner account")
        page.get_by_label("Setup token").fill("not-the-token")
        page.get_by_label("Username").fill(OWNER)
        page.get_by_label("Password", exact=True).fill(OWNER_PASSWORD)
        page.get_by_label("Password again").fill(OWNER_PASSWORD + "!")
        submit.click()
        expect(message).to_have_text("The two passwords are not the same.")  # said before anything is sent
        page.get_by_label("Password again").fill(OWNER_PASSWORD)
        with page.expect_response(lambda r: r.url.endswith("/auth/setup") and r.request.method == "POST") as refused:
            submit.click()
        assert refused.value.status == 401, refused.value.text()
        expect(message).to_have_text(refused.value.json()["detail"])
        expect(page.get_by_label("Setup token")).to_be_focused()
        shot(page, "accounts-02-setup-wrong-token")
        with anonymous(stack) as client:
            assert client.get("/auth/setup").json() == {"needed": True}

        page.get_by_label("Setup token").fill(setup_token(stack))
        submit.click()
        account = page.get_by_role("button", name="Account")
        expect(page.locator("#account-name")).to_have_text(OWNER)
        expect(page.locator("#search-input")).to_be_visible()
        # The app works as before: the full health document (its banner) and the jobs need the session.
        expect(page.locator('[data-banner="weights"]')).to_be_visible()
        expect(page.locator("#jobs-empty")).to_be_visible()
        assert page.evaluate("localStorage.length") == 0  # nothing secret (or not) kept in the browser
        shot(page, "accounts-03-signed-in")

        account.click()
        dialog = page.locator("dialog#account")
        expect(dialog.locator(".account-username")).to_have_text(OWNER)
        expect(dialog.locator(".account-role")).to_have_text("Owner")
        dialog.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        expect(page.locator(".auth-notice")).to_have_text("You signed out.")
        expect(page.locator("#app")).to_be_hidden()
        assert page.evaluate("fetch('auth/me').then((r) => r.status)") == 401  # the cookie is gone

        with page.expect_response(lambda r: r.url.endswith("/auth/sign-in")) as wrong:
            sign_in(page, OWNER, "not my password")
        assert wrong.value.status == 401, wrong.value.text()
        expect(page.locator(".auth-form .form-message")).to_have_text(wrong.value.json()["detail"])
        expect(page.get_by_label("Password", exact=True)).to_be_focused()
        shot(page, "accounts-04-sign-in-wrong-password")

        # Someone guessing: after a few free failures each one makes the next try wait, the right password too.
        retry_after = guess_until_throttled(stack, OWNER, min_wait_s=4)
        with page.expect_response(lambda r: r.url.endswith("/auth/sign-in")) as throttled:
            sign_in(page, OWNER, OWNER_PASSWORD)
        assert throttled.value.status == 429, throttled.value.text()
        expect(page.locator(".auth-form .form-message")).to_have_text(throttled.value.json()["detail"])
        shot(page, "accounts-05-sign-in-throttled")
        time.sleep(retry_after)  # as long as the server said
        sign_in(page, OWNER, OWNER_PASSWORD)
        expect(page.locator("#account-name")).to_have_text(OWNER)

        # An API key: the whole key shown once, then only its prefix; it works until it is revoked.
        account.click()
        keys = dialog.locator('[data-section="keys"]')
        expect(keys).to_contain_text("No API keys yet.")
        keys.get_by_label("New key name").fill("backup script")
        with page.expect_response(lambda r: r.url.endswith("/auth/api-keys") and r.request.method == "POST") as made:
            keys.get_by_role("button", name="Create key").click()
        assert made.value.status == 201, made.value.text()
        key, prefix = made.value.json()["key"], made.value.json()["prefix"]
        box = keys.locator(".secret-box")
        expect(box.locator("input")).to_have_value(key)
        expect(box).to_contain_text("it will not be shown again")
        box.get_by_role("button", name="Copy").click()
        expect(box.get_by_role("status")).to_have_text(re.compile(r"Copied\.|copy it by hand"))
        row = keys.locator("tbody tr").filter(has_text="backup script")
        expect(row).to_contain_text(prefix)
        expect(row).to_contain_text("never")
        assert key not in row.inner_text()
        shot(page, "accounts-06-api-key-created")
        with anonymous(stack) as client:
            me = client.get("/auth/me", headers={"X-API-Key": key})
            assert me.status_code == 200, me.text
            assert me.json()["username"] == OWNER and me.json()["via"] == "api_key"

        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        expect(account).to_be_focused()
        account.click()
        expect(keys.locator(".secret-box")).to_have_count(0)  # shown once: gone once the dialog closed
        expect(row).to_contain_text(prefix)
        expect(row).not_to_contain_text("never")  # used just now
        row.get_by_role("button", name="Revoke key backup script").click()
        row.get_by_role("button", name="Really revoke key backup script?").click()
        expect(keys).to_contain_text("No API keys yet.")
        with anonymous(stack) as client:
            assert client.get("/auth/me", headers={"X-API-Key": key}).status_code == 401

        # A password change keeps this session; changing it back elsewhere signs this page out.
        password = dialog.locator('[data-section="password"]')
        password.get_by_label("Current password").fill(OWNER_PASSWORD)
        password.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
        password.get_by_label("New password again").fill(NEW_PASSWORD)
        password.get_by_role("button", name="Change password").click()
        expect(password.locator(".form-message")).to_have_text("Password changed.")
        with anonymous(stack) as client:
            assert client.post("/auth/sign-in", json={"username": OWNER, "password": OWNER_PASSWORD}).status_code == 401
            reply = client.post("/auth/sign-in", json={"username": OWNER, "password": NEW_PASSWORD})
            assert reply.status_code == 200, reply.text
            reply = client.post("/auth/password", json={"current_password": NEW_PASSWORD, "new_password": OWNER_PASSWORD},
                                headers={"Origin": stack.url})
            assert reply.status_code == 204, reply.text
        page.keyboard.press("Escape")
        page.fill("#search-input", "a dog")  # the first request after that finds the session gone
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        expect(page.locator(".auth-notice")).to_contain_text(ENDED)
        expect(page.get_by_label("Username")).to_have_value(OWNER)
        shot(page, "accounts-07-session-ended")
        sign_in(page, OWNER, OWNER_PASSWORD)
        expect(page.locator("#account-name")).to_have_text(OWNER)
        expect(page.locator("#search-input")).to_have_value("a dog")
    finally:
        close_page(page)


def test_invited_member_signs_up_sees_no_owner_sections_and_is_signed_out_when_removed(browser, stack: RunningStack):
    owner = open_page(browser, stack)
    member = new_page(browser, stack.url)
    late = new_page(browser, stack.url)
    try:
        owner.get_by_role("button", name="Account").click()
        dialog = owner.locator("dialog#account")
        invitations = dialog.locator('[data-section="invitations"]')
        expect(invitations).to_contain_text("No pending invitations.")
        with owner.expect_response(lambda r: r.url.endswith("/auth/invitations") and r.request.method == "POST") as made:
            invitations.get_by_role("button", name="Create invitation link").click()
        assert made.value.status == 201, made.value.text()
        link = f"{stack.url}/#invite={made.value.json()['token']}"
        expect(invitations.locator(".secret-box input")).to_have_value(link)
        expect(invitations.locator("tbody tr")).to_have_count(1)
        shot(owner, "accounts-08-invitation-link")

        member.goto(link)
        expect(member.get_by_role("heading", name="Accept invitation")).to_be_visible()
        expect(member.get_by_label("Username")).to_be_focused()
        shot(member, "accounts-09-accept-invitation")
        member.get_by_label("Username").fill(MEMBER)
        member.get_by_label("Password", exact=True).fill(MEMBER_PASSWORD)
        member.get_by_label("Password again").fill(MEMBER_PASSWORD)
        member.get_by_role("button", name="Create account").click()
        member_account = member.get_by_role("button", name="Account")
        expect(member.locator("#account-name")).to_have_text(MEMBER)
        assert "#invite" not in member.url
        assert member.evaluate("fetch('auth/me').then((r) => r.json())")["role"] == "member"
        member_account.click()
        member_dialog = member.locator("dialog#account")
        expect(member_dialog.locator(".account-role")).to_have_text("Member")
        expect(member_dialog.locator('[data-section="keys"]')).to_be_visible()
        expect(member_dialog.locator('[data-section="password"]')).to_be_visible()
        for section in ("users", "invitations", "audit"):
            expect(member_dialog.locator(f'[data-section="{section}"]')).to_have_count(0)
        shot(member, "accounts-10-member-account")
        member.keyboard.press("Escape")

        # The link worked once.
        late.goto(link)
        late.get_by_label("Username").fill("someone.else")
        late.get_by_label("Password", exact=True).fill(MEMBER_PASSWORD)
        late.get_by_label("Password again").fill(MEMBER_PASSWORD)
        with late.expect_response(lambda r: r.url.endswith("/auth/invitations/accept")) as refused:
            late.get_by_role("button", name="Create account").click()
        assert refused.value.status == 401, refused.value.text()
        expect(late.locator(".auth-form .form-message")).to_have_text(refused.value.json()["detail"])

        # The owner sees the new member, no pending invitation, and what happened in the audit log.
        owner.keyboard.press("Escape")
        owner.get_by_role("button", name="Account").click()
        users = dialog.locator('[data-section="users"]')
        expect(users.locator("tbody tr")).to_have_count(2)
        expect(users.locator("tbody tr").filter(has_text=MEMBER)).to_contain_text("Member")
        expect(invitations).to_contain_text("No pending invitations.")
        audit = dialog.locator('[data-section="audit"]')
        for action in ("setup", "api key created", "api key revoked", "invitation created", "invitation accepted"):
            expect(audit.locator("tbody td").filter(has_text=re.compile(f"^{action}$")).first).to_be_visible()
        audit.scroll_into_view_if_needed()
        shot(owner, "accounts-11-owner-users-and-audit")

        expect(users.get_by_role("button", name=f"Remove {OWNER}")).to_have_count(0)  # the owner stays
        row = users.locator("tbody tr").filter(has_text=MEMBER)
        row.get_by_role("button", name=f"Remove {MEMBER}").click()
        row.get_by_role("button", name=f"Really remove {MEMBER}?").click()
        expect(users.locator("tbody tr")).to_have_count(1)

        member.fill("#search-input", "a cat")  # the member's next request: their session went with them
        expect(member.get_by_role("heading", name="Sign in")).to_be_visible()
        expect(member.locator(".auth-notice")).to_contain_text(ENDED)
    finally:
        for page in (owner, member, late):
            close_page(page)
