"""The catalog: one SQLite file in WAL mode holding jobs and their per-file items, media, frames, the
library's albums and collections. Writers are the ingest workers (media, frames, item outcomes), the
gateway (jobs, items when a job is created, collections) and the organiser (albums).

One module per table group, all re-exported here (``from shared import catalog``;
``catalog.get_media(conn, media_id)``):

- ``jobs``: jobs, job_items (ItemStatus, JobStatus)
- ``media``: media, frames, video_vectors (MediaKind, MediaStatus)
- ``vector_rows``: the catalog read by vector row (search, filters), crash recovery of vector rows
- ``timeline``: browsing media by when they were taken or added, page by page (with the same filters)
- ``clusters``: clusters, cluster_members (auto-albums)
- ``collections``: collections, collection_members
- ``state``: library_state
- ``libraries``: libraries, locations (server folders indexed in place; used as ``catalog.libraries``, its
  names not re-exported)
- ``migrations``: the schema as ordered steps; connect()
- ``core``: transaction() and SQL helpers

Reads return typed rows (TypedDicts, one per row shape, e.g. MediaRow, FrameRow, ClusterRow), read as
``row["name"]``; statuses and kinds in them are StrEnums, equal to their plain strings. A connection's
own ``conn.execute`` still yields sqlite3.Row.

The transaction rule: a public function that writes with more than one statement opens
``transaction(conn)`` itself, so it is atomic on its own; a single statement is atomic anyway. A caller
that needs several calls to happen together wraps them in ``transaction(conn)``: transactions nest (the
outermost is BEGIN IMMEDIATE … COMMIT, inner ones are SAVEPOINTs), so any catalog function may be
called inside one. Open the outermost transaction with transaction(), not a plain BEGIN, so the write
lock is taken before anything is read.
"""

from shared.catalog.clusters import (
    ClusterMediaRow,
    ClusterRow,
    add_cluster_member,
    cluster_covers,
    cluster_media,
    cluster_memberships,
    cluster_of_media,
    clusters_need_work,
    clusters_with_sizes,
    delete_empty_clusters,
    get_cluster,
    insert_cluster,
    mark_clusters_clean,
    merge_cluster_into,
    rename_cluster,
    set_cluster_centroid,
    set_cluster_label,
    set_member_similarities,
    unclustered_media,
)
from shared.catalog.collections import (
    CollectionRow,
    add_to_collection,
    collection_covers,
    collection_media,
    collections_with_sizes,
    delete_collection,
    folder_collection,
    get_collection,
    insert_collection,
    remove_from_collection,
    rename_collection,
)
from shared.catalog.core import transaction
from shared.catalog.frame_text import (
    TextCandidate,
    TextLine,
    TextProgress,
    TextStatus,
    claim_unread,
    frame_text,
    frames_text,
    indexed_text,
    job_text_progress,
    record_text,
    release_text,
    text_candidates,
    text_failed,
)
from shared.catalog.jobs import (
    LIVE_ITEM_STATES,
    MAX_LISTED_ERRORS,
    TERMINAL_ITEM_STATES,
    WORKER_GONE,
    Claim,
    ClaimResult,
    FailedFile,
    ItemRow,
    ItemStatus,
    JobItemRow,
    JobRow,
    JobStatus,
    JobSummary,
    UploadAliasRow,
    cancel_job,
    claim_item,
    claim_media,
    create_job,
    fail_job,
    gave_up_reason,
    get_item,
    held_items,
    hold_item,
    item_counts,
    job_status,
    mark_items_failed,
    new_job_id,
    recent_job_ids,
    release_item,
    set_item,
    upload_aliases,
    waiting_items,
)
from shared.catalog.media import (
    PHASH_BANDS,
    DeletedMedia,
    FrameRow,
    LibraryCounts,
    MediaKind,
    MediaRow,
    MediaStatus,
    MediaWithCover,
    NearDuplicateGroup,
    band_expression,
    counts,
    delete_media,
    find_near_duplicate,
    frames_of_media,
    get_frame,
    get_media,
    insert_frame,
    insert_media,
    mark_media_indexed,
    media_by_sha,
    media_kinds,
    media_rows,
    missing_media,
    near_duplicates,
    phash_distance,
    set_frame_rows,
    set_item_motions,
    set_motion_path,
    set_video_row,
    stored_shas,
    video_row,
)
from shared.catalog.migrations import SCHEMA_VERSION, STEPS, Step, connect, migrate, user_version
from shared.catalog.state import get_state, set_state
from shared.catalog.timeline import (
    CameraCount,
    MonthCount,
    TimelineRow,
    TimelineSort,
    cameras,
    months,
    timeline_page,
)
from shared.catalog.vector_rows import (
    FrameHit,
    Near,
    TakenBound,
    adopt_rows,
    existing_ids,
    frames_for_rows,
    media_conditions,
    media_vector_rows,
    rows_matching,
    unembedded,
)
from shared.catalog.visual_pairs import forget_visual_pairs, record_visual_pairs, visual_pairs, visual_rows

__all__ = [
    "LIVE_ITEM_STATES", "MAX_LISTED_ERRORS", "SCHEMA_VERSION", "STEPS", "TERMINAL_ITEM_STATES", "WORKER_GONE",
    "Claim", "ClaimResult", "ClusterMediaRow", "ClusterRow", "CollectionRow", "DeletedMedia", "FailedFile", "FrameHit", "FrameRow", "ItemRow",
    "ItemStatus", "JobItemRow", "JobRow", "JobStatus", "JobSummary", "LibraryCounts", "MediaKind", "MediaRow",
    "MediaStatus", "MediaWithCover", "NearDuplicateGroup", "Step", "UploadAliasRow", "add_cluster_member",
    "add_to_collection", "adopt_rows", "cancel_job", "claim_item", "claim_media", "cluster_covers", "cluster_media",
    "cluster_memberships", "cluster_of_media", "clusters_need_work", "clusters_with_sizes",
    "collection_covers", "collection_media", "collections_with_sizes", "connect", "counts", "create_job",
    "delete_collection", "delete_empty_clusters", "delete_media", "existing_ids", "fail_job",
    "find_near_duplicate", "folder_collection", "frames_for_rows", "frames_of_media", "gave_up_reason", "get_cluster",
    "get_collection", "get_frame", "get_item", "get_media", "get_state", "held_items", "hold_item", "insert_cluster",
    "insert_collection", "insert_frame", "insert_media", "item_counts", "job_status", "mark_clusters_clean",
    "mark_items_failed", "mark_media_indexed", "media_by_sha", "media_kinds", "media_rows",
    "media_vector_rows", "merge_cluster_into", "migrate", "missing_media", "near_duplicates", "new_job_id",
    "phash_distance", "recent_job_ids", "release_item", "remove_from_collection", "rename_cluster", "rename_collection",
    "rows_matching", "set_cluster_centroid", "set_cluster_label", "set_frame_rows", "set_item",
    "set_member_similarities", "set_state", "set_video_row", "stored_shas", "transaction", "unclustered_media", "unembedded",
    "upload_aliases", "user_version", "video_row", "waiting_items",
    # duplicates: perceptual-hash bands and visual neighbours (media, visual_pairs)
    "PHASH_BANDS", "band_expression", "forget_visual_pairs", "record_visual_pairs", "visual_pairs", "visual_rows",
    # when and where it was taken: filters and browsing (vector_rows, timeline)
    "CameraCount", "MonthCount", "Near", "TakenBound", "TimelineRow", "TimelineSort", "cameras", "media_conditions",
    "months", "timeline_page",
    # Live Photos: a photo's motion clip
    "set_item_motions", "set_motion_path",
    # the words in frames (OCR): frame_text and its trigram index
    "TextCandidate", "TextLine", "TextProgress", "TextStatus", "claim_unread", "frame_text", "frames_text", "indexed_text",
    "job_text_progress", "record_text", "release_text", "text_candidates", "text_failed",
]
