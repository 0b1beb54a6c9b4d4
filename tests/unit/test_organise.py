"""Organising the library as plain functions on a real SQLite catalog and a real vectors store with
synthetic vectors: incremental clustering (also from several threads at once), re-clustering that
merges drifting albums, labels from the built-in vocabulary with a real (tiny) CLIP text encoder,
names that survive relabelling, and duplicate grouping."""

from __future__ import annotations

import hashlib
import itertools
import threading
from pathlib import Path

import numpy as np
import pytest

from services.embedder.model import ClipEmbedder
from services.index.shard import Shard
from shared import catalog
from shared.model_families import calibration
from shared.organise import duplicates
from shared.organise.clustering import (
    assign_to_cluster,
    decode,
    merge_plan,
    nearest,
    recluster,
    recluster_due,
    running_mean,
)
from shared.organise.duplicates import NEIGHBOURS, find_duplicates, look_up_visual_pairs
from shared.organise.labels import (
    VOCABULARY_FILE,
    load_vocabulary,
    needs_label,
    read_vocabulary,
    relabel_clusters,
    vocabulary_cache_path,
)
from shared.organise.media_vectors import media_vector, media_vectors
from shared.organise.views import list_clusters, rename_cluster
from shared.settings import Settings
from shared.vectors import OnZero, VectorStore, encode_video_owner
from shared.vectors import unit as unit_vector

DIM = 64
_serial = itertools.count()


class SyntheticLibrary:
    """Media rows in a real catalog whose vectors sit in a real vectors store, as after ingest."""

    def __init__(self, root: Path, **settings):
        self.settings = Settings(data_dir=root, **settings)
        self.conn = catalog.connect(self.settings.catalog_path)
        self.writer = VectorStore(self.settings.vectors_dir, dim=DIM, model_id="synthetic", writable=True)
        self.store = VectorStore(self.settings.vectors_dir)

    def add(self, vector: np.ndarray, kind: str = "image", phash: str | None = None,
            near_duplicate_of: int | None = None, width: int = 400, height: int = 300, name: str | None = None) -> int:
        serial = next(_serial)
        sha = hashlib.sha256(str(serial).encode()).hexdigest()
        with catalog.transaction(self.conn):
            media_id = catalog.insert_media(
                self.conn, sha256=sha, kind=kind, mime="image/jpeg" if kind == "image" else "video/mp4",
                path=f"media/originals/{sha}.jpg", name=name or f"photo-{serial}.jpg", folder="", size=1000 + serial,
                width=width, height=height, phash=phash, near_duplicate_of=near_duplicate_of, status="indexed")
            frame_id = catalog.insert_frame(self.conn, media_id, f"media/frames/{sha}.jpg", f"media/thumbs/{sha}.jpg",
                                            width, height, timestamp=0.0 if kind == "video" else None)
        (row,) = self.writer.append(unit(vector)[None, :], [frame_id])
        catalog.set_frame_rows(self.conn, {frame_id: row})
        if kind == "video":  # a one-frame video: its pooled vector is its frame's
            (pooled,) = self.writer.append(unit(vector)[None, :], [encode_video_owner(media_id)])
            catalog.set_video_row(self.conn, media_id, pooled)
        return media_id

    def add_clustered(self, vector: np.ndarray, **fields) -> tuple[int, int]:
        media_id = self.add(vector, **fields)
        return media_id, assign_to_cluster(self.conn, media_id, vector, self.settings)

    def clusters(self) -> dict[int, set[int]]:
        found: dict[int, set[int]] = {}
        for media_id, cluster_id in catalog.cluster_memberships(self.conn):
            found.setdefault(cluster_id, set()).add(media_id)
        return found

    def close(self) -> None:
        self.store.close()
        self.writer.close()
        self.conn.close()


@pytest.fixture
def lib(tmp_path):
    library = SyntheticLibrary(tmp_path)
    yield library
    library.close()


class ShardIndex:
    """The index service's shard run in process (its real HNSW graph), asked as the gateway asks the shards
    over HTTP; ``shard.catch_up()`` indexes the rows committed so far, as the service does as they come."""

    def __init__(self, lib: SyntheticLibrary, state_dir: Path):
        self.shard = Shard(lib.settings.vectors_dir, state_dir)

    def indexed_through(self) -> int:
        return self.shard.indexed_through

    def nearest(self, vector: np.ndarray, k: int, allow_rows: list[int] | None) -> tuple[list[int], list[float]]:
        return self.shard.search(vector, k, None, allow_rows)


@pytest.fixture
def index(lib, tmp_path):
    shard_index = ShardIndex(lib, tmp_path / "index")
    yield shard_index
    shard_index.shard.close()


def unit(vector: np.ndarray) -> np.ndarray:
    return unit_vector(vector, OnZero.RAISE)


def random_unit(rng: np.random.Generator, dim: int = DIM) -> np.ndarray:
    return unit(rng.standard_normal(dim))


def near(base: np.ndarray, cosine: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector at exactly ``cosine`` from ``base`` in a random direction."""
    other = rng.standard_normal(len(base))
    other -= (other @ base) * base
    return unit(cosine * base + np.sqrt(1 - cosine**2) * unit(other))


def test_a_version_2_catalog_is_upgraded_in_place(tmp_path):
    path = tmp_path / "catalog.sqlite3"
    conn = catalog.connect(path, steps=catalog.STEPS[:2])  # as a catalog written before albums existed
    conn.execute("INSERT INTO media(sha256, kind, mime, path, name, size, status, created_at) "
                 "VALUES (?, 'image', 'image/jpeg', 'p', 'kept.jpg', 1, 'indexed', 0)", ("ab" * 32,))
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    conn.close()
    conn = catalog.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == catalog.SCHEMA_VERSION
    assert [row["name"] for row in conn.execute("SELECT name FROM media")] == ["kept.jpg"]
    assert catalog.unclustered_media(conn) == [1] and catalog.collections_with_sizes(conn) == []
    conn.close()


# -- pure functions ---------------------------------------------------------------------------------
def test_nearest_and_running_mean():
    centroids = np.eye(3, dtype=np.float32)
    assert nearest(centroids, unit(np.array([0.1, 0.9, 0.2]))) == (1, pytest.approx(0.9 / np.sqrt(0.86)))
    assert nearest(np.zeros((0, 3)), np.ones(3)) is None
    mean = running_mean(np.array([1.0, 0, 0]), 3, np.array([0, 1.0, 0]))
    assert np.allclose(mean, unit(np.array([3.0, 1.0, 0])))


def test_merge_plan_merges_closest_pairs_and_respects_user_names():
    rng = np.random.default_rng(1)
    a = random_unit(rng)
    b, c = near(a, 0.9, rng), random_unit(rng)
    plan = merge_plan(np.stack([a * 3, b, c]), [3, 1, 1], [False, False, False], threshold=0.72)
    assert plan.merges == [(1, 0)]  # the smaller joins the larger; the unrelated one stays
    named_small = merge_plan(np.stack([a * 3, b, c]), [3, 1, 1], [False, True, False], threshold=0.72)
    assert named_small.merges == [(0, 1)]  # the named album absorbs the unnamed one
    both_named = merge_plan(np.stack([a * 3, b, c]), [3, 1, 1], [True, True, False], threshold=0.72)
    assert both_named.merges == []


# -- incremental clustering -------------------------------------------------------------------------
def test_similar_media_share_a_cluster_and_unrelated_stay_apart(lib):
    rng = np.random.default_rng(3)
    themes = [random_unit(rng) for _ in range(3)]  # random directions: cosine near 0
    expected: dict[int, set[int]] = {}
    for round_ in range(5):
        for theme_index, theme in enumerate(themes):
            vector = theme if round_ == 0 else near(theme, 0.9, rng)
            media_id, _ = lib.add_clustered(vector)
            expected.setdefault(theme_index, set()).add(media_id)
    assert sorted(map(sorted, lib.clusters().values())) == sorted(map(sorted, expected.values()))
    identical, cluster = lib.add_clustered(themes[0])
    assert identical in lib.clusters()[cluster] and lib.clusters()[cluster] >= expected[0]
    assert assign_to_cluster(lib.conn, identical, themes[1], lib.settings) == cluster  # already placed: stays


def test_centroid_is_a_renormalised_running_mean(lib):
    rng = np.random.default_rng(4)
    first = random_unit(rng)
    second = near(first, 0.8, rng)
    _, cluster = lib.add_clustered(first)
    lib.add_clustered(second)
    centroid = decode(catalog.get_cluster(lib.conn, cluster)["centroid"])
    assert np.allclose(centroid, unit(first + second), atol=1e-6)
    assert np.linalg.norm(centroid) == pytest.approx(1, abs=1e-6)


def test_concurrent_workers_lose_no_assignment(lib):
    rng = np.random.default_rng(5)
    themes = [random_unit(rng) for _ in range(4)]
    items = [(lib.add(vector), vector) for vector in (near(themes[i % 4], 0.95, rng) for i in range(48))]

    def worker(share):
        conn = catalog.connect(lib.settings.catalog_path)
        for media_id, vector in share:
            assign_to_cluster(conn, media_id, vector, lib.settings)
        conn.close()

    threads = [threading.Thread(target=worker, args=(items[n::4],)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    clusters = lib.clusters()
    assert sum(len(members) for members in clusters.values()) == 48
    assert len(clusters) == 4
    for members in clusters.values():  # every cluster is one theme
        assert len({[m for m, _ in items].index(media_id) % 4 for media_id in members}) == 1
    assert [c["size"] for c in catalog.clusters_with_sizes(lib.conn)] == [12, 12, 12, 12]


def test_long_id_lists_are_queried_in_chunks(lib, monkeypatch):
    monkeypatch.setattr(catalog.core, "IN_CHUNK", 4)
    rng = np.random.default_rng(9)
    ids = [lib.add(random_unit(rng)) for _ in range(10)]
    assert sorted(catalog.media_vector_rows(lib.conn, ids)) == ids
    assert sorted(catalog.media_rows(lib.conn, ids)) == ids
    assert catalog.missing_media(lib.conn, [*ids, 999999]) == [999999]
    assert recluster(lib.conn, lib.store, lib.settings).assigned == 10


# -- re-clustering ----------------------------------------------------------------------------------
def test_recluster_merges_clusters_that_drifted_together(lib):
    rng = np.random.default_rng(6)
    a = random_unit(rng)
    b = near(a, 0.6, rng)  # below the 0.72 threshold: two albums
    middle = unit(a + b)
    _, first = lib.add_clustered(a)
    _, second = lib.add_clustered(b)
    assert first != second
    for i in range(12):  # new media between them, alternately nearer one or the other, pull both centroids in
        lean = a if i % 2 == 0 else b
        lib.add_clustered(unit(middle + 0.05 * lean))
    centroids = [decode(c["centroid"]) for c in catalog.clusters_with_sizes(lib.conn)]
    assert len(centroids) == 2 and centroids[0] @ centroids[1] >= calibration(lib.settings).cluster
    report = recluster(lib.conn, lib.store, lib.settings)
    assert report.merged == 1 and report.clusters == 1
    (cluster,) = catalog.clusters_with_sizes(lib.conn)
    assert cluster["size"] == 14 and cluster["dirty"] == 0
    vectors = [media_vector(lib.conn, lib.store, media_id) for media_id, _ in catalog.cluster_memberships(lib.conn)]
    assert np.allclose(decode(cluster["centroid"]), unit(np.sum(vectors, axis=0)), atol=1e-5)  # exact, not running


def test_recluster_catches_up_and_forgets_deleted_media(lib):
    rng = np.random.default_rng(7)
    theme = random_unit(rng)
    kept, cluster = lib.add_clustered(theme)
    gone, _ = lib.add_clustered(near(theme, 0.9, rng))
    lonely, lonely_cluster = lib.add_clustered(random_unit(rng))
    missed = lib.add(near(theme, 0.95, rng))  # its worker died before assigning it
    catalog.mark_clusters_clean(lib.conn)
    for media_id in (gone, lonely):
        catalog.delete_media(lib.conn, media_id)
    assert catalog.get_cluster(lib.conn, cluster)["dirty"] == 1  # a member leaving marks its album changed
    assert recluster_due(lib.conn, lib.settings) and not recluster_due(lib.conn, lib.settings)  # debounced
    report = recluster(lib.conn, lib.store, lib.settings)
    assert (report.assigned, report.emptied) == (1, 1)
    assert lib.clusters() == {cluster: {kept, missed}}
    assert catalog.get_cluster(lib.conn, lonely_cluster) is None
    lib.conn.execute("UPDATE clusters SET label='labelled'")  # labelling is tested below
    assert not catalog.clusters_need_work(lib.conn)


# -- labels -----------------------------------------------------------------------------------------
def test_vocabulary_is_a_few_thousand_everyday_concepts():
    concepts = read_vocabulary()
    assert VOCABULARY_FILE.stat().st_size < 200 * 1024
    assert 2000 <= len(concepts) <= 10_000
    assert len({c.lower() for c in concepts}) == len(concepts)
    for everyday in ("golden retriever", "beach", "kitchen", "forest", "a birthday party", "a bicycle", "tree"):
        assert everyday in concepts


@pytest.fixture(scope="module")
def tiny_text_encoder(tiny_clip_dir):
    model = ClipEmbedder(str(tiny_clip_dir), random_weights=True, device="cpu", threads=1)
    calls = []

    def embed_texts(texts):
        calls.append(len(texts))
        return model.embed_texts(texts)

    embed_texts.calls = calls
    return model, embed_texts


def test_vocabulary_vectors_are_embedded_once_per_model(lib, tiny_text_encoder):
    model, embed = tiny_text_encoder
    concepts = read_vocabulary()
    embed.calls.clear()
    vocabulary = load_vocabulary(lib.settings, model.model_id, embed)
    assert vocabulary.vectors.shape == (len(concepts), model.dim)
    assert max(embed.calls) <= 256 and sum(embed.calls) == len(concepts)  # batched within the embedder's limit
    assert vocabulary_cache_path(lib.settings, model.model_id, concepts).exists()
    embed.calls.clear()
    again = load_vocabulary(lib.settings, model.model_id, embed)
    assert embed.calls == [] and np.array_equal(again.vectors, vocabulary.vectors)
    assert vocabulary_cache_path(lib.settings, "another-model", concepts) != \
        vocabulary_cache_path(lib.settings, model.model_id, concepts)


def test_albums_are_labelled_from_the_vocabulary_and_user_names_stick(tmp_path, tiny_text_encoder):
    _, embed = tiny_text_encoder
    lib = SyntheticLibrary(tmp_path)
    try:
        vocabulary = load_vocabulary(lib.settings, "synthetic", embed)
        beach = vocabulary.vectors[vocabulary.concepts.index("beach")]
        kitchen = vocabulary.vectors[vocabulary.concepts.index("kitchen")]
        _, beach_album = lib.add_clustered(beach)
        lib.add_clustered(beach)
        lib.settings.cluster_threshold = 0.999  # the tiny model's text vectors are all alike: keep them apart
        _, kitchen_album = lib.add_clustered(kitchen)
        assert relabel_clusters(lib.conn, lib.settings, vocabulary) == 2
        labels = {c.id: c.label for c in list_clusters(lib.conn)}
        assert labels[beach_album].split(", ")[0] == "beach"
        assert labels[kitchen_album].split(", ")[0] == "kitchen"
        for label in labels.values():
            assert set(label.split(", ")) <= set(vocabulary.concepts) | {c[2:] for c in vocabulary.concepts}
        assert relabel_clusters(lib.conn, lib.settings, vocabulary) == 0  # nothing moved: labels stay

        assert rename_cluster(lib.conn, beach_album, "  Summer 2024 ").title == "Summer 2024"
        lib.add_clustered(beach)  # a near-identical member: the centroid barely moves, no relabel
        assert not needs_label(catalog.get_cluster(lib.conn, beach_album), "synthetic", lib.settings)
        lib.conn.execute("UPDATE clusters SET centroid=? WHERE id=?", (kitchen.tobytes(), beach_album))  # it moved
        assert needs_label(catalog.get_cluster(lib.conn, beach_album), "synthetic", lib.settings)
        assert relabel_clusters(lib.conn, lib.settings, vocabulary) == 1
        album = next(c for c in list_clusters(lib.conn) if c.id == beach_album)
        assert (album.name, album.title) == ("Summer 2024", "Summer 2024")
        assert album.label.split(", ")[0] == "kitchen"  # relabelled, yet the user's name stays
        assert rename_cluster(lib.conn, beach_album, "").title == album.label  # cleared: the label shows again
    finally:
        lib.close()


# -- duplicates -------------------------------------------------------------------------------------
def flip_bits(phash: str, bits: int) -> str:
    return f"{int(phash, 16) ^ ((1 << bits) - 1):016x}"


def alias_upload(lib: SyntheticLibrary, media_id: int, name: str) -> int:
    _, (item_id,) = catalog.create_job(lib.conn, "upload", "second-upload", [(name, "uploads/x")])
    catalog.set_item(lib.conn, item_id, "duplicate", "same content", media_id)
    return item_id


def test_exact_near_and_visual_duplicates_form_one_group(lib, index):
    rng = np.random.default_rng(8)
    photo = random_unit(rng)
    phash = "c3a5f00f0ff0a5c3"
    original = lib.add(photo, phash=phash, width=1024, height=768, name="beach.jpg")
    smaller = lib.add(near(photo, 0.999, rng), phash=flip_bits(phash, 2), near_duplicate_of=original,
                      width=512, height=384, name="beach-small.jpg")
    cropped = lib.add(near(photo, 0.97, rng), phash=flip_bits(phash, 30), width=800, height=600, name="crop.jpg")
    unrelated = lib.add(random_unit(rng), phash=flip_bits(phash, 50), name="other.jpg")
    video = lib.add(photo, kind="video", name="clip.mp4")  # a video is never a duplicate of a photo
    alias = alias_upload(lib, original, "copy of beach.jpg")
    index.shard.catch_up()

    report = find_duplicates(lib.conn, lib.store, threshold=0.95, near_max_distance=6, index=index)
    (group,) = report.groups
    assert (group.keep, group.kind, group.kinds) == (original, "visual", ["exact", "near", "visual"])
    members = [(m.media_id, m.match, m.name, m.item_id) for m in group.members]
    assert members == [(original, "original", "beach.jpg", None), (original, "exact", "copy of beach.jpg", alias),
                       (smaller, "near", "beach-small.jpg", None), (cropped, "visual", "crop.jpg", None)]
    scores = {m.match: m.score for m in group.members}
    assert scores["exact"] == 1 and scores["near"] == pytest.approx(1 - 2 / 64)
    assert scores["visual"] == pytest.approx(0.97, abs=1e-3) and group.score == min(scores.values())
    assert group.members[0].thumb_url.startswith("/thumb/")
    assert unrelated not in {m.media_id for m in group.members} and video not in {m.media_id for m in group.members}

    stricter = find_duplicates(lib.conn, lib.store, threshold=0.99, near_max_distance=6)
    assert [m.match for m in stricter.groups[0].members] == ["original", "exact", "near"]
    catalog.delete_media(lib.conn, smaller)
    catalog.delete_media(lib.conn, cropped)
    (only_aliases,) = find_duplicates(lib.conn, lib.store, threshold=0.95, near_max_distance=6).groups
    assert (only_aliases.kind, [m.match for m in only_aliases.members]) == ("exact", ["original", "exact"])


def add_video(lib: SyntheticLibrary, vector: np.ndarray, frames: int, rng: np.random.Generator) -> int:
    """A video whose pooled vector is ``vector`` and whose ``frames`` extra frames are all nearer to it than
    any other video is: its own rows crowd a search for its nearest rows."""
    media_id = lib.add(vector, kind="video")
    ids = [catalog.insert_frame(lib.conn, media_id, f"f{media_id}-{n}.jpg", f"t{media_id}-{n}.jpg", 8, 8,
                                timestamp=float(n + 1)) for n in range(frames)]
    rows = lib.writer.append(np.stack([near(vector, 0.995, rng) for _ in ids]), ids)
    catalog.set_frame_rows(lib.conn, dict(zip(ids, rows)))
    return media_id


def all_pairs_groups(lib: SyntheticLibrary, threshold: float) -> set[frozenset[int]]:
    """The visual groups found by comparing every vector with every other of the same kind (the reference)."""
    ids, matrix = media_vectors(lib.conn, lib.store)
    kinds = catalog.media_kinds(lib.conn)
    group_of = {media_id: {media_id} for media_id in ids}
    for i, j in zip(*np.nonzero(matrix @ matrix.T >= threshold)):
        a, b = ids[i], ids[j]
        if kinds[a] == kinds[b] and group_of[a] is not group_of[b]:
            merged = group_of[a] | group_of[b]
            for member in merged:
                group_of[member] = merged
    return {frozenset(group) for group in group_of.values() if len(group) > 1}


def test_visual_groups_from_the_index_are_those_of_comparing_every_pair(lib, index):
    """Each item's nearest neighbours in the real HNSW index give the groups that comparing every pair
    gives: copies at several similarities, a burst of more copies than the neighbours looked at, videos
    whose own frames are their nearest rows, and a video never grouped with a photo."""
    rng = np.random.default_rng(21)
    themes = [random_unit(rng) for _ in range(12)]
    for n in range(300):  # same-theme photos are alike (cosine about 0.64) but no duplicates
        lib.add(near(themes[n % 12], 0.8, rng))
    for n in range(40):
        base = near(themes[n % 12], 0.8, rng)
        lib.add(base)
        for cosine in rng.choice([0.91, 0.93, 0.96, 0.99], size=rng.integers(1, 4)):
            lib.add(near(base, float(cosine), rng))
    burst = random_unit(rng)
    for _ in range(NEIGHBOURS + 10):
        lib.add(near(burst, 0.99, rng))
    clip = random_unit(rng)
    for _ in range(3):
        add_video(lib, near(clip, 0.98, rng), frames=NEIGHBOURS + 4, rng=rng)
    add_video(lib, random_unit(rng), frames=NEIGHBOURS + 4, rng=rng)
    lib.add(clip)  # a photo as alike as the copies of the video: never grouped with them
    index.shard.catch_up()

    for threshold in (0.95, 0.9):
        report = find_duplicates(lib.conn, lib.store, threshold=threshold, near_max_distance=6, index=index)
        found = {frozenset(m.media_id for m in group.members) for group in report.groups}
        expected = all_pairs_groups(lib, threshold)
        assert found == expected and len(expected) > 30
        assert any(len(group) > NEIGHBOURS + 1 for group in found)  # the burst: linked through neighbours
        kinds = catalog.media_kinds(lib.conn)
        assert {frozenset(kinds[m] for m in group) for group in found} == {frozenset({"image"}), frozenset({"video"})}


def test_items_indexed_late_are_paired_once_the_index_has_them_and_a_new_vector_is_looked_up_again(lib, index):
    rng = np.random.default_rng(22)
    photo = random_unit(rng)
    first = lib.add(photo)
    index.shard.catch_up()
    second = lib.add(near(photo, 0.97, rng))  # committed, not indexed yet
    assert look_up_visual_pairs(lib.conn, lib.store, index) == 1  # the second is left: the index lacks it
    assert find_duplicates(lib.conn, lib.store, 0.95, 6, index).groups == []
    index.shard.catch_up()
    report = find_duplicates(lib.conn, lib.store, 0.95, 6, index)  # the second, looked up now, finds the first
    assert [{m.media_id for m in group.members} for group in report.groups] == [{first, second}]
    assert look_up_visual_pairs(lib.conn, lib.store, index) == 0  # each vector is looked up once

    (frame,) = catalog.frames_of_media(lib.conn, second)  # re-embedded (another model): a new vector row
    (row,) = lib.writer.append(random_unit(rng)[None, :], [frame["id"]])
    catalog.set_frame_rows(lib.conn, {frame["id"]: row})
    index.shard.catch_up()
    assert find_duplicates(lib.conn, lib.store, 0.95, 6, index).groups == []
    assert catalog.visual_rows(lib.conn) == {first: 0, second: row}


def test_a_report_looks_up_a_bounded_number_of_items_and_counts_the_rest_as_pending(lib, index, monkeypatch):
    rng = np.random.default_rng(23)
    photo = random_unit(rng)
    copies = [lib.add(near(photo, 0.99, rng)) for _ in range(5)]
    index.shard.catch_up()
    monkeypatch.setattr(duplicates, "REPORT_LOOKUPS", 2)
    report = find_duplicates(lib.conn, lib.store, 0.95, 6, index)
    assert report.visual_pending == 3
    assert look_up_visual_pairs(lib.conn, lib.store, index) == 0  # the background task does the rest
    report = find_duplicates(lib.conn, lib.store, 0.95, 6, index)
    assert report.visual_pending == 0
    assert [{m.media_id for m in group.members} for group in report.groups] == [set(copies)]
