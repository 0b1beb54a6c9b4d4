"""Helpers of the browser tests: pages of the web UI in headless Chromium (the ``browser`` fixture is in
this folder's conftest.py), with their uncaught errors collected and screenshots saved."""

from __future__ import annotations

from playwright.sync_api import Browser, Page

from tests.conftest import TEST_OUTPUT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = TEST_OUTPUT / "screenshots"
UI_TIMEOUT_MS = 20_000

# Records every seek the page's media elements finish, with the position they landed on.
RECORD_SEEKS = """
window.__seeks = [];
document.addEventListener("seeked", (event) => window.__seeks.push(event.target.currentTime), true);
"""


def open_page(browser: Browser, base_url: str, width: int = 1280, height: int = 860) -> Page:
    context = browser.new_context(base_url=base_url, viewport={"width": width, "height": height})
    context.set_default_timeout(UI_TIMEOUT_MS)
    context.add_init_script(RECORD_SEEKS)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto("/")
    return page


def close_page(page: Page) -> None:
    errors = list(page.errors)
    page.context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def shot(page: Page, name: str, full_page: bool = False) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)
