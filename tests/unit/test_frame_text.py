"""The words read in frames: how a query matches them (shared/text_match.py) and how the catalog keeps them
(shared/catalog/frame_text.py): claims, the trigram index, candidates."""

import pytest

from shared import catalog
from shared.text_match import candidates_query, normalise, query_words, score


# -- matching -----------------------------------------------------------------------------------------
def test_normalising_folds_case_accents_and_compatibility_forms():
    assert normalise("PHARMACIE Ñandú ﬁle") == "pharmacie nandu file"


def test_a_query_keeps_words_of_three_characters_or_more_without_function_words_each_once():
    assert query_words("The NO PARKING sign near the parking") == ["parking", "sign"]
    assert query_words('receipt 42.17 for a "t-shirt"') == ["receipt", "42.17", "t-shirt"]
    assert query_words("a to of") == []


def test_the_candidates_query_is_each_word_and_the_halves_of_longer_ones_quoted():
    assert candidates_query(["bake", "pharmacy"]) == '"bake" OR "pharmacy" OR "phar" OR "macy"'
    assert candidates_query(["parking"]) == '"parking" OR "park" OR "king"'  # halves of four letters at least
    assert candidates_query(["bakery"]) == '"bakery"'  # its halves would be single trigrams
    assert candidates_query(['a"b']) == '"a""b"'
    assert candidates_query([]) is None


def read(lines: list[str]) -> str:
    """A frame's text as the index holds it."""
    return catalog.indexed_text([line(text) for text in lines])


@pytest.mark.parametrize(("query", "lines", "found"), [
    ("no parking", ["NO PARKING"], ["parking"]),
    ("bakery", ["BAKE RY", "open 7-19"], ["bakery"]),  # a space OCR put in
    ("pharmacy", ["PHARMACIE"], ["pharmacy"]),  # OCR's (or the language's) one-letter difference
    ("bake", ["Bakery"], ["bake"]),  # a partial word
    ("Lisboa 1755", ["Lisboa", "1755"], ["lisboa", "1755"]),
])
def test_words_are_found_despite_ocr_mistakes_spaces_and_partial_words(query, lines, found):
    match = score(query_words(query), read(lines), min_quality=0.75)
    assert match is not None and sorted(match.words) == sorted(found)
    assert all(lines[index] for index in match.lines)


@pytest.mark.parametrize(("query", "lines"), [
    ("dog", ["DON"]),  # short words only match exactly
    ("a dog running on the beach at sunset", ["BEACH CLUB"]),  # one word of a description is not a match
    ("parking", ["spark plug"]),  # a few shared trigrams are not a match
    ("parking", []),
])
def test_a_few_shared_letters_are_no_match(query, lines):
    assert score(query_words(query), read(lines), min_quality=0.75) is None


def test_an_exact_match_scores_above_a_mistaken_one():
    words = query_words("parking")
    exact, mistaken = score(words, read(["PARKING"]), 0.75), score(words, read(["PARKINQ"]), 0.75)
    assert exact.quality == 1.0 and 0.75 <= mistaken.quality < 1.0


# -- the catalog ---------------------------------------------------------------------------------------
WORKER, OTHER = "worker-a", "worker-b"


@pytest.fixture
def conn(tmp_path):
    conn = catalog.connect(tmp_path / "catalog.sqlite3")
    yield conn
    conn.close()


def indexed(conn, name: str, frames: int = 1) -> tuple[int, list[int]]:
    media_id = catalog.insert_media(conn, sha256=name, kind="image", mime="image/jpeg", path=f"{name}.jpg",
                                    name=f"{name}.jpg", size=1)
    frame_ids = [catalog.insert_frame(conn, media_id, f"{name}-{n}.jpg", f"{name}-{n}-t.jpg", 8, 8)
                 for n in range(frames)]
    catalog.set_frame_rows(conn, {frame: 100 * media_id + n for n, frame in enumerate(frame_ids)})
    catalog.mark_media_indexed(conn, media_id)
    return media_id, frame_ids


def line(text: str) -> catalog.TextLine:
    return {"text": text, "confidence": 0.9, "box": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.2], [0.1, 0.2]]}


def read_media(conn, media_id: int, lines: dict[int, list[catalog.TextLine]], worker: str = WORKER) -> None:
    claimed = catalog.claim_unread(conn, worker, alive=lambda _: True, max_attempts=3)
    assert claimed is not None and claimed["id"] == media_id
    assert catalog.record_text(conn, media_id, worker, lines)


def matching(conn, text: str) -> list[int]:
    return [c.frame_id for c in catalog.text_candidates(conn, candidates_query(query_words(text)), limit=10)]


def test_text_recorded_is_found_by_its_trigrams_and_gone_with_its_media(conn):
    sign, (sign_frame,) = indexed(conn, "sign")
    other, (other_frame,) = indexed(conn, "other")
    read_media(conn, sign, {sign_frame: [line("NO PARKING"), line("Mon-Fri")]})
    read_media(conn, other, {})  # no words: read, nothing stored
    assert matching(conn, "parking") == [sign_frame]
    assert catalog.frame_text(conn, sign_frame) == ("read", [line("NO PARKING"), line("Mon-Fri")])
    assert catalog.frame_text(conn, other_frame) == ("read", [])
    assert catalog.frames_text(conn, [sign_frame, other_frame]) == {sign_frame: [line("NO PARKING"), line("Mon-Fri")]}
    catalog.delete_media(conn, sign)
    assert matching(conn, "parking") == []  # the index follows the cascade
    assert catalog.frame_text(conn, sign_frame) is None
    conn.execute("INSERT INTO frame_text_search(frame_text_search) VALUES ('integrity-check')")  # raises if not


def test_media_not_indexed_yet_are_not_claimed_and_a_claim_is_not_taken_from_a_live_worker(conn):
    catalog.insert_media(conn, sha256="p", kind="image", mime="image/jpeg", path="p.jpg", name="p.jpg", size=1)  # older
    media_id, _ = indexed(conn, "sign")
    assert catalog.claim_unread(conn, WORKER, alive=lambda _: True, max_attempts=3)["id"] == media_id
    assert catalog.claim_unread(conn, OTHER, alive=lambda _: True, max_attempts=3) is None


def test_a_dead_reader_s_claim_is_taken_over_and_its_late_result_is_dropped(conn):
    media_id, (frame,) = indexed(conn, "sign")
    assert catalog.claim_unread(conn, WORKER, alive=lambda _: True, max_attempts=3)["id"] == media_id
    assert catalog.claim_unread(conn, OTHER, alive=lambda worker: worker != WORKER, max_attempts=3)["id"] == media_id
    assert not catalog.record_text(conn, media_id, WORKER, {frame: [line("STALE")]})
    assert catalog.record_text(conn, media_id, OTHER, {frame: [line("FRESH")]})
    assert catalog.frame_text(conn, frame) == ("read", [line("FRESH")])


def test_an_item_whose_reading_never_finishes_fails_with_a_reason_after_max_attempts(conn):
    media_id, _ = indexed(conn, "poison")
    for attempt in range(2):
        assert catalog.claim_unread(conn, f"dies-{attempt}", alive=lambda _: False, max_attempts=2)["id"] == media_id
    assert catalog.claim_unread(conn, "next", alive=lambda _: False, max_attempts=2) is None
    row = conn.execute("SELECT text_status, text_reason FROM media WHERE id=?", (media_id,)).fetchone()
    assert row["text_status"] == "failed" and "started 2 times" in row["text_reason"]


def test_a_released_claim_is_read_again_without_counting_an_attempt(conn):
    media_id, _ = indexed(conn, "sign")
    for _ in range(3):
        assert catalog.claim_unread(conn, WORKER, alive=lambda _: True, max_attempts=1)["id"] == media_id
        catalog.release_text(conn, media_id, WORKER)


def test_a_job_s_text_progress_counts_its_indexed_media(conn):
    job_id, items = catalog.create_job(conn, "upload", "f", [(f"{n}.jpg", f"uploads/{n}") for n in range(3)])
    media = [indexed(conn, f"m{n}")[0] for n in range(3)]
    for item, media_id in zip(items, media):
        assert catalog.claim_media(conn, item, media_id)
    read_media(conn, media[0], {})
    assert catalog.claim_unread(conn, WORKER, alive=lambda _: True, max_attempts=3)["id"] == media[1]
    catalog.text_failed(conn, media[1], WORKER, "unreadable")
    assert catalog.job_text_progress(conn, job_id) == (1, 1, 1)


def test_each_word_is_placed_in_the_line_it_was_found_in():
    match = score(query_words("parking bakery"), read(["OPEN 7-19", "BAKE RY", "NO PARKINQ"]), 0.75)
    assert {hit.word: hit.line for hit in match.hits} == {"parking": 2, "bakery": 1}


def test_media_to_read_later_are_passed_over(conn):
    """An original out of reach (its library's share not mounted) is released and read later: the reader
    claims the next one meanwhile, and its attempts are not spent."""
    first, _ = indexed(conn, "on-the-share")
    second, _ = indexed(conn, "here")
    assert catalog.claim_unread(conn, WORKER, alive=lambda _: True, max_attempts=1)["id"] == first
    catalog.release_text(conn, first, WORKER)
    assert catalog.claim_unread(conn, WORKER, alive=lambda _: True, max_attempts=1,
                                skip=frozenset({first}))["id"] == second
    assert catalog.claim_unread(conn, OTHER, alive=lambda _: True, max_attempts=1)["id"] == first
