"""Tables ``clusters`` and ``cluster_members``: auto-albums, media grouped by vector similarity
(shared/organise/clustering.py). A media item is in one cluster at most; a member leaving (its media
deleted) marks its cluster dirty (a trigger), so the next re-clustering recomputes the centroid."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from typing import TypedDict, cast

from shared.catalog.core import cover_frames, transaction
from shared.catalog.media import MediaStatus, MediaWithCover, media_row


class ClusterRow(TypedDict):
    """A cluster with its member count (every read of a cluster counts its members)."""
    id: int
    centroid: bytes               # float32 unit vector
    name: str | None              # given by the user; never overwritten by labelling
    label: str | None             # best vocabulary concepts for the centroid
    label_centroid: bytes | None  # the centroid when it was labelled (relabel once it moved)
    label_model: str | None       # model id of the vectors the label was computed with
    dirty: int                    # 1: changed since the last re-clustering
    created_at: float
    updated_at: float
    size: int


class ClusterMediaRow(MediaWithCover):
    similarity: float  # cosine to the centroid


_CLUSTER_WITH_SIZE = ("SELECT clusters.*, COUNT(cluster_members.media_id) AS size FROM clusters "
                      "LEFT JOIN cluster_members ON cluster_members.cluster_id = clusters.id")


def clusters_with_sizes(conn: sqlite3.Connection) -> list[ClusterRow]:
    """Every cluster with its member count, largest first."""
    return [ClusterRow(**row) for row in conn.execute(
        f"{_CLUSTER_WITH_SIZE} GROUP BY clusters.id ORDER BY size DESC, clusters.id")]


def get_cluster(conn: sqlite3.Connection, cluster_id: int) -> ClusterRow | None:
    found = conn.execute(f"{_CLUSTER_WITH_SIZE} WHERE clusters.id=? GROUP BY clusters.id", (cluster_id,)).fetchone()
    return None if found is None else ClusterRow(**found)


def cluster_of_media(conn: sqlite3.Connection, media_id: int) -> int | None:
    found = conn.execute("SELECT cluster_id FROM cluster_members WHERE media_id=?", (media_id,)).fetchone()
    return found[0] if found else None


def cluster_memberships(conn: sqlite3.Connection) -> list[tuple[int, int]]:
    """``(media_id, cluster_id)`` for every clustered media item."""
    return [(row[0], row[1]) for row in conn.execute(
        "SELECT media_id, cluster_id FROM cluster_members ORDER BY media_id")]


def insert_cluster(conn: sqlite3.Connection, centroid: bytes) -> int:
    now = time.time()
    return conn.execute("INSERT INTO clusters(centroid, created_at, updated_at) VALUES (?,?,?)",
                        (centroid, now, now)).lastrowid


def set_cluster_centroid(conn: sqlite3.Connection, cluster_id: int, centroid: bytes, dirty: bool = True) -> None:
    conn.execute("UPDATE clusters SET centroid=?, dirty=?, updated_at=? WHERE id=?",
                 (centroid, int(dirty), time.time(), cluster_id))


def add_cluster_member(conn: sqlite3.Connection, cluster_id: int, media_id: int, similarity: float) -> None:
    conn.execute("INSERT INTO cluster_members(media_id, cluster_id, similarity, added_at) VALUES (?,?,?,?)",
                 (media_id, cluster_id, similarity, time.time()))


def merge_cluster_into(conn: sqlite3.Connection, gone: int, kept: int) -> None:
    """Move every member of cluster ``gone`` to ``kept`` and drop ``gone``."""
    with transaction(conn):
        conn.execute("UPDATE cluster_members SET cluster_id=? WHERE cluster_id=?", (kept, gone))
        conn.execute("DELETE FROM clusters WHERE id=?", (gone,))


def set_member_similarities(conn: sqlite3.Connection, similarities: Iterable[tuple[float, int]]) -> None:
    """``(cosine to its cluster's centroid, media_id)`` pairs, after centroids were recomputed."""
    with transaction(conn):
        conn.executemany("UPDATE cluster_members SET similarity=? WHERE media_id=?", similarities)


def delete_empty_clusters(conn: sqlite3.Connection) -> int:
    return conn.execute("DELETE FROM clusters WHERE id NOT IN (SELECT cluster_id FROM cluster_members)").rowcount


def cluster_media(conn: sqlite3.Connection, cluster_id: int, limit: int, offset: int = 0) -> list[ClusterMediaRow]:
    """Members of a cluster (media rows with ``similarity`` and ``cover_frame``), most typical first."""
    return [cast(ClusterMediaRow, media_row(row)) for row in conn.execute(
        "SELECT media.*, cluster_members.similarity, "
        "(SELECT MIN(frames.id) FROM frames WHERE frames.media_id = media.id) AS cover_frame "
        "FROM cluster_members JOIN media ON media.id = cluster_members.media_id WHERE cluster_members.cluster_id=? "
        "ORDER BY cluster_members.similarity DESC, media.id LIMIT ? OFFSET ?", (cluster_id, limit, offset))]


def cluster_covers(conn: sqlite3.Connection, cluster_ids: list[int], per_cluster: int = 4) -> dict[int, list[int]]:
    """Up to ``per_cluster`` thumbnail frames per cluster, most typical members first."""
    return cover_frames(conn, "cluster_members", "cluster_id", "m.similarity DESC, m.media_id", cluster_ids,
                        per_cluster)


def rename_cluster(conn: sqlite3.Connection, cluster_id: int, name: str | None) -> bool:
    return bool(conn.execute("UPDATE clusters SET name=? WHERE id=?", (name, cluster_id)).rowcount)


def set_cluster_label(conn: sqlite3.Connection, cluster_id: int, label: str, label_centroid: bytes,
                      model_id: str) -> None:
    conn.execute("UPDATE clusters SET label=?, label_centroid=?, label_model=? WHERE id=?",
                 (label, label_centroid, model_id, cluster_id))


def unclustered_media(conn: sqlite3.Connection) -> list[int]:
    """Indexed media that no cluster holds yet (their assignment was missed or is still to come)."""
    return [row[0] for row in conn.execute(
        "SELECT id FROM media WHERE status=? AND id NOT IN (SELECT media_id FROM cluster_members) ORDER BY id",
        (MediaStatus.INDEXED,))]


def clusters_need_work(conn: sqlite3.Connection) -> bool:
    """True when re-clustering has something to do: a changed or unlabelled cluster, or unclustered media."""
    found = conn.execute(
        "SELECT EXISTS(SELECT 1 FROM clusters WHERE dirty=1 OR label IS NULL) OR EXISTS(SELECT 1 FROM media "
        "WHERE status=? AND id NOT IN (SELECT media_id FROM cluster_members))", (MediaStatus.INDEXED,)).fetchone()
    return found[0] == 1


def mark_clusters_clean(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE clusters SET dirty=0 WHERE dirty=1")
