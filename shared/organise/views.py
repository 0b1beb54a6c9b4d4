"""The library's albums and collections as the API shows them (wire schemas from plain catalog rows)."""

from __future__ import annotations

import sqlite3
from pathlib import PurePosixPath

from shared import catalog
from shared.errors import NotFound, missing_ids_message
from shared.schemas import (
    ClusterDetail,
    ClusterSummary,
    CollectionChanged,
    CollectionDetail,
    CollectionSummary,
    LibraryItem,
    frame_url,
    media_url,
    thumb_url,
)


def library_item(row: sqlite3.Row) -> LibraryItem:
    """A media row that carries ``cover_frame`` (see catalog.media_rows)."""
    frame = row["cover_frame"]
    return LibraryItem(
        media_id=row["id"], kind=row["kind"], name=row["name"], folder=row["folder"], width=row["width"],
        height=row["height"], size=row["size"], duration=row["duration"], created_at=row["created_at"],
        frame_id=frame, thumb_url=thumb_url(frame) if frame is not None else None,
        frame_url=frame_url(frame) if frame is not None else None,
        media_url=media_url(row["id"], row["kind"]))


def _thumbs(frames: list[int]) -> list[str]:
    return [thumb_url(frame) for frame in frames]


# -- clusters (auto-albums) --------------------------------------------------------------------------
def cluster_title(cluster: sqlite3.Row) -> str:
    return cluster["name"] or cluster["label"] or f"Album {cluster['id']}"


def _cluster_summary(cluster: sqlite3.Row, covers: dict[int, list[int]]) -> dict:
    return {"id": cluster["id"], "title": cluster_title(cluster), "name": cluster["name"], "label": cluster["label"],
            "size": cluster["size"], "cover_urls": _thumbs(covers.get(cluster["id"], [])),
            "updated_at": cluster["updated_at"]}


def list_clusters(conn: sqlite3.Connection) -> list[ClusterSummary]:
    """Albums with at least one member, largest first."""
    clusters = [cluster for cluster in catalog.clusters_with_sizes(conn) if cluster["size"] > 0]
    covers = catalog.cluster_covers(conn, [cluster["id"] for cluster in clusters])
    return [ClusterSummary(**_cluster_summary(cluster, covers)) for cluster in clusters]


def _cluster(conn: sqlite3.Connection, cluster_id: int) -> sqlite3.Row:
    cluster = catalog.get_cluster(conn, cluster_id)
    if cluster is None or cluster["size"] == 0:
        raise NotFound(f"no album with id {cluster_id} (albums are renumbered when similar ones merge)")
    return cluster


def cluster_detail(conn: sqlite3.Connection, cluster_id: int, limit: int, offset: int = 0) -> ClusterDetail:
    cluster = _cluster(conn, cluster_id)
    covers = catalog.cluster_covers(conn, [cluster_id])
    members = [library_item(row) for row in catalog.cluster_media(conn, cluster_id, limit, offset)]
    return ClusterDetail(**_cluster_summary(cluster, covers), members=members)


def rename_cluster(conn: sqlite3.Connection, cluster_id: int, name: str | None) -> ClusterSummary:
    """Give an album a name of the user's (kept through relabelling); None or "" returns to the label."""
    with catalog.transaction(conn):
        _cluster(conn, cluster_id)
        catalog.rename_cluster(conn, cluster_id, (name or "").strip() or None)
    return ClusterSummary(**_cluster_summary(_cluster(conn, cluster_id), catalog.cluster_covers(conn, [cluster_id])))


# -- collections -------------------------------------------------------------------------------------
def folder_title(folder: str) -> str:
    """An upload's folder name as given; a server folder by its last part."""
    return PurePosixPath(folder).name or folder


def _collection_summary(collection: sqlite3.Row, covers: dict[int, list[int]]) -> dict:
    return {"id": collection["id"], "name": collection["name"], "size": collection["size"],
            "job_id": collection["job_id"], "created_at": collection["created_at"],
            "cover_urls": _thumbs(covers.get(collection["id"], []))}


def list_collections(conn: sqlite3.Connection) -> list[CollectionSummary]:
    collections = catalog.collections_with_sizes(conn)
    covers = catalog.collection_covers(conn, [collection["id"] for collection in collections])
    return [CollectionSummary(**_collection_summary(collection, covers)) for collection in collections]


def _collection(conn: sqlite3.Connection, collection_id: int) -> sqlite3.Row:
    collection = catalog.get_collection(conn, collection_id)
    if collection is None:
        raise NotFound(f"no collection with id {collection_id}")
    return collection


def collection_summary(conn: sqlite3.Connection, collection_id: int) -> CollectionSummary:
    collection = _collection(conn, collection_id)
    return CollectionSummary(**_collection_summary(collection, catalog.collection_covers(conn, [collection_id])))


def collection_detail(conn: sqlite3.Connection, collection_id: int, limit: int, offset: int = 0) -> CollectionDetail:
    summary = collection_summary(conn, collection_id)
    members = [library_item(row) for row in catalog.collection_media(conn, collection_id, limit, offset)]
    return CollectionDetail(**summary.model_dump(), members=members)


def require_media(conn: sqlite3.Connection, media_ids: list[int]) -> None:
    missing = catalog.missing_media(conn, media_ids)
    if missing:
        raise NotFound(missing_ids_message("media", missing))


def create_collection(conn: sqlite3.Connection, name: str, media_ids: list[int]) -> CollectionSummary:
    with catalog.transaction(conn):
        require_media(conn, media_ids)
        collection_id = catalog.insert_collection(conn, name)
        catalog.add_to_collection(conn, collection_id, media_ids)
    return collection_summary(conn, collection_id)


def rename_collection(conn: sqlite3.Connection, collection_id: int, name: str) -> CollectionSummary:
    if not catalog.rename_collection(conn, collection_id, name):
        raise NotFound(f"no collection with id {collection_id}")
    return collection_summary(conn, collection_id)


def delete_collection(conn: sqlite3.Connection, collection_id: int) -> None:
    if not catalog.delete_collection(conn, collection_id):
        raise NotFound(f"no collection with id {collection_id}")


def change_collection(conn: sqlite3.Connection, collection_id: int, media_ids: list[int],
                      add: bool) -> CollectionChanged:
    """Add media to a collection or take them out (the media themselves stay in the library)."""
    with catalog.transaction(conn):
        _collection(conn, collection_id)
        require_media(conn, media_ids)
        change = catalog.add_to_collection if add else catalog.remove_from_collection
        changed = change(conn, collection_id, media_ids)
    return CollectionChanged(id=collection_id, size=_collection(conn, collection_id)["size"], changed=changed)
