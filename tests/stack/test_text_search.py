"""The words in pictures, on the whole product (Redis, the embedder with a tiny random CLIP, the index, a
Celery worker reading text in the background, the gateway): photos of words in several fonts, sizes and
angles among ordinary photos, and a clip that shows a word for one second. CLIP's weights are random, so
only the text read in the pictures can put the right one first."""

from __future__ import annotations

import pytest

from tests.conftest import running_stack, wait_for
from tests.samples import FONTS, PHOTOS, jpeg, text_clip, text_picture

# word -> (font, size in px, angle in degrees)
SIGNS = {"HARBOUR": (FONTS[0], 90, 0), "Bakery": (FONTS[1], 64, 12), "PHARMACIE": (FONTS[2], 56, -25),
         "Lisboa 1755": (FONTS[3], 110, 5)}
CLIP_WORD = "LIGHTHOUSE"  # shown in the clip's third second only
READ_S = 300  # reading ~10 pictures on a loaded 2-core machine, after the job is done


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_clip_dir):
    tmp = tmp_path_factory.mktemp("text-stack")
    with running_stack(tmp, tiny_clip_dir, "text-search", MEDIASEARCH_OCR="1") as running:
        clip = tmp / "walk.mp4"
        text_clip(clip, [None, None, CLIP_WORD, None])
        files = [(f"sign-{index}.jpg", jpeg(text_picture(words, font, size, angle, index)))
                 for index, (words, (font, size, angle)) in enumerate(SIGNS.items())]
        files += [(path.name, path.read_bytes()) for path in sorted(PHOTOS.glob("*.JPEG"))[:6]]
        files.append(("walk.mp4", clip.read_bytes()))
        job_id = running.upload(files, folder="signs")
        job = running.wait_job(job_id)
        assert job["status"] == "done" and job["indexed"] == len(files), job
        running.job = wait_for(lambda: (j := running.client.get(f"/jobs/{job_id}").json())["text"]["waiting"] == 0
                               and j, READ_S, interval=0.5, message="the text of every file to be read")
        yield running


def search(stack, q: str, **params) -> list[dict]:
    reply = stack.client.get("/search", params={"q": q, "k": 5, **params})
    assert reply.status_code == 200, reply.text
    return reply.json()["results"]


def test_the_job_reports_its_text_read_apart_from_indexing(stack):
    assert stack.job["status"] == "done"
    assert stack.job["text"] == {"read": stack.job["indexed"], "waiting": 0, "failed": 0}


@pytest.mark.parametrize("words", list(SIGNS))
def test_a_word_in_a_photo_finds_that_photo_first_with_the_matched_text(stack, words):
    word = words.split()[0]
    results = search(stack, word.lower())
    first = results[0]
    assert first["name"] == f"sign-{list(SIGNS).index(words)}.jpg", results
    matched = first["matched_text"]
    assert matched["words"] == [word.lower()]
    assert any(word.lower() in line["text"].lower() for line in matched["lines"])
    assert all(0 <= x <= 1 and 0 <= y <= 1 for line in matched["lines"] for x, y in line["box"])
    assert not any(result["matched_text"] for result in results[1:])  # the other signs hold other words


def test_ocr_mistakes_and_partial_words_still_match(stack):
    assert search(stack, "pharmacy")[0]["name"] == "sign-2.jpg"  # PHARMACIE: one letter off, one more
    assert search(stack, "bake")[0]["name"] == "sign-1.jpg"  # the start of a word
    assert search(stack, "1755", mode="text")[0]["name"] == "sign-3.jpg"


def test_visual_mode_ranks_by_clip_alone_and_text_mode_by_the_words_alone(stack):
    assert not any(result["matched_text"] for result in search(stack, "harbour", mode="visual"))
    only = search(stack, "harbour", mode="text")
    assert [result["name"] for result in only] == ["sign-0.jpg"]


def test_a_query_without_a_text_match_ranks_by_clip_as_before(stack):
    both = search(stack, "a dog running on the beach")
    visual = search(stack, "a dog running on the beach", mode="visual")
    assert [r["frame_id"] for r in both] == [r["frame_id"] for r in visual]
    assert not any(result["matched_text"] for result in both)


def test_a_word_shown_in_a_video_finds_its_moment(stack):
    first = search(stack, CLIP_WORD.lower())[0]
    assert first["kind"] == "video" and first["matched_text"]["words"] == [CLIP_WORD.lower()]
    assert first["timestamp"] == pytest.approx(2.0, abs=0.05)  # the moment it is shown: played from there
    grouped = stack.client.get("/search", params={"q": CLIP_WORD.lower(), "group": "video", "k": 3}).json()
    assert grouped["results"][0]["moments"][0]["timestamp"] == pytest.approx(2.0, abs=0.05)


def test_a_frame_s_text_is_served_with_its_boxes(stack):
    frame_id = search(stack, "harbour")[0]["frame_id"]
    text = stack.client.get(f"/frame/{frame_id}/text").json()
    assert text["status"] == "read" and [line["text"] for line in text["lines"]][:1] == ["HARBOUR"]
    assert stack.client.get("/frame/999999/text").status_code == 404
    stranger = stack.client.get(f"/frame/{frame_id}/text", headers={"X-API-Key": ""})
    assert stranger.status_code == 401
