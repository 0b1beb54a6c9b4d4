"""The Albums and Duplicates views in a real headless Chromium against a private real stack: albums
with covers and names from the vocabulary, an album's media, a rename that survives a reload; a
duplicate group shown side by side and its extras deleted. Screenshots go to test-output/screenshots/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.pages import UI_TIMEOUT_MS, close_page, open_page, shot
from tests.conftest import RunningStack, running_stack, wait_for
from tests.holiday import STACK_ENV, Holiday, upload_holiday

SETTLE_MS = 180_000
NEAR_COPY = re.compile(r"Near copy · [01]\.\d{3}")  # the score: 1 - differing hash bits / 64


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_clip_dir) -> RunningStack:
    with running_stack(tmp_path_factory.mktemp("organise-ui"), tiny_clip_dir, "organise-ui", **STACK_ENV) as running:
        yield running


@pytest.fixture(scope="module")
def holiday(stack) -> Holiday:
    return upload_holiday(stack)


@pytest.fixture
def page(browser, stack) -> Page:
    expect.set_options(timeout=UI_TIMEOUT_MS)  # several test stacks may share the machine's two cores
    page = open_page(browser, stack)
    yield page
    close_page(page)
    expect.set_options(timeout=5_000)


def organised(stack: RunningStack) -> None:
    wait_for(lambda: not stack.client.get("/clusters").json()["pending"], SETTLE_MS / 1000, interval=0.5,
             message="albums to be organised")


def test_albums_view_shows_labelled_albums_and_a_rename_sticks(page: Page, stack: RunningStack,
                                                               holiday: Holiday):
    organised(stack)
    albums = stack.client.get("/clusters").json()["clusters"]
    page.get_by_role("link", name="Albums").click()
    expect(page).to_have_url(f"{stack.url}/#albums")
    expect(page.locator("#search-heading")).to_be_hidden()
    cards = page.locator('.album-card[data-kind="clusters"]')
    expect(cards).to_have_count(len(albums))
    for album in albums:
        card = page.locator(f'.album-card[data-kind="clusters"][data-id="{album["id"]}"]')
        expect(card.locator(".album-title")).to_have_text(album["title"])
        expect(card.locator(".album-cover img")).to_have_count(min(4, len(album["cover_urls"])))
    expect(page.locator('.album-card[data-kind="collections"]').filter(has_text="holiday")).to_contain_text("7 items")
    page.wait_for_function("() => [...document.querySelectorAll('.album-cover img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    shot(page, "organise-01-albums")

    birds = next(album for album in albums if album["size"] == 3)
    page.locator(f'.album-card[data-kind="clusters"][data-id="{birds["id"]}"] .album-open').click()
    expect(page.locator(".album-heading")).to_have_text(birds["title"])
    expect(page.locator(".member-grid .member")).to_have_count(3)
    page.get_by_label("Name", exact=True).fill("Garden birds")
    page.get_by_role("button", name="Rename").click()
    expect(page.locator(".album-heading")).to_have_text("Garden birds")
    expect(page.locator(".rename-form [role=status]")).to_have_text("Saved.")
    shot(page, "organise-02-album-renamed")

    page.reload()
    expect(page.locator(f'.album-card[data-kind="clusters"][data-id="{birds["id"]}"] .album-title')) \
        .to_have_text("Garden birds")
    assert stack.client.get(f"/clusters/{birds['id']}").json()["name"] == "Garden birds"


def test_duplicates_view_shows_copies_side_by_side_and_deletes_the_extras(page: Page, stack: RunningStack,
                                                                          holiday: Holiday):
    page.get_by_role("link", name="Duplicates").click()
    group = page.locator(".dup-groups").first.locator(".dup-group")
    expect(group).to_have_count(1)
    members = group.locator(".dup-member")
    expect(members).to_have_count(4)
    expect(members.locator(".match-badge")).to_have_text(
        ["Best copy", "Same file · 1.000", NEAR_COPY, NEAR_COPY])
    boxes = [members.nth(i).bounding_box() for i in range(4)]
    assert all(box["y"] == boxes[0]["y"] for box in boxes)  # side by side
    assert [box["x"] for box in boxes] == sorted(box["x"] for box in boxes)
    expect(group.locator('input[type=radio]:checked')).to_have_value(str(holiday.bird))
    page.wait_for_function("() => [...document.querySelectorAll('.dup-thumb img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    shot(page, "organise-03-duplicates")

    delete = group.locator(".dup-actions button")
    expect(delete).to_have_text("Delete 2 extras")
    delete.click()
    expect(delete).to_have_text("Really delete 2 files?")
    with page.expect_response(lambda r: r.url.endswith("/media/delete")) as reply:
        delete.click()
    assert reply.value.status == 200 and sorted(d["id"] for d in reply.value.json()["deleted"]) == sorted(holiday.copies)
    expect(page.locator(".library-status")).to_have_text("No duplicates to clean up.")
    stored_once = page.locator(".dup-stored-once")
    expect(stored_once).to_be_visible()
    stored_once.locator("summary").click()
    expect(stored_once.locator(".match-badge")).to_have_text(["Best copy", "Same file · 1.000"])
    shot(page, "organise-04-duplicates-cleaned")
    for media_id in holiday.copies:
        assert stack.client.get(f"/media/{media_id}").status_code == 404
    assert stack.client.get(f"/media/{holiday.bird}").status_code == 200


def test_library_views_fit_a_narrow_screen(browser, stack: RunningStack, holiday: Holiday):
    page = open_page(browser, stack, width=390, height=844)
    try:
        for view in ("albums", "duplicates"):
            page.get_by_role("link", name=view.capitalize()).click()
            expect(page.locator(f"#{view}-view .library-status")).not_to_be_empty()
            assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
            shot(page, f"organise-05-narrow-{view}", full_page=True)
    finally:
        close_page(page)
