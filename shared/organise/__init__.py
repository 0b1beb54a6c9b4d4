"""Organising the library: auto-albums (clusters of similar media, labelled from a built-in vocabulary),
collections (named sets of media; an upload's folder becomes one), and duplicate review.

Plain functions over the catalog and the vectors store; the gateway's routers (duplicates, clusters,
collections) and the ingest worker are thin shells over them.
"""

