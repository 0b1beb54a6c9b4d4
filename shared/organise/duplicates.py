"""Duplicate review: exact, near and visual duplicates grouped together, with the copy to keep.

- exact: the same bytes uploaded again (same SHA-256). The catalog stores the content once and records
  the later upload as a 'duplicate' job item pointing at it; its name is kept and shown.
- near: a perceptual-hash match found at ingest (``media.near_duplicate_of``): resized or re-encoded copies.
- visual: vectors at least ``threshold`` cosine-similar (crops, edits, bursts), photos with photos and
  videos (their pooled vectors) with videos.

Items linked by any of these form one group; the copy to keep is the one with the most pixels (then
the largest file, then the oldest), and every other member says how it matches that copy.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict

import numpy as np

from shared import catalog
from shared.organise.media_vectors import media_vectors
from shared.organise.views import library_item
from shared.schemas import DuplicateGroup, DuplicateKind, DuplicateMember, DuplicateReport
from shared.vectors import VectorStore

KIND_ORDER: tuple[DuplicateKind, ...] = ("exact", "near", "visual")  # strictest first
BLOCK_ELEMENTS = 1 << 22  # similarity entries computed at once (16 MiB of float32)


def similar_pairs(vectors: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """``(i, j, cosine)`` for every pair i < j of unit vectors at least ``threshold`` similar."""
    count = len(vectors)
    block = max(1, BLOCK_ELEMENTS // max(count, 1))
    pairs = []
    for start in range(0, count, block):
        similar = vectors[start:start + block] @ vectors[start:].T
        rows, cols = np.nonzero(similar >= threshold)
        for row, col in zip(rows.tolist(), cols.tolist()):
            if col > row:
                pairs.append((start + row, start + col, float(similar[row, col])))
    return pairs


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
                    near_max_distance: int) -> DuplicateReport:
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
    vectors: dict[int, np.ndarray] = {}
    if store is not None:
        ids, matrix = media_vectors(conn, store)
        vectors = dict(zip(ids, matrix))
        kinds = catalog.media_kinds(conn)
        for kind in ("image", "video"):
            same = [i for i, media_id in enumerate(ids) if kinds.get(media_id) == kind]
            for i, j, _ in similar_pairs(matrix[same], threshold):
                groups.join(ids[same[i]], ids[same[j]])
    report = []
    for component in groups.components():
        if len(component) < 2 and not aliases.get(component[0]):
            continue
        rows = catalog.media_rows(conn, component)
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
    return DuplicateReport(groups=report, visual_threshold=threshold, near_max_distance=near_max_distance)


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
    item = library_item(row).model_dump()
    return [DuplicateMember(**{**item, "name": alias["file"], "folder": alias["folder"]}, match="exact", score=1.0,
                            item_id=alias["id"]) for alias in aliases.get(row["id"], [])]
