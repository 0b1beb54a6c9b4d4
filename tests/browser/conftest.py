"""The browser tier: headless Chromium driven by Playwright against real stacks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.browser.pages import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS


@pytest.fixture(scope="module")
def browser() -> Browser:
    if not Path(CHROMIUM).exists():
        missing = f"{CHROMIUM} is not installed (apt-get install chromium, or `make system-deps` as root)"
        if os.environ.get("CI"):
            pytest.fail(missing)  # CI installs it: a skip there would hide the browser tests
        pytest.skip(missing)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
