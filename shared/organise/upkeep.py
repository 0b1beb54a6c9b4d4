"""What the ingest worker runs for the library: a hook after each job item settles, and the
re-clustering job (Celery task RECLUSTER_TASK), which also looks up the visual neighbours of every media
item not looked up yet (duplicates.look_up_visual_pairs; a duplicate report does only a bounded number).

When re-clustering runs: there is no Celery beat. Whenever albums are read (GET /clusters) and
something changed since the last run (new or deleted media, an unlabelled album), the gateway queues
one re-clustering task, at most every ``recluster_debounce_s`` seconds (clustering.recluster_due);
POST /clusters/recluster queues one at once. The task runs on an ingest worker after the files queued
before it, so albums settle once an upload has been processed.
"""

from __future__ import annotations

import logging
import sqlite3

from shared import catalog
from shared.clients import EmbedderClient
from shared.organise.clustering import ReclusterReport, assign_to_cluster, recluster
from shared.organise.duplicates import look_up_visual_pairs, shards_index
from shared.organise.labels import load_vocabulary, needs_label, relabel_clusters
from shared.organise.media_vectors import media_vector, reader
from shared.organise.views import folder_title
from shared.settings import Settings

log = logging.getLogger("mediasearch.organise")


def file_ingested(conn: sqlite3.Connection, item: sqlite3.Row, status: str, media_id: int | None,
                  settings: Settings) -> None:
    """After a job item settles: its media joins the collection of the upload's folder (an exact
    duplicate too: the same file is in both folders), and newly indexed media joins its album.

    Never raises: the item is done whatever happens here, and re-clustering assigns any media whose
    album assignment was missed.
    """
    if media_id is None or status not in ("indexed", "duplicate"):
        return
    try:
        if item["folder"]:
            with catalog.transaction(conn):
                collection_id = catalog.folder_collection(conn, item["job_id"], folder_title(item["folder"]))
                catalog.add_to_collection(conn, collection_id, [media_id])
        if status == "indexed":
            vector = media_vector(conn, reader(settings.vectors_dir), media_id)
            if vector is not None:
                assign_to_cluster(conn, media_id, vector, settings)
    except Exception:  # organising is secondary to ingesting; re-clustering catches up)
        log.exception("could not file media %s into its collection and album", media_id)


def organise_library(settings: Settings) -> ReclusterReport:
    """Re-cluster, then label the albums that need it (the vocabulary is embedded on first use)."""
    conn = catalog.connect(settings.catalog_path)
    embedder = EmbedderClient(settings.embedder_url)
    try:
        try:
            store = reader(settings.vectors_dir)
        except FileNotFoundError:
            return ReclusterReport()  # nothing embedded yet
        report = recluster(conn, store, settings)
        with shards_index(settings) as index:
            report.visual_pending = look_up_visual_pairs(conn, store, index)
        if any(needs_label(cluster, store.model_id, settings) for cluster in catalog.clusters_with_sizes(conn)):
            vocabulary = load_vocabulary(settings, store.model_id, embedder.embed_texts)
            report.labelled = relabel_clusters(conn, settings, vocabulary)
        log.info("organised the library: %s", report)
        return report
    finally:
        embedder.close()
        conn.close()
