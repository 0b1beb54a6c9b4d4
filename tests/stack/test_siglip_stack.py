"""The whole product on a SigLIP model (tiny, random weights, a multilingual tokenizer): ingest, search by
words in several languages and by image, duplicates and albums with the family's thresholds."""

from __future__ import annotations

import pytest

from shared.model_families import FAMILIES, calibration
from tests.conftest import PHOTOS, running_stack
from tests.tiny_clip import MULTILINGUAL_SAMPLE, TINY_SIGLIP_DIM

OUR_PHOTOS = sorted(PHOTOS.glob("*.JPEG"))[:8]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_siglip_dir):
    with running_stack(tmp_path_factory.mktemp("siglip-stack"), tiny_siglip_dir, "siglip") as running:
        job = running.wait_job(running.upload([(path.name, path.read_bytes()) for path in OUR_PHOTOS]))
        assert job["status"] == "done" and job["indexed"] == len(OUR_PHOTOS), job
        yield running


def test_health_names_the_family_its_width_and_where_a_text_matches(stack):
    health = stack.client.get("/health").json()
    assert health["model_family"] == "siglip" and health["dim"] == TINY_SIGLIP_DIM
    assert "siglip" in health["model_id"]
    assert 0 < health["text_match"] < 0.2
    # recorded beside the vectors, where the workers read their thresholds
    assert calibration(stack.settings) == FAMILIES["siglip"].calibration


@pytest.mark.parametrize("query", [MULTILINGUAL_SAMPLE[0], MULTILINGUAL_SAMPLE[3], MULTILINGUAL_SAMPLE[12],
                                   MULTILINGUAL_SAMPLE[10], "beach -people"])
def test_words_in_any_language_search_every_photo(stack, query):
    reply = stack.client.get("/search", params={"q": query, "k": len(OUR_PHOTOS)})
    assert reply.status_code == 200, reply.text
    results = reply.json()["results"]
    assert sorted(r["name"].rsplit("/", 1)[-1] for r in results) == sorted(p.name for p in OUR_PHOTOS)


def test_a_photo_finds_itself_first_and_the_library_is_organised(stack):
    for path in OUR_PHOTOS[:3]:
        reply = stack.client.post("/search/image", files={"file": ("q.jpg", path.read_bytes())}, params={"k": 3})
        best = reply.json()["results"][0]
        assert best["name"].endswith(path.name) and best["similarity"] >= 0.99
    duplicates = stack.client.get("/duplicates")
    assert duplicates.status_code == 200, duplicates.text
    albums = stack.client.get("/clusters")
    assert albums.status_code == 200
    assert sum(album["size"] for album in albums.json()["clusters"]) == len(OUR_PHOTOS)  # each photo in one
