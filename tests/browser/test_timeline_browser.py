"""The library timeline, the home page while nothing is searched, in headless Chromium against the real
stack: photos with EXIF dates in eight months, uploaded through the API and read by the real worker,
shown newest first under month headings; further pages load as the page scrolls; the date scrubber jumps
to a month; the capture filters in the filter bar narrow the timeline and search; the preview says when
(and by what clock), with what and where a photo was taken."""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests.browser.pages import close_page, open_page, shot
from tests.conftest import RunningStack
from tests.samples import PHOTOS

INDEXING_TIMEOUT_S = 180
PARIS = {1: "N", 2: (48.0, 51.0, 29.4), 3: "E", 4: (2.0, 17.0, 40.2)}
CANON = ("Canon", "Canon EOS R5")
PIXEL = ("Google", "Pixel 7")
# (EXIF DateTimeOriginal, OffsetTimeOriginal, camera, GPS), newest first
SHOTS = [("2021:11:20 10:00:00", "+01:00", CANON, PARIS),
         ("2021:08:03 18:45:00", "+02:00", CANON, None),
         ("2021:03:14 09:26:53", None, PIXEL, None),
         ("2020:12:24 20:00:00", "-05:00", CANON, None),
         ("2020:07:01 12:00:00", None, PIXEL, None),
         ("2020:02:29 07:30:00", "+09:00", PIXEL, None),
         ("2019:10:05 16:10:00", None, None, None),
         ("2019:06:21 05:00:00", "+00:00", PIXEL, None)]
MONTHS = ["2021-11", "2021-08", "2021-03", "2020-12", "2020-07", "2020-02", "2019-10", "2019-06"]


@dataclass
class DatedPhotos:
    folder: str  # a folder of their own: the session's stack holds other tests' media too
    ids: list[int]  # media ids, newest first


def dated_photo(source, taken: str, offset: str | None, camera: tuple[str, str] | None, gps: dict | None,
                tag: str) -> bytes:
    block = Image.Exif()
    block[0x010E] = tag  # ImageDescription: bytes no other test's upload has
    if camera:
        block[0x010F], block[0x0110] = camera
    block.get_ifd(0x8769)[0x9003] = taken
    if offset:
        block.get_ifd(0x8769)[0x9011] = offset
    if gps:
        block.get_ifd(0x8825).update(gps)
    out = io.BytesIO()
    Image.open(source).convert("RGB").save(out, "JPEG", quality=85, exif=block)
    return out.getvalue()


@pytest.fixture(scope="module")
def dated(live_stack: RunningStack) -> DatedPhotos:
    folder = f"camera-roll-{uuid.uuid4().hex[:8]}"
    sources = sorted(PHOTOS.glob("*.JPEG"))[200:200 + len(SHOTS)]
    files = [(f"{folder}/IMG_{index:04d}.jpg", dated_photo(source, *shot_, folder))
             for index, (source, shot_) in enumerate(zip(sources, SHOTS))]
    job = live_stack.wait_job(live_stack.upload(files), INDEXING_TIMEOUT_S)
    assert job["indexed"] == len(SHOTS), job
    listing = live_stack.client.get("/media", params={"folder": folder}).json()["items"]
    assert [item["taken_at"][:7] for item in listing] == MONTHS  # the real worker read every date
    return DatedPhotos(folder, [item["id"] for item in listing])


def month_order(page: Page) -> list[str]:
    return page.locator("#library-timeline .lib-month").evaluate_all("nodes => nodes.map(n => n.dataset.month)")


def loaded_ids(page: Page) -> list[int]:
    return [int(i) for i in page.locator("#library-timeline .lib-item").evaluate_all(
        "nodes => nodes.map(n => n.dataset.mediaId)")]


def test_the_home_page_is_the_timeline_newest_first_and_scrolling_loads_the_rest(browser, live_stack, dated):
    page = open_page(browser, live_stack, width=390, height=600)
    try:
        pages_asked: list[str] = []
        page.on("request", lambda r: pages_asked.append(r.url) if "/media?" in r.url else None)
        page.goto(f"/?folder={dated.folder}&page_size=1")
        timeline = page.locator("#library-timeline")
        expect(timeline.locator(".lib-month").first).to_be_visible()
        expect(page.locator("#results-message")).to_be_hidden()
        expect(timeline).not_to_have_attribute("aria-busy", "true")
        before_scrolling = len(loaded_ids(page))
        assert 0 < before_scrolling < len(SHOTS)  # only what is near the viewport was asked for
        shot(page, "timeline-01-home-narrow")

        # Scroll down until the last page is in; on a phone the upload and jobs panels follow the timeline,
        # so a big step can jump past the end of the grid: that loads the next page too.
        for _ in range(20):
            if len(loaded_ids(page)) == len(SHOTS):
                break
            page.mouse.wheel(0, 1500)
            page.wait_for_function("() => !document.getElementById('library-timeline').hasAttribute('aria-busy')")
        expect(timeline.locator(".lib-item")).to_have_count(len(SHOTS))
        assert loaded_ids(page) == dated.ids
        assert month_order(page) == MONTHS
        expect(timeline.locator(".lib-month-title").first).to_have_text(
            page.evaluate("new Intl.DateTimeFormat(undefined, {month: 'long', year: 'numeric'}).format(new Date(2021, 10, 1))"))
        assert sum("cursor=" in url for url in pages_asked) == len(SHOTS) - 1  # a page at a time, by cursor
    finally:
        close_page(page)


def test_the_scrubber_jumps_to_a_month_and_back(browser, live_stack, dated):
    page = open_page(browser, live_stack)
    try:
        page.goto(f"/?folder={dated.folder}")
        timeline = page.locator("#library-timeline")
        expect(timeline.locator(".lib-item")).to_have_count(len(SHOTS))
        scrubber = timeline.locator(".lib-scrubber")
        expect(scrubber.locator(".lib-year-button")).to_have_text(["2021", "2020", "2019"])
        shot(page, "timeline-02-home-wide")

        with page.expect_response(lambda r: "/media?" in r.url and "taken_before=2020-12-31" in r.url) as jumped:
            scrubber.locator('.lib-month-button[data-month="2020-12"]').click()
        assert jumped.value.status == 200
        expect(timeline.locator(".lib-item")).to_have_count(5)
        assert month_order(page) == MONTHS[3:]
        expect(scrubber.locator('.lib-month-button[data-month="2020-12"]')).to_have_attribute("aria-current", "true")
        shot(page, "timeline-03-jumped")

        timeline.get_by_role("button", name="Back to the newest").click()
        expect(timeline.locator(".lib-item")).to_have_count(len(SHOTS))
        assert month_order(page)[0] == MONTHS[0]
    finally:
        close_page(page)


def test_capture_filters_narrow_the_timeline_and_search_inside_the_index(browser, live_stack, dated):
    page = open_page(browser, live_stack)
    try:
        page.goto(f"/?folder={dated.folder}")
        timeline = page.locator("#library-timeline")
        expect(timeline.locator(".lib-item")).to_have_count(len(SHOTS))
        canon = [dated.ids[i] for i, shot_ in enumerate(SHOTS) if shot_[2] == CANON]

        page.fill("#camera-filter", "canon eos r5")
        page.locator("#camera-filter").press("Enter")
        expect(timeline.locator(".lib-item")).to_have_count(len(canon))
        assert loaded_ids(page) == canon
        page.fill("#taken-after", "2021-01-01")  # a date input: the whole day, as its month reads
        page.locator("#taken-after").dispatch_event("change")
        expect(timeline.locator(".lib-item")).to_have_count(2)
        assert "taken_after=2021-01-01" in page.url and "camera=canon+eos+r5" in page.url

        # The same filters search inside the index: every match, and only matches, come back.
        with page.expect_response(lambda r: "/search?" in r.url and "q=" in r.url) as reply:
            page.fill("#search-input", "a photo")
        results = reply.value.json()["results"]
        assert sorted(r["media_id"] for r in results) == sorted(canon[:2])
        expect(timeline).to_be_hidden()
        expect(page.locator("#results .result")).to_have_count(2)

        page.fill("#near-filter", "north")
        with page.expect_response(lambda r: "/search?" in r.url and "near=north" in r.url) as refused:
            page.locator("#near-filter").press("Enter")
        assert refused.value.status == 422
        expect(page.locator("#results-message")).to_contain_text("near must be lat,lon,km")
    finally:
        close_page(page)


def test_the_preview_says_when_with_what_and_where_a_photo_was_taken(browser, live_stack, dated):
    info = live_stack.client.get(f"/media/{dated.ids[0]}").json()
    assert info["taken_at"] == "2021-11-20T10:00:00+01:00" and info["taken_at_source"] == "exif"
    assert info["camera"] == "Canon EOS R5" and info["gps"] == {"lat": pytest.approx(48.858167),
                                                                "lon": pytest.approx(2.294500)}
    page = open_page(browser, live_stack)
    try:
        page.goto(f"/?folder={dated.folder}")
        page.locator(f'#library-timeline .lib-item[data-media-id="{dated.ids[0]}"] button').click()
        dialog = page.locator("dialog#preview")
        expect(dialog).to_be_visible()
        meta = dialog.locator("#preview-meta")
        expect(meta).to_contain_text("Canon EOS R5")
        expect(meta).to_contain_text("2021")
        expect(meta).to_contain_text("(UTC+01:00) (from the photo's EXIF)")
        expect(meta).to_contain_text("48.85817, 2.29450")
        expect(meta).not_to_contain_text("Similarity")  # opened from the library, not a search
        shot(page, "timeline-04-preview")

        dialog.get_by_role("button", name="Next result").click()  # steps through the timeline's order
        expect(dialog.locator("#preview-title")).to_have_text(f"{dated.folder}/IMG_0001.jpg")
        expect(meta).to_contain_text("(UTC+02:00)")
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
    finally:
        close_page(page)
