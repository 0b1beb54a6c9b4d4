"""Organising the library through the real product (Redis, Celery worker, embedder with a tiny random
CLIP, index, gateway): an uploaded folder becomes a collection to search in; albums gather a photo's
copies and keep unrelated photos apart, get labels from the vocabulary, and keep a user's name through
relabelling; duplicate review groups an exact copy, a resized and a re-encoded copy, and deleting the
extras leaves one searchable copy with every trace of the others gone (files, catalog, index rows)."""

from __future__ import annotations

import itertools
from pathlib import PurePosixPath

import httpx
import numpy as np
import pytest

from shared import catalog
from shared.media_store import MediaStore
from shared.organise.labels import display, read_vocabulary
from shared.organise.media_vectors import media_vectors
from shared.vectors import VectorStore
from tests.conftest import RunningStack, running_stack, wait_for
from tests.holiday import ALBUM_THRESHOLD, STACK_ENV, UNRELATED, Holiday, upload_holiday

SETTLE_TIMEOUT = 180


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_clip_dir) -> RunningStack:
    with running_stack(tmp_path_factory.mktemp("organise"), tiny_clip_dir, "organise", **STACK_ENV) as running:
        yield running


@pytest.fixture(scope="module")
def holiday(stack) -> Holiday:
    return upload_holiday(stack)


def catalog_of(stack: RunningStack):
    return catalog.connect(stack.settings.catalog_path)


def settled_clusters(stack: RunningStack) -> list[dict]:
    """Albums once re-clustering and labelling are done (GET /clusters itself asks for them)."""
    def settled():
        reply = stack.client.get("/clusters").json()
        return reply["clusters"] if not reply["pending"] and reply["clusters"] else None

    return wait_for(settled, SETTLE_TIMEOUT, interval=0.5, message="albums to be organised and labelled")


def members_of(stack: RunningStack, cluster_id: int) -> set[int]:
    reply = stack.client.get(f"/clusters/{cluster_id}")
    assert reply.status_code == 200, reply.text
    return {m["media_id"] for m in reply.json()["members"]}


# -- collections ------------------------------------------------------------------------------------
def test_an_uploaded_folder_is_a_collection_to_search_in(stack, holiday):
    folder = stack.client.get(f"/collections/{holiday.collection}").json()
    assert (folder["name"], folder["job_id"], folder["size"]) == ("holiday", holiday.job_id, 7)
    assert len(folder["cover_urls"]) == 4 and all(m["thumb_url"] for m in folder["members"])
    inside = stack.client.get("/search", params={"q": "a bird", "collection": holiday.collection, "k": 50}).json()
    assert {r["media_id"] for r in inside["results"]} == set(holiday.media.values())

    made = stack.client.post("/collections", json={"name": " Favourites ", "media_ids": [holiday.media["cello.jpg"]]})
    assert made.status_code == 201, made.text
    favourites = made.json()["id"]
    assert (made.json()["name"], made.json()["size"], made.json()["job_id"]) == ("Favourites", 1, None)
    found = stack.client.get("/search", params={"q": "music", "collection": favourites}).json()["results"]
    assert [r["media_id"] for r in found] == [holiday.media["cello.jpg"]]

    add = stack.client.post(f"/collections/{favourites}/media",
                            json={"media_ids": [holiday.media["lolly.jpg"], holiday.media["cello.jpg"]]}).json()
    assert (add["changed"], add["size"]) == (1, 2)  # the cello was already in
    remove = stack.client.request("DELETE", f"/collections/{favourites}/media",
                                  json={"media_ids": [holiday.media["cello.jpg"]]}).json()
    assert (remove["changed"], remove["size"]) == (1, 1)
    renamed = stack.client.patch(f"/collections/{favourites}", json={"name": "Sweets"}).json()
    assert renamed["name"] == "Sweets"
    assert favourites in {c["id"] for c in stack.client.get("/collections").json()["collections"]}
    assert stack.client.delete(f"/collections/{favourites}").status_code == 204
    assert stack.client.get(f"/collections/{favourites}").status_code == 404
    assert stack.client.get(f"/media/{holiday.media['lolly.jpg']}").status_code == 200  # its media stay


def test_collection_requests_with_unknown_ids_or_bad_bodies_are_refused_readably(stack, holiday):
    client = stack.client
    cases = [
        (client.get("/collections/999999"), 404, "no collection with id 999999"),
        (client.get("/search", params={"q": "x", "collection": 999999}), 404, "no collection with id 999999"),
        (client.post("/collections", json={"name": "x", "media_ids": [999999]}), 404, "no media with id 999999"),
        (client.post(f"/collections/{holiday.collection}/media", json={"media_ids": [holiday.bird, 999998, 999999]}),
         404, "no media with ids 999998, 999999"),
        (client.patch("/collections/999999", json={"name": "x"}), 404, "no collection with id 999999"),
        (client.delete("/collections/999999"), 404, "no collection with id 999999"),
        (client.post("/collections", json={"name": "   "}), 422, "name"),
        (client.post(f"/collections/{holiday.collection}/media", json={"media_ids": []}), 422, "media_ids"),
        (client.post(f"/collections/{holiday.collection}/media", json={"media_ids": "all"}), 422, "media_ids"),
        (client.get("/collections/abc"), 422, "collection_id"),
    ]
    for reply, status, words in cases:
        assert reply.status_code == status, (reply.request.url, reply.text)
        assert words in reply.json()["detail"], reply.text
    assert client.get(f"/collections/{holiday.collection}").json()["size"] == 7  # nothing changed


# -- albums -----------------------------------------------------------------------------------------
def test_albums_gather_copies_keep_unrelated_photos_apart_and_are_labelled(stack, holiday):
    conn = catalog_of(stack)
    ids, vectors = media_vectors(conn, VectorStore(stack.settings.vectors_dir), sorted(set(holiday.media.values())))
    conn.close()
    similar = dict(zip(itertools.combinations(ids, 2), (vectors @ vectors.T)[np.triu_indices(len(ids), 1)]))
    bird_family = {holiday.bird, *holiday.copies}
    photos = set(ids) - {holiday.media["clips/brother.mkv"]}
    for (a, b), cosine in similar.items():  # what the test relies on about the tiny model's vectors
        if {a, b} <= bird_family:
            assert cosine > ALBUM_THRESHOLD + 0.03, (a, b, cosine)
        elif {a, b} <= photos or {a, b} & bird_family:  # the video may be near an unrelated photo
            assert cosine < ALBUM_THRESHOLD - 0.03, (a, b, cosine)

    clusters = settled_clusters(stack)
    album_of = {media_id: c["id"] for c in clusters for media_id in members_of(stack, c["id"])}
    assert set(holiday.media.values()) <= set(album_of)  # the video too, by its pooled vector
    birds = album_of[holiday.bird]
    assert members_of(stack, birds) == bird_family
    others = [album_of[holiday.media[name]] for name in UNRELATED]
    assert len(set(others)) == 3 and birds not in others

    vocabulary = {display(concept) for concept in read_vocabulary()}
    for cluster in clusters:
        assert cluster["name"] is None and cluster["title"] == cluster["label"]
        assert 1 <= len(cluster["label"].split(", ")) <= 3 and set(cluster["label"].split(", ")) <= vocabulary
        assert cluster["cover_urls"]
    bird_album = next(c for c in clusters if c["id"] == birds)
    assert bird_album["size"] == 3
    member = stack.client.get(f"/clusters/{birds}").json()["members"][0]
    assert stack.client.get(member["thumb_url"]).headers["content-type"] == "image/jpeg"


def test_a_users_album_name_sticks_across_relabelling(stack, holiday):
    settled_clusters(stack)
    conn = catalog_of(stack)
    birds = catalog.cluster_of_media(conn, holiday.bird)
    renamed = stack.client.patch(f"/clusters/{birds}", json={"name": "Garden birds"})
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["title"]) == ("Garden birds", "Garden birds")
    with catalog.transaction(conn):  # as if its centroid had moved far: the album must be labelled again
        conn.execute("UPDATE clusters SET label=NULL, label_centroid=NULL WHERE id=?", (birds,))
    conn.close()
    assert stack.client.post("/clusters/recluster").status_code == 202
    album = next(c for c in settled_clusters(stack) if c["id"] == birds)
    assert album["label"] and (album["name"], album["title"]) == ("Garden birds", "Garden birds")
    cleared = stack.client.patch(f"/clusters/{birds}", json={"name": None}).json()
    assert (cleared["name"], cleared["title"]) == (None, album["label"])

    for reply, status, words in [
        (stack.client.patch("/clusters/999999", json={"name": "x"}), 404, "no album with id 999999"),
        (stack.client.get("/clusters/999999"), 404, "no album with id 999999"),
        (stack.client.patch(f"/clusters/{birds}", json={}), 422, "name"),
        (stack.client.patch(f"/clusters/{birds}", json={"name": "x" * 201}), 422, "name"),
        (stack.client.get("/clusters/abc"), 422, "cluster_id"),
    ]:
        assert reply.status_code == status and words in reply.json()["detail"], reply.text


# -- duplicates and deletion (last: it deletes media) ------------------------------------------------
def test_duplicates_form_one_group_and_deleting_extras_leaves_one_searchable_copy(stack, holiday):
    client = stack.client
    report = client.get("/duplicates").json()
    assert report["visual_threshold"] == 0.95
    (group,) = report["groups"]
    assert (group["keep"], group["kind"], group["kinds"]) == (holiday.bird, "near", ["exact", "near"])
    matches = {(m["media_id"], m["match"], PurePosixPath(m["name"]).name) for m in group["members"]}
    stored_name = holiday.bird_name
    alias_name = ({"bunting.jpg", "bunting-copy.jpg"} - {stored_name}).pop()
    assert matches == {(holiday.bird, "original", stored_name), (holiday.bird, "exact", alias_name),
                       (holiday.copies[0], "near", "bunting-small.jpg"), (holiday.copies[1], "near", "bunting-q40.jpg")}
    assert group["members"][0]["match"] == "original"

    conn = catalog_of(stack)
    store = MediaStore(stack.settings.data_path)
    doomed_rows = [f["vector_row"] for media_id in holiday.copies for f in catalog.frames_of_media(conn, media_id)]
    doomed_files = [p for media_id in holiday.copies for p in
                    [catalog.get_media(conn, media_id)["path"]] + [f[k] for f in catalog.frames_of_media(conn, media_id)
                                                                   for k in ("path", "thumb_path")]]
    doomed_vectors = np.array(VectorStore(stack.settings.vectors_dir).view()[0][doomed_rows])

    refused = client.post("/media/delete", json={"media_ids": [*holiday.copies, 999999]})
    assert refused.status_code == 404 and refused.json()["detail"] == "no media with id 999999; nothing was deleted"
    assert client.post("/media/delete", json={"media_ids": []}).status_code == 422
    deleted = client.post("/media/delete", json={"media_ids": holiday.copies})
    assert deleted.status_code == 200, deleted.text
    body = deleted.json()
    assert ([d["id"] for d in body["deleted"]], body["rows"], body["partial"]) == (holiday.copies, 2, False)

    (left,) = client.get("/duplicates").json()["groups"]  # the same file under two names, stored once
    assert (left["kind"], [m["media_id"] for m in left["members"]]) == ("exact", [holiday.bird, holiday.bird])
    for media_id in holiday.copies:
        assert client.get(f"/media/{media_id}").status_code == 404
        assert catalog.cluster_of_media(conn, media_id) is None
    assert catalog.get_collection(conn, holiday.collection)["size"] == 5
    assert not any(store.resolve(path).exists() for path in doomed_files)
    for vector in doomed_vectors:  # tombstoned in the index itself, not only hidden by the catalog
        answer = httpx.post(f"{stack.settings.index_urls[0]}/search",
                            json={"vector": vector.tolist(), "k": 100}, headers=stack.internal_headers, timeout=30).json()
        assert not set(answer["rows"]) & set(doomed_rows)

    bird_frame = catalog.frames_of_media(conn, holiday.bird)[0]["id"]
    results = client.get("/search", params={"q": "a small blue bird", "k": 100}).json()["results"]
    assert [r["media_id"] for r in results].count(holiday.bird) == 1
    assert not {r["media_id"] for r in results} & set(holiday.copies)
    similar = client.get(f"/search/similar/{bird_frame}", params={"k": 100}).json()["results"]
    assert not {r["media_id"] for r in similar} & set(holiday.copies)

    album = catalog.cluster_of_media(conn, holiday.bird)
    wait_for(lambda: members_of(stack, album) == {holiday.bird} and not client.get("/clusters").json()["pending"],
             SETTLE_TIMEOUT, interval=0.5, message="the album to be re-organised after the deletion")

    video = holiday.media["clips/brother.mkv"]
    frames = len(catalog.frames_of_media(conn, video))
    conn.close()
    gone = client.post("/media/delete", json={"media_ids": [video]}).json()
    assert gone["rows"] == frames + 1  # its frames and its pooled video vector
