"""The web UI in a real headless Chromium against the real stack: folder upload with live job
progress and per-file errors, text search, the video preview starting at the matched moment,
search by a dropped image, "more like this", filters, keyboard use, narrow screens, and what a
person sees when parts of the service are down. Every page is signed in as the owner (pages.py); the
account pages themselves are in test_accounts_browser.py. Screenshots go to test-output/screenshots/."""

from __future__ import annotations

import base64
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.pages import close_page, open_page, run_search, shot
from tests.conftest import RunningStack, running_stack
from tests.hub_server import HubServer, tiny_clip_repository
from tests.samples import PHOTOS, VIDEOS, ffmpeg

PHOTO_NAMES = ["n02099601_golden_retriever.JPEG", "n03888257_parachute.JPEG", "n09428293_seashore.JPEG"]
VIDEO = VIDEOS / "asl_gestures" / "brother.mkv"  # three kept frames: at 0, 1 and 2 s
INDEXING_TIMEOUT_MS = 180_000
SIMILARITY = re.compile(r"^-?\d\.\d{3}$")


@dataclass
class Library:
    folder: str
    job_id: str
    page: Page  # the page the folder was uploaded from, still showing its job
    requests: list[str]


@pytest.fixture
def page(browser, live_stack) -> Page:
    page = open_page(browser, live_stack)
    yield page
    close_page(page)


def make_media_folder(root: Path) -> Path:
    """A folder with sub-folders, three photos, a copy of one, a video and two bad files.

    The session stack is shared: every file gets unique bytes so no other test's upload makes ours
    an exact duplicate (JPEG readers ignore bytes after the image; the video gets a unique title).
    """
    folder = root / f"trip-{uuid.uuid4().hex[:8]}"
    (folder / "beach").mkdir(parents=True)
    (folder / "clips").mkdir()
    tag = f"\n{folder.name}".encode()
    for index, name in enumerate(PHOTO_NAMES):
        target = folder / ("beach" if index < 2 else ".") / name.lower().replace(".jpeg", ".jpg")
        target.write_bytes((PHOTOS / name).read_bytes() + tag)
    shutil.copy(folder / PHOTO_NAMES[2].lower().replace(".jpeg", ".jpg"), folder / "seashore-copy.jpg")
    ffmpeg("-i", str(VIDEO), "-c", "copy", "-metadata", f"title={folder.name}", str(folder / "clips" / VIDEO.name))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    (folder / "notes.txt").write_text("shopping list: bread, milk\n")
    return folder


@pytest.fixture(scope="module")
def library(browser, live_stack: RunningStack, tmp_path_factory) -> Library:
    """A folder uploaded through the page's folder picker and indexed to the end."""
    folder = make_media_folder(tmp_path_factory.mktemp("browser-upload"))
    page = open_page(browser, live_stack)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    with page.expect_response(lambda r: r.url.endswith("/uploads") and r.request.method == "POST") as upload:
        page.set_input_files("#folder-input", folder)
    assert upload.value.status == 202, upload.value.text()
    job_id = upload.value.json()["job_id"]
    job = page.locator(f'.job[data-job-id="{job_id}"]')
    expect(job).to_be_visible()
    shot(page, "02-upload-in-progress")
    expect(job.locator(".status-badge")).to_have_text("Done", timeout=INDEXING_TIMEOUT_MS)
    yield Library(folder.name, job_id, page, requests)
    close_page(page)


def mm_ss(seconds: float) -> str:
    minutes, whole = divmod(int(seconds), 60)
    return f"{minutes:02d}:{whole:02d}"


def test_random_weights_banner_is_loud(page: Page, live_stack):
    assert live_stack.client.get("/health").json()["real_weights"] is False
    banner = page.locator('[data-banner="weights"]')
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("search results are meaningless")
    expect(banner.get_by_role("button", name="Dismiss")).to_have_count(0)
    shot(page, "01-start")


def test_folder_upload_shows_live_progress_counts_and_per_file_errors(library: Library, live_stack):
    page = library.page
    job = page.locator(f'.job[data-job-id="{library.job_id}"]')
    status = live_stack.client.get(f"/jobs/{library.job_id}").json()
    assert status["total"] == 7 and status["failed"] == 2

    expect(page.locator("#upload-progress")).to_contain_text("Uploaded 7 files")
    expect(job.locator(".job-title")).to_have_text(library.folder)
    expect(job.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    expect(job.locator(".job-progress-text")).to_have_text("7 / 7 files")
    expect(job.locator(".count.indexed")).to_have_text(f"{status['indexed']} indexed")
    expect(job.locator(".count.failed")).to_have_text("2 failed")
    # Progress came live from the job's event stream (no reload, no polling needed).
    assert any(url.endswith(f"/jobs/{library.job_id}/events") for url in library.requests)

    errors = job.locator(".job-errors-list li")
    expect(errors).to_have_count(2)
    for error in status["errors"]:
        row = errors.filter(has_text=error["file"])
        expect(row.locator(".error-reason")).to_have_text(error["reason"])
    assert {e["file"] for e in status["errors"]} == {f"{library.folder}/broken.jpg", f"{library.folder}/notes.txt"}
    shot(page, "03-job-done-with-errors")


def test_text_search_shows_thumbnails_with_similarity_and_video_time(page: Page, library: Library):
    reply = run_search(page, "a dog on the beach", folder=library.folder)
    assert len(reply["results"]) == 4  # three photos and one video, grouped into one card
    cards = page.locator("#results .result")
    for index, result in enumerate(reply["results"]):
        card = cards.nth(index)
        expect(card.locator(".badge.similarity")).to_have_text(f"{result['similarity']:.3f}")
        assert SIMILARITY.match(card.locator(".badge.similarity").inner_text())
        expect(card.locator("img")).to_have_attribute("src", result["thumb_url"])
        if result["kind"] == "video":
            expect(card.locator(".badge.time")).to_have_text(mm_ss(result["timestamp"]))
            expect(card.locator(".badge.moments")).to_have_text(f"{len(result['moments'])} moments")
    expect(page.locator("#results-status")).to_contain_text("4 results")
    page.wait_for_function("() => [...document.querySelectorAll('#results img')].every(i => i.complete && i.naturalWidth > 0)")
    shot(page, "04-search-results")


def test_video_preview_starts_at_the_matched_moment_and_timeline_seeks(page: Page, library: Library):
    page.get_by_role("radio", name="Videos").check(force=True)
    page.get_by_label("One card per video").uncheck()
    reply = run_search(page, "a person signing", folder=library.folder)
    frames = sorted(reply["results"], key=lambda r: r["timestamp"])
    assert [r["kind"] for r in frames] == ["video"] * 3
    latest = frames[-1]
    assert latest["timestamp"] > 0

    card = page.locator(f'#results .result[data-frame-id="{latest["frame_id"]}"]')
    card.locator(".result-open").click()
    dialog = page.locator("dialog#preview")
    expect(dialog).to_be_visible()
    video = dialog.locator("video")
    expect(video).to_have_attribute("src", latest["media_url"])
    # The player's first seek lands exactly on the matched moment, and it plays on from there.
    page.wait_for_function("() => window.__seeks.length > 0")
    assert page.evaluate("window.__seeks[0]") == pytest.approx(latest["timestamp"], abs=0.05)
    assert video.evaluate("v => v.currentTime") >= latest["timestamp"] - 0.05
    expect(dialog.locator("#preview-meta")).to_contain_text(mm_ss(latest["timestamp"]))
    shot(page, "05-video-preview")

    # Grouped: one card per video, its moments drawn on a timeline; a marker seeks the player.
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    page.get_by_label("One card per video").check()
    expect(page.locator("#results .result")).to_have_count(1)
    page.locator("#results .result-open").first.click()
    markers = dialog.locator(".timeline-marker")
    expect(markers).to_have_count(3)
    times = markers.evaluate_all("nodes => nodes.map(node => Number(node.dataset.timestamp))")
    assert sorted(times) == pytest.approx([r["timestamp"] for r in frames])
    page.evaluate("window.__seeks = []")
    markers.nth(times.index(latest["timestamp"])).click()
    page.wait_for_function("t => window.__seeks.some(s => Math.abs(s - t) < 0.05)", arg=latest["timestamp"])
    shot(page, "06-video-timeline")


def test_dropping_an_image_on_the_page_searches_by_it(page: Page, library: Library):
    reply = run_search(page, "a golden retriever", folder=library.folder)
    photo = next(r for r in reply["results"] if r["kind"] == "image")
    with page.expect_response(lambda r: "/search/image" in r.url) as image_reply:
        page.evaluate("""async ({url, name}) => {
            const blob = await (await fetch(url)).blob();
            const transfer = new DataTransfer();
            transfer.items.add(new File([blob], name, {type: "image/jpeg"}));
            const target = document.getElementById("results");
            for (const type of ["dragenter", "dragover", "drop"]) {
                target.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true, cancelable: true}));
            }
        }""", {"url": photo["frame_url"], "name": "query-photo.jpg"})
    assert image_reply.value.status == 200, image_reply.value.text()
    results = image_reply.value.json()["results"]
    expect(page.locator("#query-chip")).to_be_visible()
    expect(page.locator("#query-chip-label")).to_have_text("query-photo.jpg")
    expect(page.locator("#results .result")).to_have_count(len(results))
    # The dropped picture is that photo's own frame: it must come first, with similarity ~1.
    assert results[0]["frame_id"] == photo["frame_id"]
    assert results[0]["similarity"] > 0.99
    expect(page.locator("#results-status")).to_contain_text("your image")
    shot(page, "07-search-by-dropped-image")

    page.locator("#query-chip-clear").click()
    expect(page.locator("#query-chip")).to_be_hidden()


def test_more_like_this_searches_by_a_result(page: Page, library: Library):
    reply = run_search(page, "a parachute", folder=library.folder)
    source = reply["results"][0]
    file_name = source["name"].rsplit("/", 1)[-1]
    with page.expect_response(lambda r: f"/search/similar/{source['frame_id']}" in r.url) as similar:
        page.locator("#results .result").first.get_by_role("button", name=f"More like {file_name}").click()
    assert similar.value.status == 200, similar.value.text()
    results = similar.value.json()["results"]
    expect(page.locator("#query-chip-label")).to_contain_text(f"Like {file_name}")
    expect(page.locator("#results .result")).to_have_count(len(results))
    expect(page.locator(f'#results .result[data-frame-id="{source["frame_id"]}"]')).to_have_count(0)


def test_filters_narrow_results_and_explain_an_empty_page(page: Page, library: Library):
    run_search(page, "something", folder=library.folder)
    with page.expect_response(lambda r: "type=image" in r.url):
        page.get_by_role("radio", name="Photos").check(force=True)
    expect(page.locator("#results .result")).to_have_count(3)
    expect(page.locator("#results .result.video")).to_have_count(0)

    # The slider works from the keyboard: End sets the highest minimum similarity.
    with page.expect_response(lambda r: "min_similarity=1" in r.url):
        page.locator("#min-similarity").press("End")
    expect(page.locator("#min-similarity-value")).to_have_text("1.00")
    message = page.locator("#results-message")
    expect(message).to_contain_text("No matches for “something”")
    expect(message).to_contain_text("lower the minimum similarity")
    shot(page, "08-no-results")

    message.get_by_role("button", name="Clear filters").click()
    expect(page.locator("#min-similarity-value")).to_have_text("0.00")
    expect(page.locator("#folder-filter")).to_have_value("")
    expect(page.locator("#results .result").first).to_be_visible()


def test_keyboard_only_search_preview_and_focus_trap(page: Page, library: Library):
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#search-input")).to_be_focused()
    page.fill("#folder-filter", library.folder)
    page.locator("#search-input").focus()
    page.keyboard.type("a seashore")
    page.keyboard.press("Enter")
    first_card = page.locator("#results .result-open").first
    expect(first_card).to_be_visible()

    for _ in range(40):
        if first_card.evaluate("node => node === document.activeElement"):
            break
        page.keyboard.press("Tab")
    expect(first_card).to_be_focused()
    page.keyboard.press("Enter")
    dialog = page.locator("dialog#preview")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Close preview")).to_be_focused()
    for _ in range(12):  # Tab and Shift+Tab never leave the open dialog
        page.keyboard.press("Tab")
        assert dialog.evaluate("d => d.contains(document.activeElement)")
    for _ in range(4):
        page.keyboard.press("Shift+Tab")
        assert dialog.evaluate("d => d.contains(document.activeElement)")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(first_card).to_be_focused()


def test_narrow_screen_has_one_column_and_no_sideways_scrolling(browser, live_stack, library: Library):
    page = open_page(browser, live_stack, width=390, height=844)
    try:
        run_search(page, "a dog", folder=library.folder)
        assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
        columns = page.evaluate("getComputedStyle(document.getElementById('results')).gridTemplateColumns.split(' ').length")
        assert columns == 2
        shot(page, "09-narrow-results", full_page=True)
        page.locator("#results .result-open").first.click()
        expect(page.locator("dialog#preview")).to_be_visible()
        shot(page, "10-narrow-preview")
    finally:
        close_page(page)


def unique_photo(name: str, tag: str) -> bytes:
    """A real photo with bytes no other upload has (JPEG readers ignore what follows the image)."""
    return (PHOTOS / name).read_bytes() + f"\n{tag}".encode()


def test_dropped_files_upload_and_progress_falls_back_to_polling(page: Page, live_stack):
    page.route("**/jobs/*/events", lambda route: route.abort())  # e.g. a proxy that drops event streams
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    tag = uuid.uuid4().hex
    files = [{"name": f"drop-{tag[:6]}-{i}.jpg", "b64": base64.b64encode(unique_photo(name, tag)).decode()}
             for i, name in enumerate(PHOTO_NAMES[:2])]
    with page.expect_response(lambda r: r.url.endswith("/uploads")) as upload:
        page.evaluate("""(files) => {
            const transfer = new DataTransfer();
            for (const {name, b64} of files) {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                transfer.items.add(new File([bytes], name, {type: "image/jpeg"}));
            }
            const zone = document.getElementById("drop-zone");
            for (const type of ["dragenter", "dragover", "drop"]) {
                zone.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true, cancelable: true}));
            }
        }""", files)
    assert upload.value.status == 202, upload.value.text()
    job_id = upload.value.json()["job_id"]
    job = page.locator(f'.job[data-job-id="{job_id}"]')
    expect(job.locator(".status-badge")).to_have_text("Done", timeout=INDEXING_TIMEOUT_MS)
    assert any(url.endswith(f"/jobs/{job_id}/events") for url in requested)
    # One read when the job appeared, then the polls that replaced the refused event stream.
    assert sum(url.endswith(f"/jobs/{job_id}") for url in requested) >= 2
    expect(job.locator(".count.indexed")).to_have_text("2 indexed")
    expect(page.locator("#upload-progress")).to_contain_text("Uploaded 2 files")


def test_dropped_folder_is_walked_with_relative_paths(page: Page):
    """Chromium hands a dropped folder over as FileSystemEntry objects, which a test cannot create:
    these stand-ins follow that API (readEntries in chunks until an empty one, callbacks later)."""
    walked = page.evaluate("""async () => {
        const { collectDropped } = await import("/upload.js");
        const later = (callback, value) => setTimeout(() => callback(value));
        const file = (path) => ({ isFile: true, isDirectory: false, fullPath: `/${path}`,
                                  file: (ok) => later(ok, new File([path], path.split("/").pop())) });
        const folder = (path, children) => ({ isFile: false, isDirectory: true, fullPath: `/${path}`,
            createReader: () => {
                let next = 0;
                return { readEntries: (ok) => { later(ok, children.slice(next, next + 2)); next += 2; } };
            } });
        const album = folder("album", [file("album/a.jpg"), file("album/b.png"),
            folder("album/2024", [file("album/2024/c.mp4")]), file("album/.DS_Store")]);
        const transfer = { items: [{ kind: "file", webkitGetAsEntry: () => album }], files: [] };
        const { hasDirectory, files } = collectDropped(transfer);
        return { hasDirectory, paths: (await files).map((entry) => entry.path) };
    }""")
    assert walked == {"hasDirectory": True,
                      "paths": ["album/a.jpg", "album/b.png", "album/2024/c.mp4", "album/.DS_Store"]}


def test_empty_library_and_services_down_are_explained(browser, fresh_stack: RunningStack):
    page = open_page(browser, fresh_stack)
    try:
        expect(page.locator("#results-message")).to_contain_text("Your library is empty")
        shot(page, "11-empty-library")

        fresh_stack.stack.kill("embedder")
        page.fill("#search-input", "a cat")
        message = page.locator("#results-message")
        expect(message).to_contain_text("Search failed")
        expect(message).to_contain_text("embedder is unavailable")
        page.reload()
        expect(page.locator('[data-banner="services"]')).to_contain_text("embedder")
        shot(page, "12-embedder-down")

        fresh_stack.stack.kill("gateway")
        page.fill("#search-input", "a dog")
        expect(message).to_contain_text("The server is not answering")
        expect(message.get_by_role("button", name="Try again")).to_be_visible()
        expect(page.locator('[data-banner="unreachable"]')).to_contain_text("Service unavailable")
        expect(page.locator('[data-banner="services"]')).to_have_count(0)
        shot(page, "13-server-unreachable")
    finally:
        close_page(page)


def test_the_first_start_s_model_download_shows_its_progress_then_goes(browser, tmp_path, tiny_clip_dir):
    """A newcomer's first start: the UI is up while the embedder downloads the model, says so with its
    progress, and clears the banner once the model is ready. The hub is tests/hub_server.py on loopback."""
    folder, shards = tiny_clip_repository(tiny_clip_dir, tmp_path / "repo")
    with HubServer({"test-org/tiny-clip": folder}, hold=shards[-1]) as hub, running_stack(
            tmp_path / "stack", "test-org/tiny-clip", "download-banner", require_ready=False,
            MEDIASEARCH_CLIP_RANDOM_WEIGHTS="0", MEDIASEARCH_MODEL_DOWNLOAD="1", HF_HUB_OFFLINE="0",
            HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "cache")) as stack:
        page = open_page(browser, stack)
        try:
            banner = page.locator('[data-banner="model"]')
            expect(banner).to_contain_text("Downloading the model (first start).", timeout=60_000)
            expect(banner).to_contain_text("downloading the model test-org/tiny-clip into the model cache: ")
            expect(page.locator('[data-banner="services"]')).to_have_count(0)  # not "down": on its way
            shot(page, "model-download")
            hub.release.set()
            expect(banner).to_have_count(0, timeout=120_000)
            expect(page.locator('[data-banner="weights"]')).to_have_count(0)  # real weights now
        finally:
            close_page(page)
