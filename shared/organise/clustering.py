"""Auto-albums: media grouped by the cosine similarity of their vectors to cluster centroids.

Incremental: each newly indexed item joins the most similar cluster if its centroid is at least
the model family's cluster threshold (``calibration(settings).cluster``) similar, moving that centroid (a running mean, re-normalised), or else
starts a new cluster. Items arrive in any order and centroids drift, so a periodic re-clustering
recomputes every centroid exactly from its members' vectors and merges clusters whose centroids have
come within the threshold of each other. All of it runs inside IMMEDIATE catalog transactions, so
several workers assigning at once queue on the write lock instead of losing each other's updates.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

import numpy as np

from shared import catalog
from shared.model_families import calibration
from shared.organise.media_vectors import media_vectors
from shared.settings import Settings
from shared.vectors import OnZero, VectorStore, unit

RECLUSTER_REQUESTED = "recluster_requested_at"


def encode(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def decode(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32)


# -- pure functions ---------------------------------------------------------------------------------
def nearest(centroids: np.ndarray, vector: np.ndarray) -> tuple[int, float] | None:
    """Index and cosine of the centroid most similar to a unit vector; None without centroids."""
    if len(centroids) == 0:
        return None
    similarities = centroids @ vector
    best = int(np.argmax(similarities))
    return best, float(similarities[best])


def running_mean(centroid: np.ndarray, size: int, vector: np.ndarray) -> np.ndarray:
    """The centroid after ``vector`` joins its ``size`` members, re-normalised to unit length."""
    return unit((centroid * size + vector) / (size + 1), OnZero.KEEP)


@dataclass
class MergePlan:
    sums: np.ndarray  # per cluster, the sum of its members' unit vectors after the merges
    merges: list[tuple[int, int]]  # (gone, kept) cluster indexes, in the order they were merged


def merge_plan(sums: np.ndarray, counts: np.ndarray, named: np.ndarray, threshold: float) -> MergePlan:
    """Greedily merge the most similar pair of centroids while it is at least ``threshold`` similar.

    ``sums[i]`` is the sum of cluster i's member vectors (its centroid is that, normalised). The
    larger cluster absorbs the smaller, except that a cluster the user named absorbs one without a
    name, and two named clusters are never merged (the user told them apart).
    """
    sums = np.array(sums, dtype=np.float64)
    counts = np.array(counts, dtype=np.int64)
    named = np.array(named, dtype=bool)
    if len(sums) < 2:
        return MergePlan(sums, [])
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    centroids = sums / np.where(norms > 0, norms, 1)
    alive = norms[:, 0] > 0
    similar = np.full((len(sums), len(sums)), -np.inf)

    def refresh(k: int) -> None:
        row = centroids @ centroids[k]
        row[~alive | (named & named[k])] = -np.inf
        row[k] = -np.inf
        similar[k, :] = similar[:, k] = row

    for k in np.flatnonzero(alive):
        refresh(k)
    merges = []
    while True:
        i, j = np.unravel_index(int(np.argmax(similar)), similar.shape)
        if similar[i, j] < threshold:
            return MergePlan(sums, merges)
        kept, gone = (i, j) if (named[i], counts[i], -i) >= (named[j], counts[j], -j) else (j, i)
        sums[kept] += sums[gone]
        counts[kept] += counts[gone]
        named[kept] |= named[gone]
        alive[gone] = False
        similar[gone, :] = similar[:, gone] = -np.inf
        centroids[kept] = unit(sums[kept], OnZero.KEEP)
        refresh(kept)
        merges.append((int(gone), int(kept)))


# -- catalog ----------------------------------------------------------------------------------------
def assign_to_cluster(conn: sqlite3.Connection, media_id: int, vector: np.ndarray, settings: Settings) -> int | None:
    """Put a newly indexed item in its cluster; returns the cluster id (None if the media is gone).

    Idempotent: an item already in a cluster stays where it is.
    """
    vector = unit(vector, OnZero.KEEP)
    with catalog.transaction(conn):
        existing = catalog.cluster_of_media(conn, media_id)
        if existing is not None:
            return existing
        if catalog.get_media(conn, media_id) is None:
            return None
        return _Centroids(conn, len(vector)).assign(conn, media_id, vector, calibration(settings).cluster)


class _Centroids:
    """The clusters' centroids and sizes, read once inside a transaction and kept up to date while
    several items are assigned in it."""

    def __init__(self, conn: sqlite3.Connection, dim: int):
        clusters = catalog.clusters_with_sizes(conn)
        self.ids = [cluster["id"] for cluster in clusters]
        self.sizes = [cluster["size"] for cluster in clusters]
        self.matrix = (np.stack([decode(cluster["centroid"]) for cluster in clusters]) if clusters
                       else np.zeros((0, dim), np.float32))

    def assign(self, conn: sqlite3.Connection, media_id: int, vector: np.ndarray, threshold: float) -> int:
        found = nearest(self.matrix, vector)
        if found is not None and found[1] >= threshold:
            best, similarity = found
            self.matrix[best] = running_mean(self.matrix[best], self.sizes[best], vector)
            self.sizes[best] += 1
            catalog.set_cluster_centroid(conn, self.ids[best], encode(self.matrix[best]))
            catalog.add_cluster_member(conn, self.ids[best], media_id, similarity)
            return self.ids[best]
        cluster_id = catalog.insert_cluster(conn, encode(vector))
        catalog.add_cluster_member(conn, cluster_id, media_id, 1.0)
        self.ids.append(cluster_id)
        self.sizes.append(1)
        self.matrix = np.vstack([self.matrix, vector[None, :]])
        return cluster_id


@dataclass
class ReclusterReport:
    assigned: int = 0  # media that no cluster held yet
    merged: int = 0
    emptied: int = 0  # clusters whose members were all deleted
    clusters: int = 0
    labelled: int = 0
    visual_pending: int = 0  # media whose look-alikes are still to be looked up (an index shard was behind)


def recluster(conn: sqlite3.Connection, store: VectorStore, settings: Settings) -> ReclusterReport:
    """Catch up on unclustered media, recompute every centroid from its members, merge clusters whose
    centroids came within the threshold, drop empty ones. One transaction: assignments wait for it."""
    report = ReclusterReport()
    with catalog.transaction(conn):
        missed, vectors = media_vectors(conn, store, catalog.unclustered_media(conn))
        incremental = _Centroids(conn, store.dim)
        for media_id, vector in zip(missed, vectors):
            incremental.assign(conn, media_id, vector, calibration(settings).cluster)
        report.assigned = len(missed)
        report.emptied = catalog.delete_empty_clusters(conn)
        clusters = catalog.clusters_with_sizes(conn)
        index = {cluster["id"]: i for i, cluster in enumerate(clusters)}
        memberships = dict(catalog.cluster_memberships(conn))
        members, vectors = media_vectors(conn, store, list(memberships))
        sums = np.zeros((len(clusters), store.dim))
        np.add.at(sums, [index[memberships[media_id]] for media_id in members], vectors)
        plan = merge_plan(sums, [c["size"] for c in clusters], [c["name"] is not None for c in clusters],
                          calibration(settings).cluster)
        for gone, kept in plan.merges:
            catalog.merge_cluster_into(conn, clusters[gone]["id"], clusters[kept]["id"])
        merged_away = {gone for gone, _ in plan.merges}
        centroids = {c["id"]: unit(plan.sums[i], OnZero.KEEP) for i, c in enumerate(clusters) if i not in merged_away}
        for cluster_id, centroid in centroids.items():
            if np.linalg.norm(centroid) > 0:  # else no member's vector is committed yet: keep the running one
                catalog.set_cluster_centroid(conn, cluster_id, encode(centroid), dirty=False)
        final = dict(catalog.cluster_memberships(conn))
        catalog.set_member_similarities(conn, [
            (float(vector @ centroids[final[media_id]]), media_id) for media_id, vector in zip(members, vectors)])
        catalog.mark_clusters_clean(conn)
        report.merged = len(plan.merges)
        report.clusters = len(clusters) - len(merged_away)
    return report


def recluster_due(conn: sqlite3.Connection, settings: Settings, now: float | None = None,
                  other_work: bool = False) -> bool:
    """Whether to ask for re-clustering now: something changed (or ``other_work`` the task does waits, such
    as visual look-ups) and nobody asked in the last ``recluster_debounce_s`` seconds. Records the request,
    so concurrent callers ask once."""
    now = time.time() if now is None else now

    def asked_recently() -> bool:
        asked = catalog.get_state(conn, RECLUSTER_REQUESTED)
        return asked is not None and 0 <= now - asked < settings.recluster_debounce_s

    if asked_recently():  # the common case of a UI polling: answered without the write lock
        return False
    with catalog.transaction(conn):
        if not (other_work or catalog.clusters_need_work(conn)) or asked_recently():
            return False
        catalog.set_state(conn, RECLUSTER_REQUESTED, now)
    return True
