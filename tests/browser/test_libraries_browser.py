"""The Libraries panel and the library filter, in headless Chromium against the real stack: a server
folder added by its path is scanned in place, its status and counts go live to Ready, a file that cannot
be read is listed with its reason, the filter bar narrows the timeline to the library, and removing the
library (asked twice) takes its media out of the timeline while its files stay."""

from __future__ import annotations

import shutil
import uuid

from playwright.sync_api import expect

from tests.browser.pages import close_page, open_page, shot
from tests.conftest import SHARED_DATA, RunningStack
from tests.samples import PHOTOS

SCAN_TIMEOUT_MS = 180_000


def library_root(stack: RunningStack):
    return next(root for root in stack.settings.ingest_roots if root != SHARED_DATA)


def test_a_folder_added_in_the_panel_is_indexed_in_place_filtered_by_and_removed(browser, live_stack, tmp_path):
    folder = library_root(live_stack) / f"holidays-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    photos = sorted(PHOTOS.glob("*.JPEG"))[300:303]
    for source in photos:
        shutil.copyfile(source, folder / source.name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    page = open_page(browser, live_stack)
    try:
        panel = page.locator("#libraries-panel")
        panel.get_by_label("Folder on the server").fill(str(folder))
        panel.get_by_label("Name (optional)").fill("Holidays")
        panel.get_by_role("button", name="Add library").click()
        expect(panel.locator(".form-message")).to_contain_text("Added Holidays")

        card = panel.locator("li.library", has_text="Holidays")
        expect(card.locator(".status-badge")).to_have_text("Ready", timeout=SCAN_TIMEOUT_MS)
        expect(card.locator(".count.indexed")).to_have_text(f"{len(photos)} items", timeout=SCAN_TIMEOUT_MS)
        expect(card.locator(".count.failed")).to_have_text("1 failed")
        card.locator("details.job-errors summary").click()
        expect(card.locator(".error-file")).to_contain_text("broken.jpg")
        shot(page, "libraries-panel")

        # The filter bar narrows the timeline to the library's photos, and the URL keeps the choice.
        library_id = card.get_attribute("data-library-id")
        page.select_option("#library-filter", label="Holidays")
        timeline = page.locator("#library-timeline")
        expect(timeline.locator(".lib-item")).to_have_count(len(photos))
        assert f"library={library_id}" in page.url

        card.get_by_role("button", name="Remove the library Holidays").click()
        card.get_by_role("button", name="Really remove Holidays and its media from search? Its files stay.").click()
        # it may wait for a rescan the watcher started to finish
        expect(panel.locator("li.library", has_text="Holidays")).to_have_count(0, timeout=SCAN_TIMEOUT_MS)
        # the removed library is no longer offered, and the timeline no longer narrowed to it
        expect(page.locator("#library-filter option", has_text="Holidays")).to_have_count(0)
        assert live_stack.client.get("/media", params={"library": library_id}).json()["items"] == []
        assert sorted(path.name for path in folder.iterdir()) == sorted([*(p.name for p in photos), "broken.jpg"])
    finally:
        close_page(page)
