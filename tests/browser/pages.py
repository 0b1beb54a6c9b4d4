"""Helpers of the browser tests: pages of the web UI in headless Chromium (the ``browser`` fixture is in
this folder's conftest.py), signed in as the owner unless asked otherwise, with their uncaught errors
collected and screenshots saved."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, expect

from tests.conftest import TEST_OUTPUT, RunningStack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = TEST_OUTPUT / "screenshots"
UI_TIMEOUT_MS = 20_000

# The owner account every browser test signs in with (made on first use of each stack).
OWNER = "owner"
OWNER_PASSWORD = "correct horse battery staple"
SESSION_COOKIE = "mediasearch_session"

# Records every seek the page's media elements finish, with the position they landed on.
RECORD_SEEKS = """
window.__seeks = [];
document.addEventListener("seeked", (event) => window.__seeks.push(event.target.currentTime), true);
"""


def setup_token(stack: RunningStack) -> str:
    """The one-time token the gateway wrote at first start, as the person running the server reads it."""
    return (Path(stack.settings.data_path) / "secrets" / "setup.token").read_text().strip()


def owner_session(stack: RunningStack) -> str:
    """A new session cookie of the owner: the owner is created first when the stack has none yet.

    Through the API without the stack's static key, as a browser would; stacks are shared by tests, so
    whichever test comes first sets up and the rest sign in.
    """
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        credentials = {"username": OWNER, "password": OWNER_PASSWORD}
        if client.get("/auth/setup").json()["needed"]:
            reply = client.post("/auth/setup", json={"token": setup_token(stack), **credentials})
            assert reply.status_code == 201, reply.text
        else:
            reply = client.post("/auth/sign-in", json=credentials)
            assert reply.status_code == 200, reply.text
        return reply.cookies[SESSION_COOKIE]


def new_page(browser: Browser, base_url: str, width: int = 1280, height: int = 860) -> Page:
    """A page in a context of its own (no cookies yet), not opened anywhere."""
    context = browser.new_context(base_url=base_url, viewport={"width": width, "height": height})
    context.set_default_timeout(UI_TIMEOUT_MS)
    context.add_init_script(RECORD_SEEKS)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    return page


def open_page(browser: Browser, stack: RunningStack, width: int = 1280, height: int = 860,
              signed_in: bool = True) -> Page:
    """The app's page, signed in as the owner (the session cookie put in the context before it loads)."""
    page = new_page(browser, stack.url, width, height)
    if signed_in:
        page.context.add_cookies([{"name": SESSION_COOKIE, "value": owner_session(stack), "url": stack.url,
                                   "httpOnly": True, "sameSite": "Strict"}])
    page.goto("/")
    if signed_in:
        page.locator("#app").wait_for(state="visible")
    return page


def close_page(page: Page) -> None:
    errors = list(page.errors)
    page.context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def shot(page: Page, name: str, full_page: bool = False) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


def run_search(page: Page, query: str, folder: str | None = None) -> dict:
    """Type a query (results come as you type) and return the search reply the page rendered."""
    if folder is not None:
        page.fill("#folder-filter", folder)
    with page.expect_response(lambda r: "/search?" in r.url and "q=" in r.url) as reply:
        page.fill("#search-input", query)
    assert reply.value.status == 200, reply.value.text()
    body = reply.value.json()
    expect(page.locator("#results .result")).to_have_count(len(body["results"]))
    return body
