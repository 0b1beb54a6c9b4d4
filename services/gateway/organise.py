"""The gateway's part in organising the library: what needs its task queue or its vectors reader.

Everything else (albums, collections, duplicate grouping) is ``shared.organise``, called by the routers
with this thread's catalog connection.
"""

from __future__ import annotations

from services.gateway.state import Gateway
from shared import catalog
from shared.errors import Unavailable
from shared.model_families import calibration
from shared.organise import views
from shared.organise.clustering import recluster_due
from shared.organise.duplicates import find_duplicates, shards_index
from shared.schemas import ClusterList, DuplicateReport


def duplicate_report(gateway: Gateway, threshold: float | None = None) -> DuplicateReport:
    """Exact, near and visual duplicates; no visual ones while nothing is embedded. The visual neighbours
    of media indexed since the last report are looked up in the index shards first, a bounded number of
    them; with more, the re-clustering task (queued here when due) looks up the rest in the background."""
    settings = gateway.settings
    with shards_index(settings) as index:
        report = find_duplicates(gateway.catalog(), gateway.vectors_or_none(),
                                 calibration(settings).duplicate_visual if threshold is None else threshold,
                                 settings.phash_max_distance, index)
    if report.visual_pending and recluster_due(gateway.catalog(), settings, other_work=True):
        gateway.queue.recluster()
    return report


def albums(gateway: Gateway) -> ClusterList:
    """The albums, largest first. When the library changed since they were last organised, this also
    queues a re-clustering (at most once per ``recluster_debounce_s``; see clustering.recluster_due):
    ``pending`` says so. A broker that is down leaves the albums as they are."""
    conn = gateway.catalog()
    pending = catalog.clusters_need_work(conn)
    if pending and recluster_due(conn, gateway.settings):
        gateway.queue.recluster()
    return ClusterList(clusters=views.list_clusters(conn), pending=pending)


def recluster_now(gateway: Gateway) -> ClusterList:
    """Queue a re-clustering and labelling now; Unavailable when the broker is down."""
    if not gateway.queue.recluster():
        raise Unavailable("the task queue (Redis) is unavailable; try again later")
    return ClusterList(clusters=views.list_clusters(gateway.catalog()), pending=True)
