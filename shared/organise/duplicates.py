"""Duplicate review: exact, near and visual duplicates grouped together, with the copy to keep.

- exact: the same bytes uploaded again (same SHA-256). The catalog stores the content once and records
  the later upload as a 'duplicate' job item pointing at it; its name is kept and shown.
- near: a perceptual-hash match found at ingest (``media.near_duplicate_of``, looked up through the hash's
  band indexes): resized or re-encoded copies.
- visual: vectors at least ``threshold`` cosine-similar (crops, edits, bursts), photos with photos and
  videos (their pooled vectors) with videos. Each media item's nearest neighbours are looked up once in
  the HNSW index (``look_up_visual_pairs``) and the pairs at least ``VISUAL_FLOOR`` similar are recorded
  in the catalog, so a report reads pairs instead of comparing every vector with every other.

Items linked by any of these form one group; the copy to keep is the one with the most pixels (then
the largest file, then the oldest), and every other member says how it matches that copy.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import numpy as np

from shared import catalog
from shared.clients import IndexShards
from shared.internal_auth import internal_secret
from shared.organise.media_vectors import media_vectors
from shared.organise.views import library_item
from shared.schemas import DuplicateGroup, DuplicateKind, DuplicateMember, DuplicateReport
from shared.settings import Settings
from shared.vectors import VectorStore

KIND_ORDER: tuple[DuplicateKind, ...] = ("exact", "near", "visual")  # strictest first
VISUAL_FLOOR = 0.8  # the lowest threshold GET /duplicates takes: the recorded pairs serve any threshold above
NEIGHBOURS = 16  # nearest neighbours looked at per item; a larger group links through its members' neighbours
LOOKUP_BATCH = 256  # items looked up between two writes of what they found (no write lock while searching)
# Items a report looks up itself (~1 ms each); more are left to the re-clustering task, which does them all.
REPORT_LOOKUPS = 1_000
INDEX_TIMEOUT_S = 10.0  # one search or health check of a shard; a shard that takes longer is looked up next time


class NeighbourIndex(Protocol):
    """The HNSW index as duplicate finding asks it (the index shards: ``ShardedIndex``)."""

    def indexed_through(self) -> int | None:
        """Every vector row below this can be found (None: the index cannot say now)."""

    def nearest(self, vector: np.ndarray, k: int, allow_rows: list[int] | None) -> tuple[list[int], list[float]] | None:
        """The ``k`` nearest rows (among ``allow_rows`` when given) and their similarities; None: no answer."""


@contextmanager
def shards_index(settings: Settings) -> Iterator[ShardedIndex]:
    """The index shards the settings name, as one ``NeighbourIndex``; their connections closed on exit."""
    shards = IndexShards(settings.index_urls, timeout=INDEX_TIMEOUT_S, secret=internal_secret(settings))
    try:
        yield ShardedIndex(shards)
    finally:
        shards.close()


class ShardedIndex:
    """Every index shard as one ``NeighbourIndex``: a row can be found once every shard has caught up with it."""

    def __init__(self, shards: IndexShards):
        self.shards = shards

    def indexed_through(self) -> int | None:
        health = self.shards.health()
        return None if health.partial else min((shard.indexed_through for shard in health.answers), default=0)

    def nearest(self, vector: np.ndarray, k: int, allow_rows: list[int] | None) -> tuple[list[int], list[float]] | None:
        asked = self.shards.search(vector, k, None, allow_rows)
        if asked.partial:
            return None
        hits = sorted(((sim, row) for answer in asked.answers for row, sim in zip(answer.rows, answer.similarities)),
                      reverse=True)[:k]
        return [row for _, row in hits], [sim for sim, _ in hits]


def look_up_visual_pairs(conn: sqlite3.Connection, store: VectorStore, index: NeighbourIndex,
                         limit: int | None = None) -> int:
    """Record the visual neighbours (at least ``VISUAL_FLOOR`` similar) of every media item (at most
    ``limit`` of them) whose vector the index can find and whose neighbours are not recorded for that vector
    yet; returns how many are still to do. Photos are matched with photos, videos' pooled vectors with those
    of other videos.

    Only rows the index has caught up with are looked up, so of two items the one looked up later finds
    the other: no pair is missed for being indexed late. A shard that does not answer stops the lookup;
    the next report goes on from there."""
    rows = catalog.media_vector_rows(conn)
    recorded = catalog.visual_rows(conn)
    changed = [media_id for media_id, row in recorded.items() if rows.get(media_id) != row]  # re-embedded
    if changed:
        catalog.forget_visual_pairs(conn, changed)
    unrecorded = {media_id: row for media_id, row in rows.items() if recorded.get(media_id) != row}
    left = len(unrecorded)  # those the index has not caught up with yet included
    through = index.indexed_through()
    if through is None:
        return left
    vectors, _ = store.view()
    through = min(through, len(vectors))
    todo = sorted(media_id for media_id, row in unrecorded.items() if row < through)[:limit]
    if not todo:
        return left
    kinds = catalog.media_kinds(conn)
    media_of_row = {row: media_id for media_id, row in rows.items()}
    # a video's pooled vector is searched among pooled vectors (else its own frames are its nearest rows)
    video_rows = sorted(row for media_id, row in rows.items() if kinds.get(media_id) == catalog.MediaKind.VIDEO)
    for start in range(0, len(todo), LOOKUP_BATCH):
        pairs, done = [], {}
        for media_id in todo[start:start + LOOKUP_BATCH]:
            kind = kinds.get(media_id)
            found = index.nearest(vectors[rows[media_id]], NEIGHBOURS + 1,
                                  video_rows if kind == catalog.MediaKind.VIDEO else None)
            if found is None:
                break
            for row, similarity in zip(*found):
                other = media_of_row.get(row)
                if other not in (None, media_id) and kinds.get(other) == kind and similarity >= VISUAL_FLOOR:
                    pairs.append((media_id, other, similarity))
            done[media_id] = rows[media_id]
        catalog.record_visual_pairs(conn, pairs, done)
        left -= len(done)
        if len(done) < len(todo[start:start + LOOKUP_BATCH]):
            break
    return left


class _Groups:
    """Union-find over media ids."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, item: int) -> int:
        self.parent.setdefault(item, item)
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def join(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)

    def components(self) -> list[list[int]]:
        found: dict[int, list[int]] = defaultdict(list)
        for item in self.parent:
            found[self.find(item)].append(item)
        return [sorted(members) for members in found.values()]


def _keeper(rows: list[sqlite3.Row]) -> sqlite3.Row:
    return max(rows, key=lambda r: ((r["width"] or 0) * (r["height"] or 0), r["size"], -r["created_at"], -r["id"]))


def find_duplicates(conn: sqlite3.Connection, store: VectorStore | None, threshold: float,
                    near_max_distance: int, index: NeighbourIndex | None = None) -> DuplicateReport:
    """The duplicate groups. With ``index``, the visual neighbours of up to ``REPORT_LOOKUPS`` media not
    looked up yet are looked up first (``look_up_visual_pairs``); the report counts those still to do in
    ``visual_pending``. Visual pairs below ``VISUAL_FLOOR`` are never recorded."""
    pending = 0
    if store is not None and index is not None:
        pending = look_up_visual_pairs(conn, store, index, limit=REPORT_LOOKUPS)
    groups, near_groups = _Groups(), _Groups()  # linked by anything; linked by perceptual hashes
    for group in catalog.near_duplicates(conn, limit=1_000_000):
        original = group["original"]["id"]
        for duplicate in group["duplicates"]:
            groups.join(duplicate["id"], original)
            near_groups.join(duplicate["id"], original)
    aliases: dict[int, list[sqlite3.Row]] = defaultdict(list)
    for alias in catalog.upload_aliases(conn):
        aliases[alias["media_id"]].append(alias)
        groups.find(alias["media_id"])
    for a, b, _ in catalog.visual_pairs(conn, threshold):
        groups.join(a, b)
    components = [c for c in groups.components() if len(c) > 1 or aliases.get(c[0])]
    grouped = [media_id for component in components for media_id in component]
    all_rows = catalog.media_rows(conn, grouped)
    vectors: dict[int, np.ndarray] = {}
    if store is not None:
        ids, matrix = media_vectors(conn, store, grouped)
        vectors = dict(zip(ids, matrix))
    report = []
    for component in components:
        rows = {media_id: all_rows[media_id] for media_id in component if media_id in all_rows}
        if not rows:
            continue
        keeper = _keeper(list(rows.values()))
        members = [_member(keeper, "original", 1.0)] + _aliases(keeper, aliases)
        others = []
        for media_id, row in rows.items():
            if media_id != keeper["id"]:
                match, score = _match(row, keeper, vectors, near_groups, near_max_distance)
                others.append(((KIND_ORDER.index(match), -score, media_id),
                               [_member(row, match, score)] + _aliases(row, aliases)))
        for _, extra in sorted(others, key=lambda item: item[0]):  # strictest match first, then most similar
            members += extra
        matches = {member.match for member in members[1:]}
        kinds = [kind for kind in KIND_ORDER if kind in matches]
        report.append(DuplicateGroup(id=keeper["id"], kind=kinds[-1], kinds=kinds, keep=keeper["id"],
                                     score=min(member.score for member in members[1:]), members=members))
    report.sort(key=lambda group: group.id)
    return DuplicateReport(groups=report, visual_threshold=threshold, near_max_distance=near_max_distance,
                           visual_pending=pending)


def _match(row: sqlite3.Row, keeper: sqlite3.Row, vectors: dict[int, np.ndarray], near_groups: _Groups,
           near_max_distance: int) -> tuple[DuplicateKind, float]:
    """How a member matches the copy to keep: near when perceptual hashes link them, else visual."""
    if row["phash"] and keeper["phash"]:
        distance = catalog.phash_distance(row["phash"], keeper["phash"])
        if distance <= near_max_distance or near_groups.find(row["id"]) == near_groups.find(keeper["id"]):
            return "near", 1 - distance / 64
    if row["id"] in vectors and keeper["id"] in vectors:
        return "visual", float(vectors[row["id"]] @ vectors[keeper["id"]])
    return "visual", 0.0


def _member(row: sqlite3.Row, match: str, score: float) -> DuplicateMember:
    return DuplicateMember(**library_item(row).model_dump(), match=match, score=score)


def _aliases(row: sqlite3.Row, aliases: dict[int, list[sqlite3.Row]]) -> list[DuplicateMember]:
    """The other names this stored file was uploaded under."""
    if not aliases.get(row["id"]):
        return []
    item = library_item(row).model_dump()
    return [DuplicateMember(**{**item, "name": alias["file"], "folder": alias["folder"]}, match="exact", score=1.0,
                            item_id=alias["id"]) for alias in aliases.get(row["id"], [])]
