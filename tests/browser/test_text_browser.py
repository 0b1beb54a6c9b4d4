"""The words in pictures, in the web UI (headless Chromium, a stack of its own reading text: MEDIASEARCH_OCR=1):
a result found by its text says which words matched, the preview lists the frame's text and boxes the
matched lines over the picture, a video moment found by its text plays from that moment, the search mode
(Both / Picture / Words) is sent and kept, the job shows the text read apart from indexing, and text read in
a picture is shown as text, never as markup."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.pages import close_page, open_page, run_search, shot
from tests.conftest import RunningStack, running_stack, wait_for
from tests.samples import FONTS, PHOTOS, jpeg, text_clip, text_picture

SIGNS = {"HARBOUR": (FONTS[0], 96, 0), "Bakery": (FONTS[1], 72, 8)}
CLIP_WORD = "LIGHTHOUSE"  # shown in the clip's third second only
READ_S = 180  # a handful of pictures and frames on a loaded 2-core machine


@pytest.fixture(scope="module")
def text_stack(tmp_path_factory, tiny_clip_dir) -> RunningStack:
    """Two signs, two ordinary photos and a clip with a word in it, indexed and their text read."""
    tmp = tmp_path_factory.mktemp("text-browser")
    with running_stack(tmp, tiny_clip_dir, "text-browser", MEDIASEARCH_OCR="1") as running:
        clip = tmp / "walk.mp4"
        text_clip(clip, [None, None, CLIP_WORD])
        files = [(f"sign-{index}.jpg", jpeg(text_picture(words, font, size, angle, index)))
                 for index, (words, (font, size, angle)) in enumerate(SIGNS.items())]
        files += [(path.name, path.read_bytes()) for path in sorted(PHOTOS.glob("*.JPEG"))[:2]]
        files.append(("walk.mp4", clip.read_bytes()))
        job_id = running.upload(files, folder="signs")
        job = running.wait_job(job_id)
        assert job["status"] == "done" and job["indexed"] == len(files), job
        running.job = wait_for(lambda: (j := running.client.get(f"/jobs/{job_id}").json())["text"]["waiting"] == 0
                               and j, READ_S, interval=0.2, message="the text of every file to be read")
        yield running


@pytest.fixture
def page(browser, text_stack) -> Page:
    page = open_page(browser, text_stack)
    yield page
    close_page(page)


def choose_mode(page: Page, label: str) -> dict:
    """Pick how words are matched; the search runs again: its reply."""
    with page.expect_response(lambda r: "/search?" in r.url and "q=" in r.url) as reply:
        page.get_by_role("radio", name=label).check(force=True)
    assert reply.value.status == 200, reply.value.text()
    body = reply.value.json()
    expect(page.locator("#results .result")).to_have_count(len(body["results"]))
    return body


def test_the_job_shows_the_text_read_apart_from_indexing(page: Page, text_stack):
    job = page.locator(f'.job[data-job-id="{text_stack.job["id"]}"]')
    total = text_stack.job["indexed"]
    expect(job.locator(".job-progress-text")).to_have_text(f"{total} / {total} files")
    expect(job.locator(".job-text .text-read")).to_have_text(f"Text read {total} / {total}")
    expect(job.locator(".job-text .text-failed")).to_be_hidden()


def test_a_word_finds_its_sign_says_so_and_the_preview_boxes_the_matched_line(page: Page):
    reply = run_search(page, "harbour")
    first = reply["results"][0]
    assert first["name"] == "sign-0.jpg" and first["matched_text"]["words"] == ["harbour"], reply
    card = page.locator("#results .result").first
    expect(card.locator(".badge.matched")).to_have_text("matched: “harbour”")
    expect(page.locator("#results .badge.matched")).to_have_count(1)  # the other pictures hold other words
    shot(page, "text-01-matched-badge")

    card.locator(".result-open").click()
    dialog = page.locator("dialog#preview")
    expect(dialog).to_be_visible()
    lines = dialog.locator("#preview-text-lines .text-line")
    expect(lines.first).to_have_text("HARBOUR")
    expect(dialog.locator(".text-line.matched mark")).to_have_text("HARBOUR")
    expect(dialog.locator("#preview-text-status")).to_be_hidden()
    expect(dialog.locator("#preview-meta")).to_contain_text("“harbour”")

    # The matched line's box is drawn over the picture, where the OCR found it, scaled with the image.
    image = dialog.locator(".preview-frame img")
    page.wait_for_function("() => document.querySelector('.preview-frame img').complete")
    boxes = dialog.locator(".preview-frame .text-overlay polygon.text-box")
    expect(boxes).to_have_count(1)
    shown, overlay, drawn = (locator.bounding_box() for locator in
                             (image, dialog.locator(".text-overlay"), boxes.first))
    assert overlay == pytest.approx(shown, abs=1)
    xs, ys = zip(*first["matched_text"]["lines"][0]["box"], strict=True)
    assert drawn["x"] == pytest.approx(shown["x"] + min(xs) * shown["width"], abs=4)
    assert drawn["y"] == pytest.approx(shown["y"] + min(ys) * shown["height"], abs=4)
    assert drawn["width"] == pytest.approx((max(xs) - min(xs)) * shown["width"], abs=6)
    assert drawn["height"] == pytest.approx((max(ys) - min(ys)) * shown["height"], abs=6)
    shot(page, "text-02-preview-boxes")


def test_the_search_mode_is_sent_kept_and_picture_mode_drops_the_text(page: Page):
    run_search(page, "bakery")
    expect(page.locator("#results .result").first.locator(".badge.matched")).to_have_text("matched: “bakery”")

    visual = choose_mode(page, "Picture")
    assert not any(result["matched_text"] for result in visual["results"])
    expect(page.locator("#results .badge.matched")).to_have_count(0)
    assert "mode=visual" in page.url

    words = choose_mode(page, "Words")
    assert [result["name"] for result in words["results"]] == ["sign-1.jpg"]
    expect(page.locator("#results .badge.matched")).to_have_text(["matched: “bakery”"])

    page.reload()  # the mode is kept in the address, like the filters
    page.locator("#app").wait_for(state="visible")
    expect(page.get_by_role("radio", name="Words")).to_be_checked()
    expect(page.locator("#results .result")).to_have_count(1)
    both = choose_mode(page, "Both")
    assert "mode=" not in page.url and len(both["results"]) > 1


def test_a_video_moment_found_by_its_text_plays_from_that_moment(page: Page):
    reply = run_search(page, CLIP_WORD.lower())
    first = reply["results"][0]
    assert first["kind"] == "video" and first["matched_text"]["words"] == [CLIP_WORD.lower()], reply
    assert first["timestamp"] == pytest.approx(2.0, abs=0.05)
    card = page.locator("#results .result").first
    expect(card.locator(".badge.matched")).to_have_text(f"matched: “{CLIP_WORD.lower()}”")

    card.locator(".result-open").click()
    dialog = page.locator("dialog#preview")
    expect(dialog.locator("video")).to_have_attribute("src", first["media_url"])
    page.wait_for_function("() => window.__seeks.length > 0")
    assert page.evaluate("window.__seeks[0]") == pytest.approx(first["timestamp"], abs=0.05)
    expect(dialog.locator("#preview-text-title")).to_have_text("Text at 00:02")
    expect(dialog.locator(".text-line.matched")).to_contain_text(CLIP_WORD)
    shot(page, "text-03-video-moment")


def test_the_preview_says_while_text_is_read_and_shows_it_as_text_never_as_markup(page: Page):
    hostile = '<img src=x onerror="window.__owned=1">HARBOUR'
    answers = iter([{"status": "unread", "lines": []}])  # then read, with markup in the words read

    def frame_text(route):
        answer = next(answers, {"status": "read", "lines": [
            {"text": hostile, "confidence": 0.9, "box": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.2], [0.1, 0.2]]}]})
        route.fulfill(json={"frame_id": 1, **answer})

    page.route("**/frame/*/text", frame_text)
    run_search(page, "harbour")
    page.locator("#results .result-open").first.click()
    expect(page.locator("#preview-text-status")).to_have_text("Reading text…")
    line = page.locator("#preview-text-lines .text-line", has_text="onerror")
    expect(line).to_have_text(hostile)  # polled again until read
    expect(page.locator("#preview-text-status")).to_be_hidden()
    expect(line.locator("mark")).to_have_text("HARBOUR")
    expect(page.locator("#preview-text-lines img")).to_have_count(0)
    assert page.evaluate("window.__owned") is None


def test_the_similarity_slider_marks_where_words_start_to_match_with_this_model(page: Page, text_stack):
    health = text_stack.client.get("/health").json()
    assert health["model_family"] == "clip"
    expect(page.locator("#text-match-mark")).to_have_attribute("value", str(health["text_match"]))
    expect(page.locator("#min-similarity")).to_have_attribute("title", f"With this model (clip), words start to match "
                                                                       f"a picture at a similarity of about "
                                                                       f"{health['text_match']:.2f} (the mark)")
